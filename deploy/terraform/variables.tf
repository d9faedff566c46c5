# ---------------------------------------------------------------------------
# General
# ---------------------------------------------------------------------------

variable "aws_region" {
  description = "AWS region to deploy into, e.g. eu-west-1."
  type        = string
}

variable "name" {
  description = "Name (and prefix) of every resource: ECR repository, ECS cluster, task family, schedule, log group, IAM roles."
  type        = string
  default     = "chimport"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,23}$", var.name))
    error_message = "name must be 1 to 24 characters of a-z, 0-9 and -, starting with a letter."
  }
}

variable "tags" {
  description = "Extra tags for every resource (merged into the provider's default_tags)."
  type        = map(string)
  default     = {}
}

variable "kms_key_arn" {
  description = "Optional customer managed KMS key ARN for the secrets, the config bucket and the alert topic. Empty uses AWS managed keys (and leaves the topic unencrypted so EventBridge and CloudWatch alarms can publish to it). The key policy must let the roles created here, and events.amazonaws.com and cloudwatch.amazonaws.com for the topic, use it."
  type        = string
  default     = ""
}

# ---------------------------------------------------------------------------
# Image
# ---------------------------------------------------------------------------

variable "image_tag" {
  description = "Tag of the chimport image in the ECR repository that the task runs, e.g. v1.2.3 (the VERSION you build with). Push it before the schedule first fires."
  type        = string

  validation {
    condition     = length(var.image_tag) > 0
    error_message = "image_tag must not be empty."
  }
}

variable "ecr_image_tag_mutability" {
  description = "IMMUTABLE (default: a tag always means the same image, so a task definition revision is reproducible) or MUTABLE."
  type        = string
  default     = "IMMUTABLE"

  validation {
    condition     = contains(["IMMUTABLE", "MUTABLE"], var.ecr_image_tag_mutability)
    error_message = "ecr_image_tag_mutability must be IMMUTABLE or MUTABLE."
  }
}

variable "ecr_keep_images" {
  description = "How many images the ECR lifecycle policy keeps (newest first); older ones expire. Untagged images expire after a day."
  type        = number
  default     = 20

  validation {
    condition     = var.ecr_keep_images >= 1
    error_message = "ecr_keep_images must be at least 1."
  }
}

variable "ecr_force_delete" {
  description = "Let `terraform destroy` delete the ECR repository even when it still holds images."
  type        = bool
  default     = false
}

# ---------------------------------------------------------------------------
# ECS task
# ---------------------------------------------------------------------------

variable "cpu_architecture" {
  description = "CPU architecture of the Fargate task: ARM64 (Graviton, cheaper; build with --platform linux/arm64) or X86_64 (--platform linux/amd64)."
  type        = string
  default     = "ARM64"

  validation {
    condition     = contains(["ARM64", "X86_64"], var.cpu_architecture)
    error_message = "cpu_architecture must be ARM64 or X86_64."
  }
}

variable "task_cpu" {
  description = "Fargate task CPU units (256 = 0.25 vCPU). A sync is network-bound; 256 is plenty for a few audiences."
  type        = number
  default     = 256
}

variable "task_memory" {
  description = "Fargate task memory in MiB (must be valid for task_cpu; 512 is the smallest for 256 CPU). chimport's memory stays flat in audience size (about 30 MiB per full sync)."
  type        = number
  default     = 512
}

variable "run_args" {
  description = "Extra arguments after `chimport run`, e.g. [\"--parallel\", \"32\"]."
  type        = list(string)
  default     = []
}

variable "extra_environment" {
  description = "Extra plain environment variables for the container (not secrets: use secret_env_names for those)."
  type        = map(string)
  default     = {}
}

variable "stop_timeout" {
  description = "Seconds between SIGTERM and SIGKILL when a task is stopped (Fargate allows at most 120). chimport saves its checkpoint on SIGTERM."
  type        = number
  default     = 60

  validation {
    condition     = var.stop_timeout >= 2 && var.stop_timeout <= 120
    error_message = "stop_timeout must be between 2 and 120 seconds."
  }
}

variable "log_retention_days" {
  description = "Retention of the CloudWatch log group, in days (one of the values CloudWatch Logs accepts; 0 keeps logs forever)."
  type        = number
  default     = 30

  validation {
    condition     = contains([0, 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a value CloudWatch Logs accepts, e.g. 7, 14, 30, 90, 365."
  }
}

variable "container_insights" {
  description = "Turn on CloudWatch Container Insights for the cluster (extra cost)."
  type        = bool
  default     = false
}

# ---------------------------------------------------------------------------
# Schedule and network
# ---------------------------------------------------------------------------

variable "schedule" {
  description = "EventBridge Scheduler expression for `chimport run`. The default keeps the original importer's cadence."
  type        = string
  default     = "rate(90 minutes)"
}

variable "schedule_timezone" {
  description = "Time zone of a cron() schedule expression (ignored by rate())."
  type        = string
  default     = "UTC"
}

variable "schedule_enabled" {
  description = "Whether the schedule fires. Set false to pause syncing without destroying anything."
  type        = bool
  default     = true
}

variable "shards" {
  description = "How many tasks each firing starts, each with its share of the connections (CHIMPORT_SHARD=i/N: a stable hash of the connection name, sub-connections of list_id \"*\" included). 1 (the default): one task runs every connection. For thousands of connections in one scheduled run; the state tables are shared. See README.md (Shards)."
  type        = number
  default     = 1

  validation {
    condition     = var.shards >= 1 && var.shards <= 10 && floor(var.shards) == var.shards
    error_message = "shards must be a whole number from 1 to 10 (1: one task runs every connection). The tasks run at once, and each takes a tenth or more of every Mailchimp key's 10 request slots, so more than 10 would pass Mailchimp's limit."
  }
}

variable "subnet_ids" {
  description = "Subnets for the task. Private subnets need a NAT gateway (or VPC endpoints for ECR, S3, logs, SSM, DynamoDB, SNS) and still need the internet for Mailchimp and your target."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) >= 1
    error_message = "subnet_ids needs at least one subnet."
  }
}

