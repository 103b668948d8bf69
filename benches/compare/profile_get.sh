#!/usr/bin/env bash
# Where the users API's CPU goes on GET /api/v1/users/{id} (one stored user,
# a valid key, the rate-limit layer on, compare.sh's settings): a call-graph
# profile of the release binary under wrk, each sample given to the part of
# the program that asked for it (benches/compare/profile_attribution.py).
#
#   benches/compare/profile_get.sh
#
# Writes benches/results/profile_get.md: the service's CPU per request over
# the profiled window (from /proc/PID/stat; perf's sampling adds to it, so it
# is higher than compare.sh's figure) and the share of each part. Settings:
# PROFILE_SECONDS (10), PROFILE_HZ (499 samples a second per core). Needs
# perf (Debian's linux-perf) and a kernel that lets it sample (the cpu-clock
# software event: no hardware counters are needed).
set -euo pipefail
# log, die, need_command, port_open, free_port, wait_until, wait_healthy,
# own_redis, stack_up, stack_down, cargo_target_dir; REPO_ROOT, STACK_SH.
# shellcheck source=stack/lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../../stack/lib.sh"
# proc_ticks, machine_summary; CLK_TCK.
# shellcheck source=benches/compare/proc_cpu.sh
. "$REPO_ROOT/benches/compare/proc_cpu.sh"
# unlimited_limits, issue_bench_key.
# shellcheck source=benches/compare/bench_key.sh
. "$REPO_ROOT/benches/compare/bench_key.sh"
LOG_TAG=profile_get
cd "$REPO_ROOT"

SECONDS_RUN="${PROFILE_SECONDS:-10}"
HZ="${PROFILE_HZ:-499}"
RESULT="${BENCH_RESULTS_DIR:-$REPO_ROOT/benches/results}/profile_get.md"
STARTED="$(date -u '+%Y-%m-%d %H:%M:%S')"

need_command wrk
need_command perf linux-perf
need_command redis-server
need_command curl

RUN_DIR="$(mktemp -d)"
redis_pid="" api_pid=""
cleanup() {
  stop_pid "$api_pid"
  stop_pid "$redis_pid"
  rm -rf "$RUN_DIR"
  stack_down || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM
dynamodb_up

log "building the users API (release)"
cargo build -q --release -p users-api
API="$(cargo_target_dir)/release/users-api"

own_redis "$RUN_DIR"

unlimited_limits "dynagate-profile-get:$$:"
issue_bench_key "$API" profile-get "$RUN_DIR"
PORT="$(free_port)"
OPS_BIND_ADDR="127.0.0.1:$(free_port)" BIND_ADDR="127.0.0.1:$PORT" "$API" >"$RUN_DIR/api.log" 2>&1 &
api_pid=$!
wait_healthy "http://127.0.0.1:$PORT" "$RUN_DIR/api.log"
curl -s -o /dev/null -X POST "http://127.0.0.1:$PORT/api/v1/users" -H "X-API-Key: $KEY" \
  -H 'Content-Type: application/json' -d '{"user_id":"profile","email":"p@example.com","name":"Load"}'
URL="http://127.0.0.1:$PORT/api/v1/users/profile"
wrk -t2 -c32 -d3s -H "X-API-Key: $KEY" "$URL" >/dev/null

log "profiling ${SECONDS_RUN}s of wrk load (perf record -F $HZ --call-graph dwarf)"
perf record -q -F "$HZ" -e cpu-clock --call-graph dwarf,16384 -p "$api_pid" -o "$RUN_DIR/perf.data" \
  -- sleep "$SECONDS_RUN" 2>"$RUN_DIR/perf.err" &
perf_pid=$!
t0="$(proc_ticks "$api_pid")"
out="$(wrk -t2 -c32 -d"${SECONDS_RUN}s" -H "X-API-Key: $KEY" "$URL")"
t1="$(proc_ticks "$api_pid")"
wait "$perf_pid" || die "perf record failed: $(cat "$RUN_DIR/perf.err")"
requests="$(awk '/requests in/ {print $1}' <<<"$out")"
non2xx="$(awk '/Non-2xx/ {print $NF}' <<<"$out")"
[ "${non2xx:-0}" = 0 ] || die "wrk saw $non2xx non-2xx answers"
per_request="$(awk -v t=$((t1 - t0)) -v n="$requests" -v hz="$CLK_TCK" 'BEGIN {printf "%.0f", t * 1e6 / hz / n}')"
log "attributing the samples (perf script unwinds every stack: a few minutes)"
table="$(perf script --no-inline -F tid,ip,sym -i "$RUN_DIR/perf.data" 2>/dev/null |
  python3 "$REPO_ROOT/benches/compare/profile_attribution.py" --per-request-us "$per_request")"
"$API" revoke-key --key-id "$key_id" >/dev/null 2>&1 || true

{
  echo "# Where the users API's CPU goes on a GET"
  echo
  echo "Produced by \`benches/compare/profile_get.sh\` (PROFILE_SECONDS=$SECONDS_RUN, PROFILE_HZ=$HZ), started $STARTED UTC."
  echo "Machine: $(machine_summary); $(rustc --version); the release profile of the workspace."
  echo
  echo "GET of one stored user with a valid key, the layer on, wrk -t2 -c32: $requests requests, $per_request us of service CPU per request while perf sampled (sampling adds to it)."
  echo "Each sample goes to the first frame, from the leaf up, of a known part: a syscall or an allocation counts for the code that made it."
  echo
  echo "$table"
} >"$RESULT"
cat "$RESULT"
log "wrote $RESULT"
