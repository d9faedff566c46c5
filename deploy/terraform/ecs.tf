# The cluster and the Fargate task that runs `chimport run` once and exits.

resource "aws_ecs_cluster" "chimport" {
  name = var.name

  setting {
    name  = "containerInsights"
    value = var.container_insights ? "enabled" : "disabled"
  }
}

resource "aws_cloudwatch_log_group" "chimport" {
  name              = "/ecs/${var.name}"
  retention_in_days = var.log_retention_days
}

locals {
  image       = "${aws_ecr_repository.chimport.repository_url}:${var.image_tag}"
  config_uri  = "s3://${aws_s3_bucket.config.bucket}/${aws_s3_object.config.key}"
  secret_arns = var.secrets_backend == "ssm" ? tomap({ for k, p in aws_ssm_parameter.secret : k => p.arn }) : tomap({ for k, s in aws_secretsmanager_secret.secret : k => s.arn })

  environment = merge(
    var.extra_environment,
    {
      CHIMPORT_CONFIG = local.config_uri
      AWS_REGION      = var.aws_region
    },
  )
}

resource "aws_ecs_task_definition" "chimport" {
  family                   = var.name
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.task_cpu
  memory                   = var.task_memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }

  # A small writable /tmp; the root filesystem is read-only.
  volume {
    name = "tmp"
  }

  container_definitions = jsonencode([
    {
      name      = "chimport"
      image     = local.image
      essential = true

      # The image's ENTRYPOINT is /chimport. One-off tasks override this
      # (["init"], ["check"], ["status"]); see README.md.
      command = concat(["run"], var.run_args)

      environment = [for k in sort(keys(local.environment)) : { name = k, value = local.environment[k] }]

      # Injected by the ECS agent with the execution role; the config refers
      # to them as ${MAILCHIMP_API_KEY}, ${TARGET_API_KEY}, ...
      secrets = [for k in sort(keys(local.secret_arns)) : { name = k, valueFrom = local.secret_arns[k] }]

      readonlyRootFilesystem = true
      user                   = "65532:65532"
      stopTimeout            = var.stop_timeout

      mountPoints = [
        { sourceVolume = "tmp", containerPath = "/tmp", readOnly = false },
      ]

      # chimport logs JSON to stderr when it has no terminal.
      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = aws_cloudwatch_log_group.chimport.name
          awslogs-region        = var.aws_region
          awslogs-stream-prefix = "chimport"
        }
      }
    },
  ])
}
