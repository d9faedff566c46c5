# EventBridge Scheduler starts one `chimport run` task per firing, every 90
# minutes by default, like the original importer.
#
# Overlap: Scheduler does not wait for the previous task. An incremental run
# takes seconds, and should one run overlap the next, chimport's watermark
# only ever moves forward, so an overlap costs duplicate work, never data.
#
# Shards: with shards = N > 1 there are N schedules on the same expression,
# one per shard, and schedule i (1-based) starts its task with
# CHIMPORT_SHARD=i/N. That task runs only the connections whose stable hash
# of the name falls in shard i of N; the shards are disjoint and together
# cover every connection. One schedule per shard rather than one with
# task_count = N, since every task of a RunTask call gets the same overrides.
# With shards = 1 (the default) the one schedule is today's, unchanged: same
# name, no override.

resource "aws_scheduler_schedule" "chimport" {
  count = var.shards

  name        = var.shards == 1 ? var.name : "${var.name}-shard-${count.index + 1}"
  description = var.shards == 1 ? "Runs chimport run (Mailchimp -> target sync) on ${var.schedule}." : "Runs chimport run for shard ${count.index + 1} of ${var.shards} (Mailchimp -> target sync) on ${var.schedule}."

  schedule_expression          = var.schedule
  schedule_expression_timezone = var.schedule_timezone
  state                        = var.schedule_enabled ? "ENABLED" : "DISABLED"

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = aws_ecs_cluster.chimport.arn
    role_arn = aws_iam_role.scheduler.arn

    # For an ECS target, Scheduler passes the input to RunTask as the task's
    # overrides: the container (named as in ecs.tf) gets CHIMPORT_SHARD on
    # top of the task definition's environment.
    input = var.shards == 1 ? null : jsonencode({
      containerOverrides = [{
        name        = "chimport"
        environment = [{ name = "CHIMPORT_SHARD", value = "${count.index + 1}/${var.shards}" }]
      }]
    })

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

  lifecycle {
    # `run --shard` on the command line wins over CHIMPORT_SHARD: every task
    # would run the same shard, and the others' connections none.
    precondition {
      condition     = var.shards == 1 || length([for a in var.run_args : a if startswith(a, "--shard")]) == 0
      error_message = "run_args: leave --shard and --shards out when shards > 1; each scheduled task gets its shard through CHIMPORT_SHARD."
    }
  }
}

# The schedule had no count before shards: keep it (shard 1) rather than
# replace it.
moved {
  from = aws_scheduler_schedule.chimport
  to   = aws_scheduler_schedule.chimport[0]
}
