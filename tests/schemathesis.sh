#!/usr/bin/env bash
# Schemathesis against the users API's own /openapi.json: generated requests
# from the schema, every check on; the run fails on any 5xx or any response
# that does not match the schema.
#
# Called by `./dev.sh test` with the local stack up (DynamoDB Local with the
# `users` and `api_keys` tables, Redis). Installs schemathesis (pinned) from
# PyPI into a venv under localstack/.run the first time.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VERSION="4.32.5"
VENV="$ROOT/localstack/.run/schemathesis-venv"
WORK="$ROOT/localstack/.run/schemathesis"
log() { printf '[schemathesis] %s\n' "$*" >&2; }

# Python 3.12 or later: under 3.11 this schemathesis hits a CPython AST bug
# ("AST constructor recursion depth mismatch") while generating cases.
python_for_venv() {
  local candidate
  for candidate in python3.13 python3.12 "$HOME"/.pyenv/versions/3.13*/bin/python3 "$HOME"/.pyenv/versions/3.12*/bin/python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
      "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
      echo "$candidate"
      return
    fi
  done
  echo "[schemathesis] error: needs Python >= 3.12 (pyenv install 3.13, or apt-get install python3.12)" >&2
  return 1
}

if ! "$VENV/bin/st" --version 2>/dev/null | grep -q "$VERSION"; then
  log "installing schemathesis $VERSION into $VENV"
  rm -rf "$VENV"
  "$(python_for_venv)" -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "schemathesis==$VERSION"
fi

cargo build -q -p users-api
API="${CARGO_TARGET_DIR:-$ROOT/target}/debug/users-api"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
mkdir -p "$WORK"

# A key and per-address limits far above what the run sends: the run checks
# the API's answers, not its quotas (tests/users_api_limits.rs does that).
export RUST_LOG=warn IP_PER_SECOND=100000 IP_BURST=100000 FAILED_AUTH_BURST=100000
# A loaded CI machine must not turn into 503s: this run checks answers, not latency.
export DYNAMODB_DEADLINE_MS=20000
export LIMITER_PREFIX="dynagate-schemathesis:$$:"
KEY="$("$API" issue-key --owner schemathesis --per-second 100000 --burst 100000 --per-day 100000000)"
BIND_ADDR="127.0.0.1:$PORT" "$API" >"$WORK/api.log" 2>&1 &
API_PID=$!
trap 'kill "$API_PID" 2>/dev/null || true; wait "$API_PID" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break
  sleep 0.1
done

log "running against http://127.0.0.1:$PORT/openapi.json"
# From the work directory: schemathesis keeps its crash cache in the current one.
cd "$WORK"
"$VENV/bin/st" --config-file "$ROOT/tests/schemathesis.toml" run "http://127.0.0.1:$PORT/openapi.json" \
  --header "X-API-Key: $KEY" \
  --checks all \
  --max-examples "${SCHEMATHESIS_EXAMPLES:-50}" \
  --workers 2 \
  --seed 2026
