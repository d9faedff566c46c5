# The chimport config file, in S3. The task reads it at start
# (CHIMPORT_CONFIG=s3://bucket/key), so a changed config takes effect at the
# next run without a new task definition.

locals {
  # Tokens let one file serve every environment:
  #   __STATE_URL__        dynamodb://?region=...&history_table=...&... (the tables in dynamodb.tf)
  #   __ALERT_TOPIC_ARN__  the alert topic in sns.tf
  #   __AWS_REGION__       var.aws_region
  # chimport's own ${VAR} references are left as they are.
  config_content = replace(replace(replace(file(var.config_file),
    "__STATE_URL__", local.state_url),
    "__ALERT_TOPIC_ARN__", aws_sns_topic.alerts.arn),
  "__AWS_REGION__", var.aws_region)
}

resource "aws_s3_bucket" "config" {
  bucket        = var.config_bucket_name != "" ? var.config_bucket_name : null
  bucket_prefix = var.config_bucket_name == "" ? "${var.name}-config-" : null
  force_destroy = var.config_bucket_force_destroy
}

resource "aws_s3_bucket_ownership_controls" "config" {
  bucket = aws_s3_bucket.config.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "config" {
  bucket = aws_s3_bucket.config.id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "config" {
  bucket = aws_s3_bucket.config.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "config" {
  bucket = aws_s3_bucket.config.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = local.use_cmk ? "aws:kms" : "AES256"
      kms_master_key_id = local.use_cmk ? var.kms_key_arn : null
    }
    bucket_key_enabled = local.use_cmk
  }
}

# Old versions of the config stay restorable for 90 days.
resource "aws_s3_bucket_lifecycle_configuration" "config" {
  bucket = aws_s3_bucket.config.id

  rule {
    id     = "expire-old-config-versions"
    status = "Enabled"

    filter {}

    noncurrent_version_expiration {
      noncurrent_days = 90
    }
  }

  depends_on = [aws_s3_bucket_versioning.config]
}

# HTTPS only.
resource "aws_s3_bucket_policy" "config" {
  bucket = aws_s3_bucket.config.id
  policy = data.aws_iam_policy_document.config_bucket.json

  depends_on = [aws_s3_bucket_public_access_block.config]
}

data "aws_iam_policy_document" "config_bucket" {
  # A Deny: it takes permissions away, so its wildcards grant nothing.
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.config.arn, "${aws_s3_bucket.config.arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_object" "config" {
  bucket       = aws_s3_bucket.config.id
  key          = var.config_key
  content      = local.config_content
  content_type = "application/yaml"

  depends_on = [
    aws_s3_bucket_versioning.config,
    aws_s3_bucket_server_side_encryption_configuration.config,
    aws_s3_bucket_ownership_controls.config,
  ]
}