variable "security_group_ids" {
  description = "Security groups for the task. chimport needs outbound HTTPS only (Mailchimp, your target API, AWS APIs) and no inbound rule."
  type        = list(string)

  validation {
    condition     = length(var.security_group_ids) >= 1 && length(var.security_group_ids) <= 5
    error_message = "security_group_ids needs 1 to 5 security groups."
  }
}

variable "assign_public_ip" {
  description = "Give the task a public IP. Needed in public subnets without a NAT gateway; keep false in private subnets."
  type        = bool
  default     = false
}

# ---------------------------------------------------------------------------
# State (DynamoDB)
# ---------------------------------------------------------------------------

variable "import_history_table_name" {
  description = "Per-audience sync state (hash key ListId). The original importer's table name; chimport's default."
  type        = string
  default     = "mailchimp-list-import-history"
}

variable "failed_imports_table_name" {
  description = "Failures log (hash key ListId, range key offset). The original importer's table name; chimport's default."
  type        = string
  default     = "mailchimp-failed-imports"
}

variable "run_history_table_name" {
  description = "Run history (hash key ListId, range key RunId)."
  type        = string
  default     = "chimport-run-history"
}

variable "dynamodb_deletion_protection" {
  description = "Protect the state tables from deletion (also from `terraform destroy`)."
  type        = bool
  default     = true
}

variable "allow_create_tables" {
  description = "Also grant the task dynamodb:CreateTable on the three tables, so `chimport init` can run as a one-off ECS task when the tables do not exist. Terraform creates the tables, so the default is false; see README.md."
  type        = bool
  default     = false
}

# ---------------------------------------------------------------------------
# Alerts (SNS)
# ---------------------------------------------------------------------------

variable "alert_topic_name" {
  description = "Name of the SNS alert topic. Empty: \"<name>-alerts\"."
  type        = string
  default     = ""
}

variable "alert_email" {
  description = "Optional e-mail address subscribed to the alert topic (AWS sends a confirmation mail). Empty: no subscription."
  type        = string
  default     = ""
}

variable "alert_on_task_failure" {
  description = "Also publish to the alert topic when a chimport task fails to start or exits with a code other than 0, 1 or 3 (2 = bad config, 137 = out of memory, ...). Exit code 1 (a connection failed) is left to chimport's own lag alerts, and 3 (records the target refused) to its rejected-records alert."
  type        = bool
  default     = true
}

variable "no_run_alarm_minutes" {
  description = "Dead man's switch: alarm on the alert topic when no connection has completed a run for this many minutes. Null (the default): 3 x the period of a rate() schedule, 270 for rate(90 minutes); a cron() schedule needs a value."
  type        = number
  default     = null

  validation {
    condition     = var.no_run_alarm_minutes == null ? true : var.no_run_alarm_minutes >= 10 && var.no_run_alarm_minutes <= 10080
    error_message = "no_run_alarm_minutes must be between 10 and 10080 (7 days)."
  }
}

# ---------------------------------------------------------------------------
# Config (S3)
# ---------------------------------------------------------------------------

variable "config_file" {
  description = "Path of the local chimport config file to upload (relative to the directory terraform runs in). The tokens __STATE_URL__, __ALERT_TOPIC_ARN__ and __AWS_REGION__ are replaced on upload; $${VAR} references are left for chimport."
  type        = string
  default     = "chimport.yaml"
}

variable "config_bucket_name" {
  description = "Name of the S3 bucket for the config. Empty: a unique name starting with \"<name>-config-\"."
  type        = string
  default     = ""
}

variable "config_key" {
  description = "Object key of the config in the bucket."
  type        = string
  default     = "chimport.yaml"
}

variable "config_bucket_force_destroy" {
  description = "Let `terraform destroy` delete the config bucket with every version of the config in it."
  type        = bool
  default     = false
}

# ---------------------------------------------------------------------------
# Secrets
# ---------------------------------------------------------------------------

variable "secrets_backend" {
  description = "Where the secrets live: ssm (default: SSM Parameter Store SecureString parameters, no per-secret cost) or secretsmanager."
  type        = string
  default     = "ssm"

  validation {
    condition     = contains(["ssm", "secretsmanager"], var.secrets_backend)
    error_message = "secrets_backend must be ssm or secretsmanager."
  }
}

variable "secret_env_names" {
  description = "Environment variables the task gets from secrets, one parameter (or secret) each; the config refers to them as $${NAME}."
  type        = list(string)
  default     = ["MAILCHIMP_API_KEY", "TARGET_API_KEY"]

  validation {
    condition     = alltrue([for n in var.secret_env_names : can(regex("^[A-Z_][A-Z0-9_]*$", n))])
    error_message = "secret_env_names must be environment variable names (A-Z, 0-9, _)."
  }
}

variable "secrets_prefix" {
  description = "Prefix of the parameter (or secret) names. Empty: \"/<name>/\", e.g. /chimport/MAILCHIMP_API_KEY."
  type        = string
  default     = ""
}

variable "secret_recovery_window_days" {
  description = "Secrets Manager only: days a deleted secret can be restored (0 deletes at once)."
  type        = number
  default     = 7
}
