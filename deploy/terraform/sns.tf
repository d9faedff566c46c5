# Alerts. chimport publishes lag alerts and errors that need a person
# (config: alerts: {sns_topic_arn: ...}); with alert_on_task_failure, tasks
# that fail to start or crash are reported here too, and the dead man's
# switch (alarms.tf) reports when no run has completed for a while.

locals {
  alert_topic_name = var.alert_topic_name != "" ? var.alert_topic_name : "${var.name}-alerts"
}

resource "aws_sns_topic" "alerts" {
  name = local.alert_topic_name
  # Without a customer managed key the topic is not encrypted: EventBridge
  # cannot publish to a topic encrypted with the AWS managed aws/sns key, and
  # chimport's alerts never carry secrets.
  kms_master_key_id = local.use_cmk ? var.kms_key_arn : null
}

resource "aws_sns_topic_subscription" "alert_email" {
  count = var.alert_email == "" ? 0 : 1

  topic_arn = aws_sns_topic.alerts.arn
  protocol  = "email"
  endpoint  = var.alert_email
}

# ---------------------------------------------------------------------------
# Tasks that fail to start (image missing, secret missing, no network) or exit
# with a code other than 0, 1 and 3 (2 = bad config, 137 = killed for memory).
# Exit code 1 means a connection failed; chimport retries it on the next run
# and raises its own alert when the audience falls behind. Exit code 3 means
# every connection completed but the target refused records; chimport keeps
# them in the rejected log and has alerted once already. Neither is reported
# here: it would page on every run.
# ---------------------------------------------------------------------------

resource "aws_cloudwatch_event_rule" "task_failed" {
  count = var.alert_on_task_failure ? 1 : 0

  name        = "${var.name}-task-failed"
  description = "A chimport task failed to start or exited with a code other than 0, 1 or 3."

  event_pattern = jsonencode({
    source        = ["aws.ecs"]
    "detail-type" = ["ECS Task State Change"]
    detail = {
      clusterArn        = [aws_ecs_cluster.chimport.arn]
      taskDefinitionArn = [{ prefix = "${aws_ecs_task_definition.chimport.arn_without_revision}:" }]
      lastStatus        = ["STOPPED"]
      "$or" = [
        { stopCode = ["TaskFailedToStart"] },
        { containers = { exitCode = [{ "anything-but" = [0, 1, 3] }] } },
      ]
    }
  })
}

resource "aws_cloudwatch_event_target" "task_failed" {
  count = var.alert_on_task_failure ? 1 : 0

  rule = aws_cloudwatch_event_rule.task_failed[0].name
  arn  = aws_sns_topic.alerts.arn
}

resource "aws_sns_topic_policy" "alerts" {
  arn    = aws_sns_topic.alerts.arn
  policy = data.aws_iam_policy_document.alerts_topic.json
}

# The policy used to exist only with alert_on_task_failure; the alarm needs it
# always.
moved {
  from = aws_sns_topic_policy.alerts[0]
  to   = aws_sns_topic_policy.alerts
}

# Resource policy of the topic: only the dead man's switch alarm and the
# task-failure rule above may publish as a service. IAM principals of the
# account (the task role) publish through their own identity policies.
data "aws_iam_policy_document" "alerts_topic" {
  statement {
    sid       = "CloudWatchNoRunAlarm"
    effect    = "Allow"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.alerts.arn]

    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }

    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = ["arn:${local.partition}:cloudwatch:${var.aws_region}:${local.account_id}:alarm:${local.no_run_alarm_name}"]
    }
  }

  dynamic "statement" {
    for_each = var.alert_on_task_failure ? [1] : []
    content {
      sid       = "EventBridgeTaskFailures"
      effect    = "Allow"
      actions   = ["sns:Publish"]
      resources = [aws_sns_topic.alerts.arn]

      principals {
        type        = "Service"
        identifiers = ["events.amazonaws.com"]
      }

      condition {
        test     = "ArnEquals"
        variable = "aws:SourceArn"
        values   = ["arn:${local.partition}:events:${var.aws_region}:${local.account_id}:rule/${var.name}-task-failed"]
      }
    }
  }
}
