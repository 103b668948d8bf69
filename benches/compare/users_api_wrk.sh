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
# Three variants: the layer on, on with local leases (WRK_LEASE_TOKENS, 32),
# off. Three measurements per round, in one run:
# - side by side: a variant and off served at once (on and off, then leased
#   and off), each offered the same paced
#   rate (WRK_RATE requests a second, default 800, from
#   WRK_PACED_CONNECTIONS (16) connections with h2load's --rps) by an h2load
#   of its own, over the same window. CPU per request is then the work each
#   variant does for a request, under the same conditions: on a shared
#   machine that drifts between sequential windows by more than the layer
#   costs, this is the comparison that holds still. The goal is judged here.
#   It also counts each service's context switches per request: at this rate
#   the runtime's threads are mostly idle, so every wait for I/O (the layer's
#   Redis call is one more per request) puts a thread to sleep and wakes it,
#   and on a VM that is a large part of what a round trip costs.
# - paced: the same load, one variant at a time (reported).
# - saturated: wrk as fast as it can (WRK_CONNECTIONS (32), WRK_THREADS (2)).
#   The variants then serve different rates on a saturated 2-core machine,
#   so each figure also holds what the contention of that rate costs every
#   process (DynamoDB Local's CPU per request moves with it, though its work
#   per request is the same): reported, not judged.
# Settings: WRK_ROUNDS (3) rounds, each measuring every variant under every
# load, the order rotating (on,off,leased then off,leased,on ...); WRK_SECONDS
# (10) per measurement, after WRK_WARMUP_SECONDS (2) of load not counted. Uses DynamoDB Local where `stack/stack.sh env` says, and
# starts it (stopping it on exit) only when nothing answers there; Redis is
# the bench's own.
set -euo pipefail
# log, die, need_command, port_open, free_port, wait_until, wait_healthy,
# own_redis, stack_up, stack_down, cargo_target_dir; REPO_ROOT, STACK_SH.
# shellcheck source=stack/lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../../stack/lib.sh"
# proc_ticks, machine_busy_ticks, pids_named, load_average, machine_summary; CLK_TCK.
# shellcheck source=benches/compare/proc_cpu.sh
. "$REPO_ROOT/benches/compare/proc_cpu.sh"
# unlimited_limits, issue_bench_key.
# shellcheck source=benches/compare/bench_key.sh
. "$REPO_ROOT/benches/compare/bench_key.sh"
LOG_TAG=users_api_wrk
cd "$REPO_ROOT"

ROUNDS="${WRK_ROUNDS:-3}"
SECONDS_RUN="${WRK_SECONDS:-10}"
WARMUP="${WRK_WARMUP_SECONDS:-2}"
CONNECTIONS="${WRK_CONNECTIONS:-32}"
THREADS="${WRK_THREADS:-2}"
RATE="${WRK_RATE:-800}"
# The third variant: the layer on with local leases of up to this many tokens
# (LIMITER_LEASE_TOKENS; see the README's "Local leases").
LEASE_TOKENS="${WRK_LEASE_TOKENS:-32}"
PACED_CONNECTIONS="${WRK_PACED_CONNECTIONS:-16}"
GOAL_PERCENT=15
# BENCH_RESULTS_DIR puts the result file elsewhere, as for the Rust benches.
RESULT="${BENCH_RESULTS_DIR:-$REPO_ROOT/benches/results}/users_api_wrk.md"
STARTED="$(date -u '+%Y-%m-%d %H:%M:%S')"
LOAD_AT_START="$(load_average)"

need_command wrk
need_command h2load nghttp2-client
need_command redis-server
need_command curl

