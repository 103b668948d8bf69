#!/usr/bin/env bash
# Schemathesis against the users API's own /openapi.json: generated requests
# from the schema, every check on; the run fails on any 5xx or any response
# that does not match the schema.
#
# Called by `./dev.sh test` with the local stack up (DynamoDB Local with the
# `users` and `api_keys` tables, Redis). Installs schemathesis (pinned) from
# PyPI into a venv under stack/.run the first time.
set -euo pipefail

# log, die, find_python, ensure_venv, free_port, wait_healthy, cargo_target_dir;
# REPO_ROOT, STACK_RUN_DIR.
# shellcheck source=stack/lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../stack/lib.sh"
LOG_TAG=schemathesis
cd "$REPO_ROOT"
VERSION="4.32.5"
VENV="$STACK_RUN_DIR/schemathesis-venv"
WORK="$STACK_RUN_DIR/schemathesis"

# Python 3.12 or later: under 3.11 this schemathesis hits a CPython AST bug
# ("AST constructor recursion depth mismatch") while generating cases.
PYTHON="$(find_python 3.13 3.12)" ||
  die "needs Python >= 3.12 (pyenv install 3.13, or apt-get install python3.12)"
ensure_venv "$VENV" "$PYTHON" "schemathesis==$VERSION" "schemathesis==$VERSION"

cargo build -q -p users-api
API="$(cargo_target_dir)/debug/users-api"
PORT="$(free_port)"
mkdir -p "$WORK"

# A key and per-address limits far above what the run sends: the run checks
# the API's answers, not its quotas (tests/users_api_limits.rs does that).
export RUST_LOG=warn IP_PER_SECOND=100000 IP_BURST=100000 FAILED_AUTH_BURST=100000
export KEY_READ_UNITS_PER_SECOND=100000 KEY_READ_UNITS_BURST=100000
export KEY_WRITE_UNITS_PER_SECOND=100000 KEY_WRITE_UNITS_BURST=100000
# A loaded CI machine must not turn into 503s: this run checks answers, not latency.
export DYNAMODB_DEADLINE_MS=20000
export LIMITER_PREFIX="dynagate-schemathesis:$$:"
KEY="$("$API" issue-key --owner schemathesis --per-second 100000 --burst 100000 --per-day 100000000)"
OPS_BIND_ADDR="127.0.0.1:$(free_port)" BIND_ADDR="127.0.0.1:$PORT" "$API" >"$WORK/api.log" 2>&1 &
API_PID=$!
trap 'kill "$API_PID" 2>/dev/null || true; wait "$API_PID" 2>/dev/null || true' EXIT
wait_healthy "http://127.0.0.1:$PORT" "$WORK/api.log"

log "running against http://127.0.0.1:$PORT/openapi.json"
# From the work directory: schemathesis keeps its crash cache in the current one.
cd "$WORK"
# ST302 runs as tests/schemathesis_hooks.py's check, which knows replayed
# answers. It must be excluded here: `--checks all` overrides any `enabled =
# false` in the config file (schemathesis config/_checks.py, ChecksConfig.update).
SCHEMATHESIS_HOOKS="$REPO_ROOT/tests/schemathesis_hooks.py" \
"$VENV/bin/st" --config-file "$REPO_ROOT/tests/schemathesis.toml" run "http://127.0.0.1:$PORT/openapi.json" \
  --header "X-API-Key: $KEY" \
  --checks all \
  --exclude-checks ensure_resource_availability \
  --max-examples "${SCHEMATHESIS_EXAMPLES:-50}" \
  --workers 2 \
  --seed "${SCHEMATHESIS_SEED:-2026}"
