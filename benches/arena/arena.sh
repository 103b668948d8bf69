#!/usr/bin/env bash
# The abuse arena: legitimate users and attacks at the same time against a
# table of limited capacity, dynagate's users API against the Flask baseline,
# in one run (about 5 minutes).
#
#   benches/arena/arena.sh          (or ./dev.sh arena)
#
# Each side gets, fresh: a fault proxy in front of the stack's DynamoDB Local
# with provisioned capacity (ARENA_USERS_CAPACITY, default 100,50 RCU,WCU on
# the users table; ARENA_KEYS_CAPACITY, default 100,10 on the API keys table;
# each with DynamoDB's 300 s burst bank), a users table of its own, and then
#   - dynagate: three release instances of the users API sharing one Redis
#     (the arena's own), the capacity gate on, TRUSTED_PROXIES=127.0.0.1/32,
#     the shipped rate-limits.toml;
#   - flask: gunicorn (benches/compare/flask_baseline, its gunicorn.conf.py)
#     behind werkzeug's ProxyFix, Flask-Limiter and the per-IP counter on the
#     same Redis, boto3 with its backoff.
# The arena binary (arena/) then plays the trusted proxy in front of them:
# see `arena --help` for every rate (ARENA_* variables set them). Writes
# benches/results/arena.md and arena.png and rewrites the README's section
# between <!-- arena:begin --> and <!-- arena:end -->. Stops everything it
# started on exit.
#
# While iterating on the dynagate side, ARENA_FLASK=off skips both Flask runs
# and writes no result file (a comparison without its baseline would be
# misleading): the dynagate summary and the gate's metrics go to
# ARENA_KEEP_SUMMARIES (default: a directory under /tmp, printed at the end).
set -euo pipefail
# log, die, need_command, ensure_venv, file_hash, free_port, port_open,
# wait_until, wait_healthy, own_redis, stack_up, stack_down, cargo_target_dir;
# REPO_ROOT, STACK_SH, STACK_RUN_DIR.
# shellcheck source=stack/lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../../stack/lib.sh"
# load_average, machine_summary, pids_named.
# shellcheck source=benches/compare/proc_cpu.sh
. "$REPO_ROOT/benches/compare/proc_cpu.sh"
LOG_TAG=arena
cd "$REPO_ROOT"

USERS_CAPACITY="${ARENA_USERS_CAPACITY:-100,50}"
KEYS_CAPACITY="${ARENA_KEYS_CAPACITY:-100,10}"
LEGIT_KEYS="${ARENA_LEGIT_KEYS:-50}"
ATTACK_KEYS="${ARENA_ATTACK_KEYS:-6}"
# The Flask baseline serves only GET one user and POST: its legitimate mix
# is those two, in the share the users API's mix gives reads and creates.
FLASK_MIX="${ARENA_FLASK_MIX:-get=85,post=15}"
RESULTS="${BENCH_RESULTS_DIR:-$REPO_ROOT/benches/results}"
STARTED="$(date -u '+%Y-%m-%d %H:%M:%S')"
LOAD_AT_START="$(load_average)"
RUN_ID="arena$(date +%s)"

need_command redis-server
need_command curl

