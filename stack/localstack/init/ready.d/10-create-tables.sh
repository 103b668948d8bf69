#!/bin/bash
# LocalStack ready hook: create every table in stack/tables/*.json (the same
# CreateTable requests stack/stack.sh sends to DynamoDB Local).
set -euo pipefail
for file in /etc/localstack/init/tables/*.json; do
  table="$(sed -n 's/^ *"TableName": *"\([^"]*\)".*/\1/p' "$file" | head -n1)"
  if awslocal dynamodb describe-table --table-name "$table" >/dev/null 2>&1; then
    echo "table $table exists"
  else
    awslocal dynamodb create-table --cli-input-json "file://$file" >/dev/null
    awslocal dynamodb wait table-exists --table-name "$table"
    echo "table $table created"
  fi
done
