# shellcheck shell=bash
# DynamoDB's JSON API over curl, for the stack's scripts (sourced).
# Expects REGION to be set. DynamoDB Local and LocalStack accept any
# credentials; these keep SigV4 signing well-formed.

# dynamodb_call PORT TARGET BODY: one signed call to the DynamoDB JSON API on
# 127.0.0.1:PORT; prints the body, a newline and the HTTP status.
dynamodb_call() {
  curl -sS --max-time 30 -X POST "http://127.0.0.1:$1/" \
    --aws-sigv4 "aws:amz:$REGION:dynamodb" --user "dynagatelocal:dynagatelocal" \
    -H "Content-Type: application/x-amz-json-1.0" \
    -H "X-Amz-Target: DynamoDB_20120810.$2" \
    --data-binary "$3" -w '\n%{http_code}'
}

# dynamodb_answers PORT: true when ListTables succeeds (never throttled by
# LocalStack's DYNAMODB_ERROR_PROBABILITY, which hits item operations only).
dynamodb_answers() {
  local reply
  reply="$(dynamodb_call "$1" ListTables '{}' 2>/dev/null)" || return 1
  [ "${reply##*$'\n'}" = "200" ]
}