RUN_DIR="$(mktemp -d)"
PIDS=() TABLES=() redis_pid=""
# stop PID...: SIGTERM, then wait for each (they print their counters).
stop() {
  local pid
  for pid in "$@"; do kill "$pid" 2>/dev/null || true; done
  for pid in "$@"; do wait "$pid" 2>/dev/null || true; done
}
cleanup() {
  local table
  [ "${#PIDS[@]}" -eq 0 ] || stop "${PIDS[@]}"
  for table in "${TABLES[@]}"; do
    dynamodb_call "$DDB_PORT" DeleteTable "{\"TableName\":\"$table\"}" >/dev/null 2>&1 || true
  done
  [ -z "$redis_pid" ] || stop "$redis_pid"
  rm -rf "$RUN_DIR"
  stack_down || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

dynamodb_up
export AWS_DEFAULT_REGION="$AWS_REGION" REGION="$AWS_REGION"
# dynamodb_call.
# shellcheck source=stack/dynamodb_api.sh
. "$REPO_ROOT/stack/dynamodb_api.sh"
unset REDIS_CLUSTER_URLS

log "building the arena, the users API and the fault proxy (release)"
cargo build -q --release -p arena -p users-api -p dynagate-fault-proxy
BIN="$(cargo_target_dir)/release"
VENV="$STACK_RUN_DIR/bench-venv"
REQS="$REPO_ROOT/benches/compare/flask_baseline/requirements.txt"
ensure_venv "$VENV" "$(command -v python3)" "$(file_hash "$REQS")" -r "$REQS"

# create_table NAME SHAPE_FILE: a table shaped as SHAPE_FILE, named NAME,
# deleted on exit.
create_table() {
  local body reply
  body="$(sed -E "s/\"TableName\": *\"[^\"]+\"/\"TableName\": \"$1\"/" "$2")"
  reply="$(dynamodb_call "$DDB_PORT" CreateTable "$body")"
  [ "${reply##*$'\n'}" = 200 ] || die "CreateTable $1: ${reply%$'\n'*}"
  TABLES+=("$1")
}

# The arena's own Redis: the figures hold only its traffic.
own_redis "$RUN_DIR"

# One keys table for both sides; the keys are issued straight into DynamoDB
# Local (not through a proxy), before anything is measured.
KEYS_TABLE="arena-keys-$RUN_ID"
create_table "$KEYS_TABLE" stack/tables/api_keys.json
export API_KEYS_TABLE="$KEYS_TABLE" RUST_LOG=warn
# Keys tagged as the example recommends deploying it: a made-up key is refused
# before any lookup (the Flask baseline reads the same keys by their hash and
# ignores the tag).
export KEY_TAG_SECRETS="arena-$RUN_ID-key-tag-secret-of-at-least-32-chars"
# issue_keys OWNER COUNT FILE
issue_keys() {
  local i
  for i in $(seq 1 "$2"); do
    USERS_TABLE=unused TABLE_CAPACITY=off API_KEYS_TABLE_CAPACITY=off \
      "$BIN/users-api" issue-key --owner "$1-$i" --per-second 5 --burst 10 --per-day 100000 \
      2>>"$RUN_DIR/issue-key.err" >>"$3" || die "issue-key failed: $(tail -3 "$RUN_DIR/issue-key.err")"
  done
}
log "issuing $LEGIT_KEYS legitimate keys, $ATTACK_KEYS for the attacker, 1 to be stolen"
issue_keys legit "$LEGIT_KEYS" "$RUN_DIR/legit.keys"
issue_keys attacker "$ATTACK_KEYS" "$RUN_DIR/attack.keys"
issue_keys victim 1 "$RUN_DIR/stolen.key"

