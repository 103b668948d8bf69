#!/usr/bin/env bash
# What the rate-limit layer costs the users API: CPU time per request of the
# service, of Redis and of DynamoDB Local, for GET /api/v1/users/{id} of one
# stored user with a valid key, with the layer on and off, in one run.
#
#   benches/compare/users_api_wrk.sh
#
# Writes benches/results/users_api_wrk.md (what it prints, under a header:
# command, date, machine, load average, versions). CPU time comes from
# /proc/PID/stat over exactly the measured window and is divided by the
# requests wrk counted; unlike requests per second it holds still when
# something else shares the machine. The layer is on as the example would be
# deployed: API key (cached, revalidated every 5 s), per-address ceiling, the
# key's limits, a route policy on the GET route and the read-unit reservation.
#
# Settings: WRK_ROUNDS (3) rounds, each measuring both variants, the order
# alternating (on,off then off,on ...); WRK_SECONDS (10) per measurement,
# after WRK_WARMUP_SECONDS (2) of load not counted; WRK_CONNECTIONS (32),
# WRK_THREADS (2). Uses DynamoDB Local where `stack/stack.sh env` says, and
# starts it (stopping it on exit) only when nothing answers there; Redis is
# the bench's own.
set -euo pipefail
# log, die, need_command, port_open, free_port, wait_until, wait_healthy,
# stack_up, stack_down, cargo_target_dir; REPO_ROOT, STACK_SH.
# shellcheck source=stack/lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../../stack/lib.sh"
# proc_ticks, machine_busy_ticks, pids_named, load_average, machine_summary; CLK_TCK.
# shellcheck source=benches/compare/proc_cpu.sh
. "$REPO_ROOT/benches/compare/proc_cpu.sh"
LOG_TAG=users_api_wrk
cd "$REPO_ROOT"

ROUNDS="${WRK_ROUNDS:-3}"
SECONDS_RUN="${WRK_SECONDS:-10}"
WARMUP="${WRK_WARMUP_SECONDS:-2}"
CONNECTIONS="${WRK_CONNECTIONS:-32}"
THREADS="${WRK_THREADS:-2}"
GOAL_PERCENT=15
# BENCH_RESULTS_DIR puts the result file elsewhere, as for the Rust benches.
RESULT="${BENCH_RESULTS_DIR:-$REPO_ROOT/benches/results}/users_api_wrk.md"
STARTED="$(date -u '+%Y-%m-%d %H:%M:%S')"
LOAD_AT_START="$(load_average)"

need_command wrk
need_command redis-server
need_command curl