RUN_DIR="$(mktemp -d)"
BODY="$RUN_DIR/body.md"
api_pid="" redis_pid="" key_id="" SERVED_PIDS=()
cleanup() {
  for pid in "${SERVED_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  if [ -n "$key_id" ]; then "$API" revoke-key --key-id "$key_id" >/dev/null 2>&1 || true; fi
  stop_pid "$redis_pid"
  rm -rf "$RUN_DIR"
  stack_down || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# The endpoints and credentials of the local stack, even one another checkout started.
dynamodb_up

log "building the users API (release)"
cargo build -q --release -p users-api
API="$(cargo_target_dir)/release/users-api"

# A Redis of the bench's own (same binary as the stack's): another program
# using the stack's Redis during the run would add its CPU and its commands
# to the figures.
own_redis "$RUN_DIR"

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
unlimited_limits "dynagate-wrk:$$:"
export RATE_LIMIT_CONFIG="$RUN_DIR/rate-limits.toml" TABLE_CAPACITY=off API_KEYS_TABLE_CAPACITY=off
issue_bench_key "$API" wrk "$RUN_DIR"

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
  tr ' ' '\n' <<<"${FIGURES[$1,$2]:-}" | grep . | sort -g |
    awk '{v[NR] = $1} END {if (NR == 0) exit; if (NR % 2) print v[(NR + 1) / 2]; else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}
declare -A ROWS=()
declare -A SERVICE_US=()

# snapshot NAME: the CPU ticks of every process, the machine's busy ticks, the
# clock and Redis's command counts, as SNAP[NAME,svc], SNAP[NAME,rds], ...
declare -A SNAP=()
snapshot() {
  redis_calls >"$RUN_DIR/calls-$1"
  SNAP[$1,svc]="$(proc_ticks "$api_pid")"
  SNAP[$1,rds]="$(proc_ticks "$redis_pid")"
  # shellcheck disable=SC2086 # one or more pids
  SNAP[$1,ddb]="$(proc_ticks $DDB_PIDS)"
  SNAP[$1,busy]="$(machine_busy_ticks)"
  SNAP[$1,ns]="$(date +%s%N)"
}
# delta FIELD: SNAP[t1,FIELD] - SNAP[t0,FIELD].
delta() { echo $((SNAP[t1,$1] - SNAP[t0,$1])); }

# record LOAD ROUND VARIANT REQUESTS RPS P50 P99 FAILED: the figures of one
# measurement, between the snapshots t0 and t1.
record() {
  local load="$1" round="$2" variant="$3" requests="$4" rps="$5" p50="$6" p99="$7" failed="$8"
  local svc rds ddb
  svc="$(delta svc)" rds="$(delta rds)" ddb="$(delta ddb)"
  local svc_us rds_us ddb_us calls trips rest
  [ "${requests:-0}" -gt 0 ] || die "no request served ($load, layer $variant)"
  svc_us="$(per_request "$svc" "$requests")"
  rds_us="$(per_request "$rds" "$requests")"
  ddb_us="$(per_request "$ddb" "$requests")"
  calls="$(calls_per_request "$RUN_DIR/calls-t0" "$RUN_DIR/calls-t1" "$requests")"
  trips="${calls%%|*}" calls="${calls#*|}"
  # Everything else the cores did meanwhile, the load generator included, in cores.
  rest="$(awk -v b=$(($(delta busy) - svc - rds - ddb)) -v ns="$(delta ns)" \
    -v hz="$CLK_TCK" 'BEGIN {printf "%.2f", b / hz / (ns / 1e9)}')"
  keep "$load-$variant" svc "$svc_us"; keep "$load-$variant" rds "$rds_us"
  keep "$load-$variant" ddb "$ddb_us"; keep "$load-$variant" trips "$trips"
  keep "$load-$variant" calls "${calls%% *}"; keep "$load-$variant" rps "$rps"
  SERVICE_US[$load,$round,$variant]="$svc_us"
  ROWS[$load]+="| $round | $variant | $requests | $rps | $p50 | $p99 | $failed | $svc_us | $rds_us | $ddb_us | $trips | $calls | $rest |
"
}

# h2load_figures LOG STARTED_NS ENDED_NS: "OK FAILED RPS P50 P99" from an
# h2load log (one line per request: start, status, microseconds), which gives
# the percentiles h2load itself does not print.
h2load_figures() {
  local log="$1" ok failed rps p50 p99
  ok="$(awk '$2 >= 200 && $2 < 300 {n++} END {print n + 0}' "$log")"
  failed="$(awk '!($2 >= 200 && $2 < 300) {n++} END {print n + 0}' "$log")"
  rps="$(awk -v n="$ok" -v ns="$(($3 - $2))" 'BEGIN {printf "%.0f", n / (ns / 1e9)}')"
  p50="$(cut -f3 "$log" | sort -n | awk '{v[NR] = $1} END {printf "%.2fms", v[int(NR * 0.50) + 1] / 1000}')"
  p99="$(cut -f3 "$log" | sort -n | awk '{v[NR] = $1} END {i = int(NR * 0.99) + 1; if (i > NR) i = NR; printf "%.2fms", v[i] / 1000}')"
  echo "$ok $failed $rps $p50 $p99"
}

# paced ROUND VARIANT URL: h2load at RATE requests a second in total; its
# log (one line per request: start, status, microseconds) gives the
# percentiles, which h2load itself does not print.
paced() {
  local round="$1" variant="$2" url="$3" out log="$RUN_DIR/h2load-$1-$2.log" per_connection
  per_connection=$(((RATE + PACED_CONNECTIONS - 1) / PACED_CONNECTIONS))
  snapshot t0
  out="$(h2load --h1 -c"$PACED_CONNECTIONS" --rps="$per_connection" -D "$SECONDS_RUN" \
    --log-file="$log" -H "X-API-Key: $KEY" "$url")"
  snapshot t1
  local ok failed rps p50 p99
  read -r ok failed rps p50 p99 < <(h2load_figures "$log" "${SNAP[t0,ns]}" "${SNAP[t1,ns]}")
  grep -q '^requests: ' <<<"$out" || die "h2load printed no summary (layer $variant): $out"
  record paced "$round" "$variant" "$ok" "$rps" "$p50" "$p99" "$failed"
}

# saturated ROUND VARIANT URL: wrk as fast as it goes.
saturated() {
  local round="$1" variant="$2" url="$3" out
  snapshot t0
  out="$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"${SECONDS_RUN}s" --latency -H "X-API-Key: $KEY" "$url")"
  snapshot t1
  local requests rps p50 p99 non2xx
  requests="$(awk '/requests in/ {print $1}' <<<"$out")"
  rps="$(awk '/Requests\/sec/ {printf "%.0f", $2}' <<<"$out")"
  p50="$(awk '$1 == "50%" {print $2}' <<<"$out")"
  p99="$(awk '$1 == "99%" {print $2}' <<<"$out")"
  non2xx="$(awk '/Non-2xx/ {print $NF}' <<<"$out")"
  record saturated "$round" "$variant" "$requests" "$rps" "$p50" "$p99" "${non2xx:-0}"
}

# measure ROUND on|off: serve, store the user, warm up, then the paced and
# the saturated measurement, the CPU of every process read just before and
# just after each.
measure() {
  local round="$1" variant="$2"
  serve "$variant" "$round-alone"
  api_pid="$SERVED_PID"
  paced "$round" "$variant" "$SERVED_URL"
  saturated "$round" "$variant" "$SERVED_URL"
  kill "$api_pid"; wait "$api_pid" 2>/dev/null || true
  api_pid="" SERVED_PIDS=()
}

# serve VARIANT TAG: starts the users API with the layer on or off (its log
# api-TAG-VARIANT.log), stores the user, warms it up (the key in its cache,
# its connections to Redis and DynamoDB open); sets SERVED_PID and
# SERVED_URL, and adds the process to SERVED_PIDS (stopped on exit).
serve() {
  local variant="$1" round="$2" port limits="$1" leases=0
  if [ "$variant" = leased ]; then limits=on leases="$LEASE_TOKENS"; fi
  port="$(free_port)"
  RATE_LIMITS="$limits" LIMITER_LEASE_TOKENS="$leases" OPS_BIND_ADDR="127.0.0.1:$(free_port)" BIND_ADDR="127.0.0.1:$port" \
    "$API" >"$RUN_DIR/api-$round-$variant.log" 2>&1 &
  SERVED_PID=$!
  SERVED_PIDS+=("$SERVED_PID")
  wait_healthy "http://127.0.0.1:$port" "$RUN_DIR/api-$round-$variant.log"
  curl -s -o /dev/null -X POST "http://127.0.0.1:$port/api/v1/users" -H "X-API-Key: $KEY" \
    -H 'Content-Type: application/json' -d '{"user_id":"wrk","email":"wrk@example.com","name":"Load"}'
  SERVED_URL="http://127.0.0.1:$port/api/v1/users/wrk"
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"${WARMUP}s" -H "X-API-Key: $KEY" "$SERVED_URL" >/dev/null
}

# side_by_side ROUND LOAD VARIANT: VARIANT and off served at once, each
# offered RATE requests a second by an h2load of its own, over the same
# window, recorded as LOAD. Whatever
# else the machine does then (a noisy neighbour, a slower core, the hypervisor
# taking time) falls on both alike: on these shared machines the service's CPU
# per request drifted by a third between the sequential rounds of one run,
# for both variants, more than the difference being measured.
side_by_side() {
  local round="$1" load="$2" layer="$3" variant
  declare -A pid=() url=() t0=() t1=() s0=() s1=()
  for variant in "$layer" off; do
    serve "$variant" "$round-$load"
    pid[$variant]="$SERVED_PID" url[$variant]="$SERVED_URL"
  done
  local per_connection=$(((RATE + PACED_CONNECTIONS - 1) / PACED_CONNECTIONS)) started ended
  for variant in "$layer" off; do
    t0[$variant]="$(proc_ticks "${pid[$variant]}")" s0[$variant]="$(proc_switches "${pid[$variant]}")"
  done
  t0[rds]="$(proc_ticks "$redis_pid")"
  started="$(date +%s%N)"
  local loads=()
  for variant in "$layer" off; do
    h2load --h1 -c"$PACED_CONNECTIONS" --rps="$per_connection" -D "$SECONDS_RUN" \
      --log-file="$RUN_DIR/h2load-$load-$round-$variant.log" -H "X-API-Key: $KEY" "${url[$variant]}" \
      >"$RUN_DIR/h2load-$load-$round-$variant.out" &
    loads+=("$!")
  done
  wait "${loads[@]}"
  ended="$(date +%s%N)"
  for variant in "$layer" off; do
    t1[$variant]="$(proc_ticks "${pid[$variant]}")" s1[$variant]="$(proc_switches "${pid[$variant]}")"
  done
  t1[rds]="$(proc_ticks "$redis_pid")"
  for variant in "$layer" off; do
    local log="$RUN_DIR/h2load-$load-$round-$variant.log" ok failed rps p50 p99 svc_us rds_us switches
    grep -q '^requests: ' "$RUN_DIR/h2load-$load-$round-$variant.out" ||
      die "h2load printed no summary ($load, layer $variant)"
    read -r ok failed rps p50 p99 < <(h2load_figures "$log" "$started" "$ended")
    [ "$ok" -gt 0 ] || die "no request served ($load, layer $variant)"
    svc_us="$(per_request $((t1[$variant] - t0[$variant])) "$ok")"
    switches="$(awk -v n=$((s1[$variant] - s0[$variant])) -v r="$ok" 'BEGIN {printf "%.2f", n / r}')"
    # Only the layer uses Redis.
    if [ "$variant" != off ]; then rds_us="$(per_request $((t1[rds] - t0[rds])) "$ok")"; else rds_us="–"; fi
    keep "$load-$variant" svc "$svc_us"; keep "$load-$variant" rps "$rps"
    keep "$load-$variant" switches "$switches"
    [ "$variant" != off ] && keep "$load-$variant" rds "$rds_us"
    SERVICE_US[$load,$round,$variant]="$svc_us"
    ROWS[$load]+="| $round | $variant | $ok | $rps | $p50 | $p99 | $failed | $svc_us | $rds_us | $switches |
"
  done
  for variant in "$layer" off; do kill "${pid[$variant]}"; wait "${pid[$variant]}" 2>/dev/null || true; done
  SERVED_PIDS=()
}

say "GET /api/v1/users/wrk of one stored user with a valid key, release build, $ROUNDS rounds; in each round," \
  "each variant after ${WARMUP}s of warm-up: ${SECONDS_RUN}s paced (h2load, $RATE requests/s over $PACED_CONNECTIONS" \
  "connections), then ${SECONDS_RUN}s saturated (wrk -t$THREADS -c$CONNECTIONS); then on and off at once for ${SECONDS_RUN}s," \
  "each paced by an h2load of its own as above, then on with leases and off the same way. DynamoDB Local and Redis on loopback."
say "Layer on: API key (cached, revalidated every 5 s), per-address ceiling, the key's limits, a route policy" \
  "on GET /api/v1/users/{user_id} and the read-unit reservation, limits never reached; leases: the same with" \
  "LIMITER_LEASE_TOKENS=$LEASE_TOKENS (local leases, see the README); off: RATE_LIMITS=off."
say "CPU time: utime+stime from /proc/PID/stat (${CLK_TCK} ticks/s) over the measured window, per request served."
say "Redis: the bench's own redis-server; DynamoDB Local: the stack's (another program using it adds to its figure)."
ORDERS=("on off leased" "off leased on" "leased on off")
for round in $(seq 1 "$ROUNDS"); do
  for variant in ${ORDERS[$(((round - 1) % 3))]}; do
    log "round $round/$ROUNDS: layer $variant (paced, then saturated; ${SECONDS_RUN}s each)"
    measure "$round" "$variant"
  done
  log "round $round/$ROUNDS: layer on and off at once, paced (${SECONDS_RUN}s)"
  side_by_side "$round" side on
  log "round $round/$ROUNDS: layer on with leases and off at once, paced (${SECONDS_RUN}s)"
  side_by_side "$round" side-leased leased
done

# ratios LOAD VARIANT: the service's CPU per request, VARIANT / off, per
# round, kept as LOAD-VARIANT-ratio.
ratios() {
  local round
  FIGURES[$1-$2-ratio,all]=""
  for round in $(seq 1 "$ROUNDS"); do
    keep "$1-$2-ratio" all "$(awk -v on="${SERVICE_US[$1,$round,$2]}" -v off="${SERVICE_US[$1,$round,off]}" \
      'BEGIN {printf "%.3f", on / off}')"
  done
}

# table LOAD TITLE: the rounds and the medians of one load, all three variants.
table() {
  local load="$1"
  say
  say "### $2"
  say
  say "| round | layer | requests | requests/s | p50 | p99 | failed or non-2xx | service CPU µs/req | Redis CPU µs/req | DynamoDB Local CPU µs/req | Redis round trips/req | commands Redis ran/req, scripts' own included | rest of machine, load generator included (cores) |"
  say "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|"
  printf '%s' "${ROWS[$load]}" | tee -a "$BODY"
  ratios "$load" on
  ratios "$load" leased
  say
  say "Service CPU per request, per round: on / off ${FIGURES[$load-on-ratio,all]}; leased / off ${FIGURES[$load-leased-ratio,all]}"
  say
  say "Median over $ROUNDS rounds:"
  say
  say "| | layer on | layer on, leases | layer off |"
  say "|---|---:|---:|---:|"
  say "| service CPU µs/request | $(median "$load-on" svc) | $(median "$load-leased" svc) | $(median "$load-off" svc) |"
  say "| Redis CPU µs/request | $(median "$load-on" rds) | $(median "$load-leased" rds) | $(median "$load-off" rds) |"
  say "| DynamoDB Local CPU µs/request | $(median "$load-on" ddb) | $(median "$load-leased" ddb) | $(median "$load-off" ddb) |"
  say "| Redis round trips/request (script calls) | $(median "$load-on" trips) | $(median "$load-leased" trips) | $(median "$load-off" trips) |"
  say "| commands Redis ran/request, scripts' own included | $(median "$load-on" calls) | $(median "$load-leased" calls) | $(median "$load-off" calls) |"
  say "| requests/s | $(median "$load-on" rps) | $(median "$load-leased" rps) | $(median "$load-off" rps) |"
}

# verdict LOAD VARIANT JUDGED: the layer's cost from the medians of one load;
# JUDGED says whether the goal is judged on it.
verdict() {
  local name="layer on"
  [ "$2" = leased ] && name="layer on with leases"
  awk -v on="$(median "$1-$2" svc)" -v off="$(median "$1-off" svc)" -v rds="$(median "$1-$2" rds)" \
    -v goal="$GOAL_PERCENT" -v load="$1" -v judged="$3" -v name="$name" 'BEGIN {
    cost = (on / off - 1) * 100
    printf "Cost of the %s, %s (ratio of the medians): the service takes %.3fx the CPU per request (%+.1f%%, %+.1f µs); ", name, load, on / off, cost, on - off
    if (judged != "judged") printf "not judged against the goal (see above)."
    else if (cost <= goal) printf "goal <= %d%%: met.", goal
    else printf "goal <= %d%%: MISSED by %.1f percentage points.", goal, cost - goal
    printf " Redis adds %.1f µs per request.\n", rds
  }'
}

