# Least-privilege roles:
#
#   execution  used by the ECS agent: pull the image, write logs, read the
#              secrets it injects (and decrypt them with the CMK, if any).
#   task       used by chimport: the three state tables, publish to the alert
#              topic, read the config object. Nothing else.
#   scheduler  used by EventBridge Scheduler: run this task family on this
#              cluster and pass the two roles above to ECS.
#
# The only "*" resource is ecr:GetAuthorizationToken, which AWS does not
# allow to be scoped to a resource.

# ---------------------------------------------------------------------------
# Task execution role
# ---------------------------------------------------------------------------

# The ECS agent assumes the execution role; the trust policy is the one AWS
# documents for it.
data "aws_iam_policy_document" "execution_assume" {
  statement {
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "execution" {
  name               = "${var.name}-task-execution"
  description        = "ECS agent for chimport tasks: image pull, logs, secrets."
  assume_role_policy = data.aws_iam_policy_document.execution_assume.json
}

data "aws_iam_policy_document" "execution" {
  statement {
    sid       = "EcrAuth"
    effect    = "Allow"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"] # AWS requires "*" for this action.
  }

  statement {
    sid    = "EcrPull"
    effect = "Allow"
    actions = [
      "ecr:BatchCheckLayerAvailability",
      "ecr:BatchGetImage",
      "ecr:GetDownloadUrlForLayer",
    ]
    resources = [aws_ecr_repository.chimport.arn]
  }

  statement {
    sid       = "Logs"
    effect    = "Allow"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.chimport.arn}:log-stream:*"]
  }

  dynamic "statement" {
    for_each = length(local.secret_arns) > 0 ? [1] : []
    content {
      sid       = "Secrets"
      effect    = "Allow"
      actions   = var.secrets_backend == "ssm" ? ["ssm:GetParameters"] : ["secretsmanager:GetSecretValue"]
      resources = values(local.secret_arns)
    }
  }

  dynamic "statement" {
    for_each = local.use_cmk ? [1] : []
    content {
      sid       = "DecryptSecrets"
      effect    = "Allow"
      actions   = ["kms:Decrypt"]
      resources = [var.kms_key_arn]
    }
  }
}

resource "aws_iam_role_policy" "execution" {
  name   = "${var.name}-task-execution"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution.json
}

# ---------------------------------------------------------------------------
# Task role (chimport itself)
# ---------------------------------------------------------------------------

# Tasks of this account only (confused-deputy protection, as the ECS task
# role documentation shows).
data "aws_iam_policy_document" "task_assume" {
  statement {
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }

    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = ["arn:${local.partition}:ecs:${var.aws_region}:${local.account_id}:*"]
    }
  }
}

resource "aws_iam_role" "task" {
  name               = "${var.name}-task"
  description        = "chimport: state tables, alert topic, config object."
  assume_role_policy = data.aws_iam_policy_document.task_assume.json
}

data "aws_iam_policy_document" "task" {
  # Exactly the calls internal/state's DynamoDB store makes (deploy_test.go
  # checks the list against the code): DescribeTable when it opens, GetItem /
  # PutItem / UpdateItem / Query during runs, Scan of the history table for
  # `chimport status`, BatchWriteItem to delete resolved failures, trim old
  # runs and write the roster, BatchGetItem to read the roster's buckets.
  statement {
    sid    = "StateTables"
    effect = "Allow"
    actions = [
      "dynamodb:BatchGetItem",
      "dynamodb:BatchWriteItem",
      "dynamodb:DescribeTable",
      "dynamodb:GetItem",
      "dynamodb:PutItem",
      "dynamodb:Query",
      "dynamodb:Scan",
      "dynamodb:UpdateItem",
    ]
    resources = [for t in local.state_tables : t.arn]
  }

  # `chimport init` creates missing tables. Terraform creates them, so this
  # is off by default; see README.md.
  dynamic "statement" {
    for_each = var.allow_create_tables ? [1] : []
    content {
      sid       = "CreateStateTables"
      effect    = "Allow"
      actions   = ["dynamodb:CreateTable"]
      resources = [for t in local.state_tables : t.arn]
    }
  }

  statement {
    sid       = "Alerts"
    effect    = "Allow"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.alerts.arn]
  }

  statement {
    sid       = "Config"
    effect    = "Allow"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.config.arn}/${aws_s3_object.config.key}"]
  }

  # With a CMK: read the SSE-KMS config object and publish to the encrypted
  # topic.
  dynamic "statement" {
    for_each = local.use_cmk ? [1] : []
    content {
      sid       = "Kms"
      effect    = "Allow"
      actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources = [var.kms_key_arn]
    }
  }
}

resource "aws_iam_role_policy" "task" {
  name   = "${var.name}-task"
  role   = aws_iam_role.task.id
  policy = data.aws_iam_policy_document.task.json
}

# ---------------------------------------------------------------------------
# Scheduler role
# ---------------------------------------------------------------------------

data "aws_iam_policy_document" "scheduler_assume" {
  statement {
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["scheduler.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "scheduler" {
  name               = "${var.name}-scheduler"
  description        = "EventBridge Scheduler: run the chimport task."
  assume_role_policy = data.aws_iam_policy_document.scheduler_assume.json
}

data "aws_iam_policy_document" "scheduler" {
  statement {
    sid     = "RunTask"
    effect  = "Allow"
    actions = ["ecs:RunTask"]
    # Every revision of this family ...
    resources = ["${aws_ecs_task_definition.chimport.arn_without_revision}:*"]

    # ... on this cluster only.
    condition {
      test     = "ArnEquals"
      variable = "ecs:cluster"
      values   = [aws_ecs_cluster.chimport.arn]
    }
  }

  statement {
    sid       = "PassTaskRoles"
    effect    = "Allow"
    actions   = ["iam:PassRole"]
    resources = [aws_iam_role.execution.arn, aws_iam_role.task.arn]

    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["ecs-tasks.amazonaws.com"]
    }
  }
}

resource "aws_iam_role_policy" "scheduler" {
  name   = "${var.name}-scheduler"
  role   = aws_iam_role.scheduler.id
  policy = data.aws_iam_policy_document.scheduler.json
}
