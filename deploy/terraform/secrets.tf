# Secrets for the task, injected as environment variables through the task
# definition's `secrets` (never in the task definition, the image or the
# config file).
#
# Default backend: SSM Parameter Store SecureString parameters
# (secrets_backend = "ssm"): no per-secret cost, enough for API keys that are
# rotated by hand. secrets_backend = "secretsmanager" uses Secrets Manager
# secrets instead (rotation, cross-account sharing; $0.40 per secret-month).
#
# Terraform creates the parameters (or secrets) with a placeholder and never
# touches the value again; put the real values with the AWS CLI (README.md),
# so they never enter the Terraform state.

locals {
  secrets_prefix = var.secrets_prefix != "" ? var.secrets_prefix : "/${var.name}/"
}

resource "aws_ssm_parameter" "secret" {
  for_each = var.secrets_backend == "ssm" ? toset(var.secret_env_names) : toset([])

  name        = "${local.secrets_prefix}${each.key}"
  description = "chimport: ${each.key} (set with aws ssm put-parameter --overwrite)"
  type        = "SecureString"
  key_id      = local.use_cmk ? var.kms_key_arn : null
  value       = "placeholder: set with aws ssm put-parameter --overwrite"

  lifecycle {
    ignore_changes = [value]
  }
}

# Secrets Manager: the secret is created empty; a task fails to start (and
# the task-failure alert fires) until a value is put.
resource "aws_secretsmanager_secret" "secret" {
  for_each = var.secrets_backend == "secretsmanager" ? toset(var.secret_env_names) : toset([])

  name                    = trimprefix("${local.secrets_prefix}${each.key}", "/")
  description             = "chimport: ${each.key} (set with aws secretsmanager put-secret-value)"
  kms_key_id              = local.use_cmk ? var.kms_key_arn : null
  recovery_window_in_days = var.secret_recovery_window_days
}
