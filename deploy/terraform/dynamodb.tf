# chimport's state store on AWS (config: state: dynamodb://?region=...).
# The first two tables keep the original importer's names and keys; if they
# already exist in the account, import them instead of creating them (see
# README.md, "Adopting the original importer's tables").

locals {
  state_tables = [
    aws_dynamodb_table.import_history,
    aws_dynamodb_table.failed_imports,
    aws_dynamodb_table.run_history,
  ]

  # The config's `state:` URL for these tables (the __STATE_URL__ token in
  # the config file, see config.tf).
  state_url = "dynamodb://?region=${var.aws_region}&history_table=${aws_dynamodb_table.import_history.name}&failures_table=${aws_dynamodb_table.failed_imports.name}&runs_table=${aws_dynamodb_table.run_history.name}"
}

# One item per connection: watermark, last success/attempt/error, counts,
# checkpoint.
resource "aws_dynamodb_table" "import_history" {
  name                        = var.import_history_table_name
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "ListId"
  deletion_protection_enabled = var.dynamodb_deletion_protection

  attribute {
    name = "ListId"
    type = "S"
  }

  point_in_time_recovery {
    enabled = true
  }
}

# The failures log: one item per failed page (connection, window, offset).
resource "aws_dynamodb_table" "failed_imports" {
  name                        = var.failed_imports_table_name
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "ListId"
  range_key                   = "offset"
  deletion_protection_enabled = var.dynamodb_deletion_protection

  attribute {
    name = "ListId"
    type = "S"
  }

  attribute {
    name = "offset"
    type = "N"
  }

  point_in_time_recovery {
    enabled = true
  }
}

# Run history: one item per run of a connection.
resource "aws_dynamodb_table" "run_history" {
  name                        = var.run_history_table_name
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "ListId"
  range_key                   = "RunId"
  deletion_protection_enabled = var.dynamodb_deletion_protection

  attribute {
    name = "ListId"
    type = "S"
  }

  attribute {
    name = "RunId"
    type = "S"
  }

  point_in_time_recovery {
    enabled = true
  }
}