RUN_DIR="$(mktemp -d)"
BODY="$RUN_DIR/body.md"
api_pid="" redis_pid="" key_id=""
cleanup() {
  if [ -n "$api_pid" ]; then kill "$api_pid" 2>/dev/null || true; fi
  if [ -n "$key_id" ]; then "$API" revoke-key --key-id "$key_id" >/dev/null 2>&1 || true; fi
  if [ -n "$redis_pid" ]; then kill "$redis_pid" 2>/dev/null || true; wait "$redis_pid" 2>/dev/null || true; fi
  rm -rf "$RUN_DIR"
  stack_down || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# The endpoints and credentials of the local stack, even one another checkout started.
eval "$("$STACK_SH" env)"
DDB_PORT="${AWS_ENDPOINT_URL##*:}"
port_open "$DDB_PORT" || stack_up dynamodb

log "building the users API (release)"
cargo build -q --release -p users-api
API="$(cargo_target_dir)/release/users-api"

# A Redis of the bench's own (same binary as the stack's): another program
# using the stack's Redis during the run would add its CPU and its commands
# to the figures.
REDIS_PORT="$(free_port)"
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
  --dir "$RUN_DIR" --logfile "$RUN_DIR/redis.log" &
redis_pid=$!
wait_until 10 "redis-server on port $REDIS_PORT" "$RUN_DIR/redis.log" \
  sh -c "redis-cli -p $REDIS_PORT ping >/dev/null 2>&1"
export REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
# stack.sh env names the cluster too; set, the service would use it instead.
unset REDIS_CLUSTER_URLS

DDB_PIDS="$(pids_named java "DynamoDBLocal.*-port $DDB_PORT")"
[ -n "$DDB_PIDS" ] || die "no java process runs DynamoDBLocal on port $DDB_PORT: start it with stack/stack.sh start dynamodb"
# Its jar's directory names its release (dynamodb_local_YYYY-MM-DD).
DDB_VERSION="$(for pid in $DDB_PIDS; do basename "$(readlink "/proc/$pid/cwd")"; done | sort -u | paste -sd' ')"

# The deployed shape, with limits no request reaches: every request is
# decided and admitted. The tables bill on demand, so the capacity gate
# would be off anyway; off here in both variants, it is not the layer.
cat >"$RUN_DIR/rate-limits.toml" <<'EOF'
shadow = false

[penalty_box]
denials = 30
within_secs = 60
hold_secs = 300

[[policy]]
name = "lookups"
routes = ["GET /api/v1/users/{user_id}"]
limits = [{ name = "second", rate = 1000000, per = "second", burst = 1000000 }]
EOF
export RUST_LOG=warn LIMITER_PREFIX="dynagate-wrk:$$:" RATE_LIMIT_CONFIG="$RUN_DIR/rate-limits.toml" \
  IP_PER_SECOND=1000000 IP_BURST=1000000 \
  KEY_READ_UNITS_PER_SECOND=1000000 KEY_READ_UNITS_BURST=1000000 \
  TABLE_CAPACITY=off API_KEYS_TABLE_CAPACITY=off
KEY="$("$API" issue-key --owner wrk --per-second 1000000 --burst 1000000 --per-day 1000000000 2>"$RUN_DIR/issue-key.err")" ||
  die "issue-key failed: $(cat "$RUN_DIR/issue-key.err")"
key_id="$(sed -nE 's/.*\(id ([^,)]+).*/\1/p' "$RUN_DIR/issue-key.err")"

# say LINE: print it and keep it for the result file.
say() { printf '%s\n' "$*" | tee -a "$BODY"; }

# redis_calls: `COMMAND CALLS` per line, from INFO commandstats of the bench's Redis.
redis_calls() {
  redis-cli -p "$REDIS_PORT" INFO commandstats |
    sed -nE 's/^cmdstat_([^:]+):calls=([0-9]+),.*/\1 \2/p'
}

# calls_per_request BEFORE AFTER REQUESTS: the commands Redis ran between the
# two snapshots (the bench's own INFO aside), per request, as
# `ROUND_TRIPS|ALL (command n, ...)`. INFO commandstats also counts what a
# script runs (its GET, SET, TIME): the round trips are the script calls
# (EVALSHA, EVAL), any other command the service sent shows in the detail.
calls_per_request() {
  awk -v requests="$3" '
    FNR == NR { before[$1] = $2; next }
    $1 != "info" && $2 > before[$1] {
      d = $2 - before[$1]; total += d; names[$1] = d
      if ($1 ~ /^(evalsha|eval|evalsha_ro|eval_ro|fcall|fcall_ro)$/) trips += d
    }
    END {
      detail = ""
      for (n in names) detail = detail (detail == "" ? "" : ", ") sprintf("%s %.2f", n, names[n] / requests)
      printf "%.2f|%.2f%s\n", trips / requests, total / requests, detail == "" ? "" : " (" detail ")"
    }' "$1" "$2"
}

# per_request TICKS REQUESTS: microseconds of CPU per request.
per_request() { awk -v t="$1" -v n="$2" -v hz="$CLK_TCK" 'BEGIN {printf "%.1f", t * 1e6 / hz / n}'; }

# Figures of each variant over the rounds, space-separated, for the medians.
declare -A FIGURES=()
keep() { FIGURES[$1,$2]+="$3 "; }
median() {
  tr ' ' '\n' <<<"${FIGURES[$1,$2]}" | grep . | sort -g |
    awk '{v[NR] = $1} END {if (NR % 2) print v[(NR + 1) / 2]; else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}
ROWS=()
declare -A SERVICE_US=()

# measure ROUND on|off: serve, store the user, warm up, then one measured
# wrk run with the CPU of every process read just before and just after it.
measure() {
  local round="$1" variant="$2" port out requests window_ns svc0 svc1 rds0 rds1 ddb0 ddb1 busy0 busy1 t0 t1
  local rps p50 p99 non2xx svc_us rds_us ddb_us calls trips rest
  port="$(free_port)"
  RATE_LIMITS="$variant" OPS_BIND_ADDR="127.0.0.1:$(free_port)" BIND_ADDR="127.0.0.1:$port" \
    "$API" >"$RUN_DIR/api-$round-$variant.log" 2>&1 &
  api_pid=$!
  wait_healthy "http://127.0.0.1:$port" "$RUN_DIR/api-$round-$variant.log"
  curl -s -o /dev/null -X POST "http://127.0.0.1:$port/api/v1/users" -H "X-API-Key: $KEY" \
    -H 'Content-Type: application/json' -d '{"user_id":"wrk","email":"wrk@example.com","name":"Load"}'
  local url="http://127.0.0.1:$port/api/v1/users/wrk"
  # Warm: the key in the service's cache, the connections to Redis and DynamoDB open.
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"${WARMUP}s" -H "X-API-Key: $KEY" "$url" >/dev/null
  redis_calls >"$RUN_DIR/calls0"
  svc0="$(proc_ticks "$api_pid")" rds0="$(proc_ticks "$redis_pid")"
  # shellcheck disable=SC2086 # one or more pids
  ddb0="$(proc_ticks $DDB_PIDS)" busy0="$(machine_busy_ticks)" t0="$(date +%s%N)"
  out="$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"${SECONDS_RUN}s" --latency -H "X-API-Key: $KEY" "$url")"
  t1="$(date +%s%N)" busy1="$(machine_busy_ticks)"
  # shellcheck disable=SC2086
  ddb1="$(proc_ticks $DDB_PIDS)" svc1="$(proc_ticks "$api_pid")" rds1="$(proc_ticks "$redis_pid")"
  redis_calls >"$RUN_DIR/calls1"
  kill "$api_pid"; wait "$api_pid" 2>/dev/null || true
  api_pid=""

  requests="$(awk '/requests in/ {print $1}' <<<"$out")"
  [ "${requests:-0}" -gt 0 ] || die "wrk served no request (layer $variant): $out"
  rps="$(awk '/Requests\/sec/ {printf "%.0f", $2}' <<<"$out")"
  p50="$(awk '$1 == "50%" {print $2}' <<<"$out")"
  p99="$(awk '$1 == "99%" {print $2}' <<<"$out")"
  non2xx="$(awk '/Non-2xx/ {print $NF}' <<<"$out")"
  svc_us="$(per_request $((svc1 - svc0)) "$requests")"
  rds_us="$(per_request $((rds1 - rds0)) "$requests")"
  ddb_us="$(per_request $((ddb1 - ddb0)) "$requests")"
  calls="$(calls_per_request "$RUN_DIR/calls0" "$RUN_DIR/calls1" "$requests")"
  trips="${calls%%|*}" calls="${calls#*|}"
  window_ns=$((t1 - t0))
  # Everything else the cores did meanwhile, wrk included, in cores.
  rest="$(awk -v b=$((busy1 - busy0 - (svc1 - svc0) - (rds1 - rds0) - (ddb1 - ddb0))) -v ns="$window_ns" \
    -v hz="$CLK_TCK" 'BEGIN {printf "%.2f", b / hz / (ns / 1e9)}')"
  keep "$variant" svc "$svc_us"; keep "$variant" rds "$rds_us"; keep "$variant" ddb "$ddb_us"
  keep "$variant" trips "$trips"; keep "$variant" calls "${calls%% *}"; keep "$variant" rps "$rps"
  SERVICE_US[$round,$variant]="$svc_us"
  ROWS+=("| $round | $variant | $requests | $rps | $p50 | $p99 | ${non2xx:-0} | $svc_us | $rds_us | $ddb_us | $trips | $calls | $rest |")
}

say "GET /api/v1/users/wrk of one stored user with a valid key, release build, wrk -t$THREADS -c$CONNECTIONS," \
  "$ROUNDS rounds of ${SECONDS_RUN}s per variant after ${WARMUP}s of warm-up, DynamoDB Local and Redis on loopback"
say "Layer on: API key (cached, revalidated every 5 s), per-address ceiling, the key's limits, a route policy" \
  "on GET /api/v1/users/{user_id} and the read-unit reservation, limits never reached; off: RATE_LIMITS=off."
say "CPU time: utime+stime from /proc/PID/stat (${CLK_TCK} ticks/s) over the measured window, per request served."
say "Redis: the bench's own redis-server; DynamoDB Local: the stack's (another program using it adds to its figure)."
for round in $(seq 1 "$ROUNDS"); do
  if [ $((round % 2)) -eq 1 ]; then order="on off"; else order="off on"; fi
  for variant in $order; do
    log "round $round/$ROUNDS: layer $variant (wrk -t$THREADS -c$CONNECTIONS -d${SECONDS_RUN}s)"
    measure "$round" "$variant"
  done
done

say
say "| round | layer | requests | requests/s | p50 | p99 | non-2xx | service CPU µs/req | Redis CPU µs/req | DynamoDB Local CPU µs/req | Redis round trips/req | commands Redis ran/req, scripts' own included | rest of machine, wrk included (cores) |"
say "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|"
for row in "${ROWS[@]}"; do say "$row"; done
say
for round in $(seq 1 "$ROUNDS"); do
  keep ratio all "$(awk -v on="${SERVICE_US[$round,on]}" -v off="${SERVICE_US[$round,off]}" 'BEGIN {printf "%.3f", on / off}')"
done
say "Service CPU per request, on / off, per round: ${FIGURES[ratio,all]}"

svc_on="$(median on svc)" svc_off="$(median off svc)"
say
say "Median over $ROUNDS rounds:"
say
say "| | layer on | layer off |"
say "|---|---:|---:|"
say "| service CPU µs/request | $svc_on | $svc_off |"
say "| Redis CPU µs/request | $(median on rds) | $(median off rds) |"
say "| DynamoDB Local CPU µs/request | $(median on ddb) | $(median off ddb) |"
say "| Redis round trips/request (script calls) | $(median on trips) | $(median off trips) |"
say "| commands Redis ran/request, scripts' own included | $(median on calls) | $(median off calls) |"
say "| requests/s | $(median on rps) | $(median off rps) |"
say
say "$(awk -v on="$svc_on" -v off="$svc_off" -v rds="$(median on rds)" -v ddb="$(median off ddb)" -v goal="$GOAL_PERCENT" 'BEGIN {
  cost = (on / off - 1) * 100
  printf "Layer cost (ratio of the medians): the service takes %.3fx the CPU per request with the layer on (%+.1f%%, %+.1f µs), ", on / off, cost, on - off
  if (cost <= goal) printf "goal <= %d%%: met.", goal
  else printf "goal <= %d%%: MISSED by %.1f percentage points.", goal, cost - goal
  printf " Redis adds %.1f µs per request; DynamoDB Local takes %.1f µs per request without the layer.\n", rds, ddb
}')"

{
  echo "# \`users_api_wrk\` benchmark results"
  echo
  echo "Written by \`benches/compare/users_api_wrk.sh\` at the end of a run; reproduce with:"
  echo
  echo "    $( (env | grep -E '^WRK_' | sort | tr '\n' ' ') || true)benches/compare/users_api_wrk.sh"
  echo
  echo "- started: $STARTED UTC"
  echo "- machine: $(machine_summary)"
  echo "- load average (1, 5, 15 min): $LOAD_AT_START at start, $(load_average) at end"
  echo "- versions: rustc $(rustc --version | sed 's/^rustc //'), Redis $(redis-server --version | sed -E 's/.*v=([^ ]+).*/\1/')," \
    "wrk $(wrk -v 2>&1 | head -1 | awk '{print $2}'), DynamoDB Local $DDB_VERSION," \
    "dynagate $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src examples || echo ' with uncommitted changes')"
  echo
  echo "Output, as printed:"
  echo
  cat "$BODY"
} >"$RUN_DIR/result.md"
mkdir -p "$(dirname "$RESULT")"
mv "$RUN_DIR/result.md" "$RESULT"
log "results written to $RESULT"
