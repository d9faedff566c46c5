# Dead man's switch: an alarm on the alert topic when no `chimport run` has
# completed for no_run_alarm_minutes (default 3 x the schedule period).
#
# chimport's own alerts need a process that runs. When the schedule stops
# (a broken image, a wrong role, a disabled schedule, no Fargate capacity)
# nothing runs that could alert, so CloudWatch watches for the absence of the
# JSON line every successful connection run writes to stderr
# (--log-format auto is JSON without a terminal; awslogs ships each line as
# one event of the log group):
#
#   {"time":"...","level":"INFO","msg":"run completed","connection":"newsletter",...}
#
# A failed connection logs "run failed" (level ERROR) instead and does not
# count. Missing data is breaching: a log group without a single line alarms
# too.

locals {
  # "rate(90 minutes)" -> 90. A cron() schedule has no fixed period: set
  # no_run_alarm_minutes for it.
  schedule_rate           = try(regex("^rate\\((\\d+) (minutes?|hours?|days?)\\)$", var.schedule), null)
  schedule_period_minutes = local.schedule_rate == null ? 0 : tonumber(local.schedule_rate[0]) * { minute = 1, minutes = 1, hour = 60, hours = 60, day = 1440, days = 1440 }[local.schedule_rate[1]]
  no_run_alarm_minutes    = var.no_run_alarm_minutes != null ? var.no_run_alarm_minutes : 3 * local.schedule_period_minutes

  # 5-minute periods, all of which must be empty: the alarm fires at most 5
  # minutes late. CloudWatch allows 1 day of periods shorter than an hour and
  # 7 days of longer ones.
  no_run_alarm_period  = local.no_run_alarm_minutes <= 1440 ? 300 : 3600
  no_run_alarm_periods = max(1, ceil(local.no_run_alarm_minutes * 60 / local.no_run_alarm_period))
  no_run_alarm_name    = "${var.name}-no-run-completed"
}

resource "aws_cloudwatch_log_metric_filter" "run_completed" {
  name           = "${var.name}-run-completed"
  log_group_name = aws_cloudwatch_log_group.chimport.name
  pattern        = "{ $.msg = \"run completed\" }"

  # One per connection that completed a run; no default value, so a period
  # without any completed run has no data (breaching, below).
  metric_transformation {
    namespace = var.name
    name      = "RunsCompleted"
    value     = "1"
    unit      = "Count"
  }
}

resource "aws_cloudwatch_metric_alarm" "no_run_completed" {
  alarm_name        = local.no_run_alarm_name
  alarm_description = "No chimport run has completed for ${local.no_run_alarm_minutes} minutes (schedule ${var.schedule}): no \"run completed\" line in ${aws_cloudwatch_log_group.chimport.name}. Check the schedule, the last task's stop reason and its logs (deploy/terraform/README.md)."

  namespace   = aws_cloudwatch_log_metric_filter.run_completed.metric_transformation[0].namespace
  metric_name = aws_cloudwatch_log_metric_filter.run_completed.metric_transformation[0].name
  statistic   = "Sum"

  period              = local.no_run_alarm_period
  evaluation_periods  = local.no_run_alarm_periods
  datapoints_to_alarm = local.no_run_alarm_periods
  comparison_operator = "LessThanThreshold"
  threshold           = 1
  treat_missing_data  = "breaching"

  # A paused schedule (schedule_enabled = false, e.g. while setting up)
  # runs nothing on purpose: the alarm still changes state, but notifies
  # nobody.
  actions_enabled = var.schedule_enabled
  alarm_actions   = [aws_sns_topic.alerts.arn]
  ok_actions      = [aws_sns_topic.alerts.arn]

  lifecycle {
    precondition {
      condition     = local.no_run_alarm_minutes > 0
      error_message = "no_run_alarm_minutes: the schedule is not a rate() expression, so set how long without a completed run should alarm."
    }
    precondition {
      condition     = local.no_run_alarm_minutes <= 10080
      error_message = "no_run_alarm_minutes: CloudWatch alarms look back at most 7 days (10080 minutes)."
    }
  }
}
