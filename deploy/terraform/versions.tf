terraform {
  # 1.5 for import blocks (adopting the original importer's DynamoDB tables,
  # see README.md).
  required_version = ">= 1.5.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.0"
    }
  }

  # Keep state remotely in a real deployment, e.g.:
  #
  # backend "s3" {
  #   bucket         = "my-terraform-state"
  #   key            = "chimport/terraform.tfstate"
  #   region         = "eu-west-1"
  #   dynamodb_table = "terraform-locks"
  #   encrypt        = true
  # }
}

provider "aws" {
  region = var.aws_region

  default_tags {
    tags = merge(
      {
        Application = "chimport"
        ManagedBy   = "terraform"
      },
      var.tags,
    )
  }
}

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition

  # Optional customer managed KMS key for the secrets, the config bucket and
  # the alert topic. Empty: AWS managed keys (aws/ssm, aws/secretsmanager,
  # SSE-S3) and an unencrypted topic.
  use_cmk = var.kms_key_arn != ""
}
