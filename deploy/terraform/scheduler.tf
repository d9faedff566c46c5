# EventBridge Scheduler starts one `chimport run` task per firing, every 90
# minutes by default, like the original importer.
#
# Overlap: Scheduler does not wait for the previous task. An incremental run
# takes seconds, and should one run overlap the next, chimport's watermark
# only ever moves forward, so an overlap costs duplicate work, never data.

resource "aws_scheduler_schedule" "chimport" {
  name        = var.name
  description = "Runs chimport run (Mailchimp -> target sync) on ${var.schedule}."

  schedule_expression          = var.schedule
  schedule_expression_timezone = var.schedule_timezone
  state                        = var.schedule_enabled ? "ENABLED" : "DISABLED"

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = aws_ecs_cluster.chimport.arn
    role_arn = aws_iam_role.scheduler.arn

    ecs_parameters {
      # This revision: a new revision from `terraform apply` updates the
      # schedule in the same apply.
      task_definition_arn = aws_ecs_task_definition.chimport.arn
      launch_type         = "FARGATE"
      task_count          = 1

      network_configuration {
        subnets          = var.subnet_ids
        security_groups  = var.security_group_ids
        assign_public_ip = var.assign_public_ip
      }
    }

    # Retries cover RunTask failing (e.g. no Fargate capacity), not a task
    # that ran and failed: the next firing repairs that.
    retry_policy {
      maximum_retry_attempts       = 3
      maximum_event_age_in_seconds = 1800
    }
  }
}