# start_proxy SIDE USERS_TABLE: a fault proxy with the capacities; sets PROXY_URL.
start_proxy() {
  local port
  port="$(free_port)"
  cat >"$RUN_DIR/proxy-$1.json" <<JSON
{
  "rules": [
    { "table": "$2", "capacity": { "read_units_per_second": ${USERS_CAPACITY%,*}, "write_units_per_second": ${USERS_CAPACITY#*,}, "burst_seconds": 300 } },
    { "table": "$KEYS_TABLE", "capacity": { "read_units_per_second": ${KEYS_CAPACITY%,*}, "write_units_per_second": ${KEYS_CAPACITY#*,}, "burst_seconds": 300 } }
  ]
}
JSON
  "$BIN/dynagate-fault-proxy" --config "$RUN_DIR/proxy-$1.json" --listen "127.0.0.1:$port" \
    --upstream "$AWS_ENDPOINT_URL" >"$RUN_DIR/proxy-$1.log" 2>&1 &
  PIDS+=("$!")
  PROXY_URL="http://127.0.0.1:$port"
  wait_until 10 "the fault proxy ($1)" "$RUN_DIR/proxy-$1.log" curl -sf -o /dev/null "$PROXY_URL/_fault/stats"
}

# run_arena SIDE TARGETS PIDS USERS_TABLE [FLAGS...]: the generator against one side.
run_arena() {
  local side="$1" targets="$2" pids="$3" table="$4"
  shift 4
  log "$side: the arena runs (about $((${ARENA_SECONDS:-60} + ${ARENA_INVALID_ONLY_SECONDS:-10} + 5)) s)"
  "$BIN/arena" --side "$side" --targets "$targets" --service-pids "$pids" \
    --keys-file "$RUN_DIR/legit.keys" --attack-keys-file "$RUN_DIR/attack.keys" \
    --stolen-key-file "$RUN_DIR/stolen.key" --proxy "$PROXY_URL" \
    --users-table "$table" --keys-table "$KEYS_TABLE" --run-id "$RUN_ID-$side" \
    --out "$RUN_DIR/$side.json" "$@"
}

# --- dynagate: three instances of the users API --------------------------------
TABLE="arena-users-$RUN_ID-dynagate"
create_table "$TABLE" stack/tables/users.json
start_proxy dynagate "$TABLE"
TARGETS="" API_PIDS="" OPS_PORTS=()
for i in 1 2 3; do
  port="$(free_port)" ops_port="$(free_port)"
  OPS_PORTS+=("$ops_port")
  AWS_ENDPOINT_URL="$PROXY_URL" USERS_TABLE="$TABLE" INSTANCES=3 TRUSTED_PROXIES=127.0.0.1/32 \
    TABLE_CAPACITY="$USERS_CAPACITY" API_KEYS_TABLE_CAPACITY="$KEYS_CAPACITY" \
    LIMITER_PREFIX="arena:$RUN_ID:rl:" CAPACITY_PREFIX="arena:$RUN_ID:capacity" \
    CURSOR_SECRETS="arena-$RUN_ID-cursor-secret-of-at-least-32-chars" \
    RATE_LIMIT_CONFIG=examples/users-api/rate-limits.toml \
    BIND_ADDR="127.0.0.1:$port" OPS_BIND_ADDR="127.0.0.1:$ops_port" \
    "$BIN/users-api" >"$RUN_DIR/api-$i.log" 2>&1 &
  PIDS+=("$!")
  API_PIDS+="${API_PIDS:+,}$!"
  TARGETS+="${TARGETS:+,}http://127.0.0.1:$port"
  wait_healthy "http://127.0.0.1:$port" "$RUN_DIR/api-$i.log"
done
run_arena dynagate "$TARGETS" "$API_PIDS" "$TABLE"
# What the capacity gate decided and estimated, from each instance's /metrics.
for ops_port in "${OPS_PORTS[@]}"; do
  curl -sf "http://127.0.0.1:$ops_port/metrics" | grep -E '^dynagate_capacity_' || true
done >"$RUN_DIR/dynagate-gate.txt"
stop "${PIDS[@]}"
PIDS=()

if [ "${ARENA_FLASK:-on}" = off ]; then
  KEEP="${ARENA_KEEP_SUMMARIES:-$(mktemp -d /tmp/arena-dynagate.XXXXXX)}"
  mkdir -p "$KEEP" && cp "$RUN_DIR/dynagate.json" "$RUN_DIR/dynagate-gate.txt" "$KEEP/"
  log "ARENA_FLASK=off: no result file written; the dynagate summary and gate metrics are in $KEEP"
  exit 0
fi

# --- flask: gunicorn behind the same kind of proxy -----------------------------
TABLE="arena-users-$RUN_ID-flask"
create_table "$TABLE" stack/tables/users.json
start_proxy flask "$TABLE"
port="$(free_port)"
(cd benches/compare/flask_baseline && AWS_ENDPOINT_URL="$PROXY_URL" USERS_TABLE="$TABLE" \
  LIMITER_PREFIX="arena:$RUN_ID:flask:" BIND_ADDR="127.0.0.1:$port" \
  exec "$VENV/bin/gunicorn" -c gunicorn.conf.py --pythonpath "$REPO_ROOT/benches/arena" \
  flask_behind_proxy:app) >"$RUN_DIR/gunicorn.log" 2>&1 &
PIDS+=("$!")
FLASK_PID=$!
wait_healthy "http://127.0.0.1:$port" "$RUN_DIR/gunicorn.log"
run_arena flask "http://127.0.0.1:$port" "$FLASK_PID" "$TABLE" --mix "$FLASK_MIX"
WORKERS="$(pgrep -c -P "$FLASK_PID" || true)"
stop "${PIDS[@]}"
PIDS=()

# --- flask again without the slow connections (ARENA_FLASK_CALM=off skips it) ---
# Sync workers wait for a client's headers as long as it takes: the slow
# connections alone decide the Flask run above. This one shows the rest.
if [ "${ARENA_FLASK_CALM:-on}" != off ]; then
  TABLE="arena-users-$RUN_ID-flask-calm"
  create_table "$TABLE" stack/tables/users.json
  start_proxy flask-calm "$TABLE"
  port="$(free_port)"
  (cd benches/compare/flask_baseline && AWS_ENDPOINT_URL="$PROXY_URL" USERS_TABLE="$TABLE" \
    LIMITER_PREFIX="arena:$RUN_ID:flask-calm:" BIND_ADDR="127.0.0.1:$port" \
    exec "$VENV/bin/gunicorn" -c gunicorn.conf.py --pythonpath "$REPO_ROOT/benches/arena" \
    flask_behind_proxy:app) >"$RUN_DIR/gunicorn-calm.log" 2>&1 &
  PIDS+=("$!")
  CALM_PID=$!
  wait_healthy "http://127.0.0.1:$port" "$RUN_DIR/gunicorn-calm.log"
  run_arena flask-calm "http://127.0.0.1:$port" "$CALM_PID" "$TABLE" --mix "$FLASK_MIX" --slowloris 0
  stop "${PIDS[@]}"
  PIDS=()
fi

# --- the result files -----------------------------------------------------------
{
  # The settings that change the run (not where its summaries are kept).
  echo "command=$( (env | grep -E '^ARENA_' | grep -v '^ARENA_KEEP_SUMMARIES=' | sort | tr '\n' ' ') || true)./dev.sh arena"
  echo "started=$STARTED UTC"
  echo "machine=$(machine_summary)"
  echo "load=$LOAD_AT_START at start, $(load_average) at end"
  echo "versions=rustc $(rustc --version | sed 's/^rustc //'), Redis $(redis-server --version | sed -E 's/.*v=([^ ]+).*/\1/'), $("$VENV/bin/python" -c 'import importlib.metadata as m; print(", ".join(f"{p} {m.version(p)}" for p in ["Flask","Flask-Limiter","gunicorn","boto3"]))'), dynagate $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src examples arena || echo ' with uncommitted changes')"
  echo "users_capacity=$USERS_CAPACITY"
  echo "keys_capacity=$KEYS_CAPACITY"
  echo "flask_workers=$WORKERS"
  echo "legit_keys=$LEGIT_KEYS"
} >"$RUN_DIR/facts.txt"
mkdir -p "$RESULTS"
# ARENA_KEEP_SUMMARIES=DIR keeps the generator's JSON summaries there.
if [ -n "${ARENA_KEEP_SUMMARIES:-}" ]; then
  mkdir -p "$ARENA_KEEP_SUMMARIES" && cp "$RUN_DIR"/*.json "$RUN_DIR/facts.txt" "$ARENA_KEEP_SUMMARIES/"
fi
"$VENV/bin/python" benches/arena/report.py "$RUN_DIR" "$RESULTS" README.md
log "results written to $RESULTS/arena.md and arena.png; README.md updated"
