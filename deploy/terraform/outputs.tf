output "ecr_repository_url" {
  description = "Push the image here: docker push <url>:<image_tag>."
  value       = aws_ecr_repository.chimport.repository_url
}

output "image" {
  description = "The image the task definition runs."
  value       = local.image
}

output "docker_platform" {
  description = "The --platform to build the image for, matching cpu_architecture."
  value       = var.cpu_architecture == "ARM64" ? "linux/arm64" : "linux/amd64"
}

output "ecs_cluster_name" {
  description = "ECS cluster the scheduled tasks run in."
  value       = aws_ecs_cluster.chimport.name
}

output "ecs_cluster_arn" {
  description = "ARN of the ECS cluster."
  value       = aws_ecs_cluster.chimport.arn
}

output "task_definition_arn" {
  description = "ARN (with revision) of the chimport task definition."
  value       = aws_ecs_task_definition.chimport.arn
}

output "task_definition_family" {
  description = "Family of the chimport task definition."
  value       = aws_ecs_task_definition.chimport.family
}

output "schedule_name" {
  description = "Name of the EventBridge Scheduler schedule (with shards > 1, shard 1's; schedule_names lists them all)."
  value       = aws_scheduler_schedule.chimport[0].name
}

output "schedule_names" {
  description = "Names of the EventBridge Scheduler schedules, one per shard, shard 1 first."
  value       = aws_scheduler_schedule.chimport[*].name
}

output "log_group_name" {
  description = "CloudWatch log group of the tasks: aws logs tail <name> --follow."
  value       = aws_cloudwatch_log_group.chimport.name
}

output "alert_topic_arn" {
  description = "SNS topic for alerts (alerts.sns_topic_arn in the config)."
  value       = aws_sns_topic.alerts.arn
}

output "dynamodb_table_names" {
  description = "The state tables."
  value = {
    import_history = aws_dynamodb_table.import_history.name
    failed_imports = aws_dynamodb_table.failed_imports.name
    run_history    = aws_dynamodb_table.run_history.name
  }
}

output "state_url" {
  description = "The config's state: URL for the three tables (what __STATE_URL__ becomes)."
  value       = local.state_url
}

output "config_bucket" {
  description = "S3 bucket holding the config."
  value       = aws_s3_bucket.config.bucket
}

output "config_uri" {
  description = "CHIMPORT_CONFIG of the task."
  value       = local.config_uri
}

output "secret_names" {
  description = "Parameter (or secret) name per environment variable; put the values with the AWS CLI."
  value       = var.secrets_backend == "ssm" ? tomap({ for k, p in aws_ssm_parameter.secret : k => p.name }) : tomap({ for k, s in aws_secretsmanager_secret.secret : k => s.name })
}

output "task_role_arn" {
  description = "Role chimport runs with (state tables, alert topic, config object)."
  value       = aws_iam_role.task.arn
}

output "execution_role_arn" {
  description = "Role the ECS agent uses (image pull, logs, secrets)."
  value       = aws_iam_role.execution.arn
}

output "run_task_network_configuration" {
  description = "The --network-configuration for a one-off `aws ecs run-task` (init, check, status; see README.md)."
  value       = "awsvpcConfiguration={subnets=[${join(",", var.subnet_ids)}],securityGroups=[${join(",", var.security_group_ids)}],assignPublicIp=${var.assign_public_ip ? "ENABLED" : "DISABLED"}}"
}

output "no_run_alarm_name" {
  description = "CloudWatch alarm (dead man's switch) that notifies the alert topic when no run has completed for no_run_alarm_minutes."
  value       = aws_cloudwatch_metric_alarm.no_run_completed.alarm_name
}

output "no_run_alarm_minutes" {
  description = "Minutes without a completed run after which the dead man's switch fires."
  value       = local.no_run_alarm_minutes
}