# side_table LOAD VARIANT TITLE: the side-by-side rounds of VARIANT and off,
# their ratios and medians.
side_table() {
  local load="$1" layer="$2"
  say
  say "### $3"
  say
  say "| round | layer | requests | requests/s | p50 | p99 | failed or non-2xx | service CPU µs/req | Redis CPU µs/req | service context switches/req |"
  say "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"
  printf '%s' "${ROWS[$load]}" | tee -a "$BODY"
  ratios "$load" "$layer"
  say
  say "Service CPU per request, $layer / off, per round: ${FIGURES[$load-$layer-ratio,all]}(median $(median "$load-$layer-ratio" all))"
  say
  say "Median over $ROUNDS rounds:"
  say
  say "| | layer $layer | layer off |"
  say "|---|---:|---:|"
  say "| service CPU µs/request | $(median "$load-$layer" svc) | $(median "$load-off" svc) |"
  say "| Redis CPU µs/request | $(median "$load-$layer" rds) | – |"
  say "| service context switches/request (a thread put to sleep to wait, then woken) | $(median "$load-$layer" switches) | $(median "$load-off" switches) |"
  say "| requests/s | $(median "$load-$layer" rps) | $(median "$load-off" rps) |"
}

side_table side on "Side by side: layer on and off at once, $RATE requests/s offered to each (the goal is judged here)"
side_table side-leased leased "Side by side: layer on with leases of up to $LEASE_TOKENS tokens and off at once, $RATE requests/s offered to each (judged here too)"
table paced "Paced, one variant at a time: $RATE requests/s offered to each"
table saturated "Saturated: as fast as each variant serves (different rates, so contention differs)"
say
say "$(verdict side on judged)"
say "$(verdict side-leased leased judged)"
say "$(verdict paced on reported)"
say "$(verdict paced leased reported)"
say "$(verdict saturated on reported)"
say "$(verdict saturated leased reported)"

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
