#!/usr/bin/env bash
# The commands of dynagate's README. They install what is missing (Redis from
# Debian, DynamoDB Local from npm), start what is not already running, and stop
# on exit exactly the servers they started themselves: a stack you started with
# `stack/stack.sh start` keeps running, and a second run right after the first
# starts cleanly.
set -euo pipefail

usage() {
  cat <<'EOF'
./dev.sh run    set up the local stack and run the example users API
./dev.sh test   set up the local stack and run the whole test suite, then
                the LocalStack lane (the suite again against LocalStack;
                LOCALSTACK_LANE=off skips it)
./dev.sh bench  set up DynamoDB Local and Redis and run the benchmark programs (release)
./dev.sh arena  the abuse arena: legitimate users and attacks at once, dynagate's
                users API against the Flask baseline (about 5 minutes)
EOF
}

# stack_up, stack_down; REPO_ROOT.
# shellcheck source=stack/lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/stack/lib.sh"
cd "$REPO_ROOT"

# up COMPONENT...: stack_up, and stop on exit what it started.
up() {
  trap stack_down EXIT
  trap 'exit 130' INT TERM
  stack_up "$@"
}

run_tests() {
  up dynamodb redis cluster
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
    stack/localstack/localstack-lane.sh run
  fi
}

run_benches() {
  # The cluster for cluster_spread.
  up dynamodb redis cluster
  cargo bench --bench throttled_writes
  cargo bench --bench goodput
  cargo bench --bench list_charge
  cargo bench --bench limiter
  cargo bench --bench direct_get
  cargo bench --bench cluster_spread
  benches/compare/users_api_wrk.sh
  benches/arena/arena.sh
  # The comparisons with the Flask stack, Python `limits`, redis-benchmark
  # and the plain SDK; it also runs benches/overhead.rs.
  benches/compare/compare.sh
  # Where the service's CPU goes on a GET, and what the release profile buys.
  benches/compare/profile_get.sh
  benches/compare/release_profile.sh
  # Cores and Redis shards per 10k/100k/1M requests/s, from the results above.
  python3 benches/compare/sizing.py
}

# The abuse arena starts its own Redis, proxies, tables and services; it uses
# the DynamoDB Local that answers where `stack/stack.sh env` says (even one
# another checkout started) and starts one only when none does.
run_arena() {
  benches/arena/arena.sh
}

run_example() {
  up dynamodb redis
  local bind="${BIND_ADDR:-127.0.0.1:3000}" key
  cargo build -p users-api
  key="$(RUST_LOG=warn cargo run -q -p users-api -- issue-key --owner demo 2>/dev/null)"
  printf '\n  The users API listens on http://%s (Ctrl-C stops it and the stack).\n' "$bind"
  printf '  A demo API key was issued (stored hashed, shown only now):\n\n'
  printf '    export KEY=%s\n' "$key"
  # shellcheck disable=SC2016 # $KEY is for the reader's shell
  printf '    curl -i -X POST http://%s/api/v1/users -H "X-API-Key: $KEY" \\\n' "$bind"
  printf '         -H "Content-Type: application/json" \\\n'
  printf '         -d %s\n' "'{\"user_id\":\"ada\",\"email\":\"ada@example.com\",\"name\":\"Ada Lovelace\"}'"
  # shellcheck disable=SC2016 # $KEY is for the reader's shell
  printf '    curl -i http://%s/api/v1/users/ada -H "X-API-Key: $KEY"\n' "$bind"
  printf '    curl http://%s/openapi.json; curl http://%s/metrics\n\n' "$bind" "${OPS_BIND_ADDR:-127.0.0.1:9090}"
  # The example's route policies, penalty box and shadow mode (edit the file
  # or point RATE_LIMIT_CONFIG elsewhere).
  RATE_LIMIT_CONFIG="${RATE_LIMIT_CONFIG:-examples/users-api/rate-limits.toml}" \
    BIND_ADDR="$bind" cargo run -q -p users-api
}

case "${1:-}" in
  test) run_tests ;;
  run) run_example ;;
  bench) run_benches ;;
  arena) run_arena ;;
  *) usage >&2; exit 2 ;;
esac
