#!/usr/bin/env bash
# What the workspace's release profile (fat LTO, one codegen unit; see
# Cargo.toml) buys the users API: its CPU time per request against a build
# of the same source with cargo's default release settings (no LTO, 16
# codegen units), both serving GET /api/v1/users/{id} of one stored user with
# a valid key and the rate-limit layer on, as compare.sh serves it.
#
#   benches/compare/release_profile.sh
#
# Writes benches/results/release_profile.md (what it prints, under a header:
# command, date, machine, versions). Each round serves the two builds side by
# side, each offered the same paced rate (PROFILE_RATE requests a second,
# default 800, from 16 connections, h2load --rps) over the same window, so
# whatever else the machine does falls on both alike; CPU time comes from
# /proc/PID/stat over exactly that window, divided by the requests served.
# Then each build alone under wrk as fast as it goes (reported, not judged:
# the rates differ, and with them the contention every process pays).
# Settings: PROFILE_ROUNDS (3), PROFILE_SECONDS (10) per measurement. The
# baseline is built in its own target directory (target/default-release), a
# second full release build the first time (about five minutes).
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
LOG_TAG=release_profile
cd "$REPO_ROOT"

ROUNDS="${PROFILE_ROUNDS:-3}"
SECONDS_RUN="${PROFILE_SECONDS:-10}"
RATE="${PROFILE_RATE:-800}"
CONNECTIONS=16
RESULT="${BENCH_RESULTS_DIR:-$REPO_ROOT/benches/results}/release_profile.md"
STARTED="$(date -u '+%Y-%m-%d %H:%M:%S')"

need_command wrk
need_command h2load nghttp2-client
need_command redis-server
need_command curl

RUN_DIR="$(mktemp -d)"
BODY="$RUN_DIR/body.md"
redis_pid="" SERVED_PIDS=()
cleanup() {
  for pid in "${SERVED_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  stop_pid "$redis_pid"
  rm -rf "$RUN_DIR"
  stack_down || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM
dynamodb_up

log "building the users API: the workspace's release profile, and cargo's default one"
cargo build -q --release -p users-api
declare -A BIN=([profile]="$(cargo_target_dir)/release/users-api")
CARGO_TARGET_DIR="$(cargo_target_dir)/default-release" CARGO_PROFILE_RELEASE_LTO=false \
  CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 cargo build -q --release -p users-api
BIN[default]="$(cargo_target_dir)/default-release/release/users-api"

# The bench's own Redis: another program using the stack's would add its work.
own_redis "$RUN_DIR"

# compare.sh's settings: quotas no request reaches, so every request is
# decided by the layer and admitted.
unlimited_limits "dynagate-profile:$$:"
issue_bench_key "${BIN[profile]}" release-profile "$RUN_DIR"

say() { printf '%s\n' "$*" | tee -a "$BODY"; }
per_request() { awk -v t="$1" -v n="$2" -v hz="$CLK_TCK" 'BEGIN {printf "%.1f", t * 1e6 / hz / n}'; }

# serve BUILD: starts it, stores the user, warms it up; sets PID[BUILD], URL[BUILD].
declare -A PID=() URL=()
serve() {
  local build="$1" port
  port="$(free_port)"
  OPS_BIND_ADDR="127.0.0.1:$(free_port)" BIND_ADDR="127.0.0.1:$port" \
    "${BIN[$build]}" >"$RUN_DIR/api-$build.log" 2>&1 &
  PID[$build]=$!
  SERVED_PIDS+=("$!")
  wait_healthy "http://127.0.0.1:$port" "$RUN_DIR/api-$build.log"
  curl -s -o /dev/null -X POST "http://127.0.0.1:$port/api/v1/users" -H "X-API-Key: $KEY" \
    -H 'Content-Type: application/json' -d '{"user_id":"profile","email":"p@example.com","name":"Load"}'
  URL[$build]="http://127.0.0.1:$port/api/v1/users/profile"
  wrk -t2 -c32 -d2s -H "X-API-Key: $KEY" "${URL[$build]}" >/dev/null
}

declare -A RATIOS=()
for build in profile default; do serve "$build"; done
say "| round | load | build | requests | non-2xx | requests/s | service CPU / request |"
say "|---|---|---|---:|---:|---:|---:|"
for round in $(seq 1 "$ROUNDS"); do
  # Side by side, paced: both at once, the same rate each.
  declare -A t0=() t1=()
  for build in profile default; do t0[$build]="$(proc_ticks "${PID[$build]}")"; done
  loads=()
  for build in profile default; do
    h2load --h1 -c"$CONNECTIONS" --rps=$(((RATE + CONNECTIONS - 1) / CONNECTIONS)) -D "$SECONDS_RUN" \
      -H "X-API-Key: $KEY" "${URL[$build]}" >"$RUN_DIR/h2load-$round-$build.out" &
    loads+=("$!")
  done
  wait "${loads[@]}"
  for build in profile default; do t1[$build]="$(proc_ticks "${PID[$build]}")"; done
  declare -A us=()
  for build in profile default; do
    out="$RUN_DIR/h2load-$round-$build.out"
    ok="$(sed -nE 's/^status codes: ([0-9]+) 2xx.*/\1/p' "$out")"
    [ "${ok:-0}" -gt 0 ] || die "h2load: no 2xx ($build): $(cat "$out")"
    failed="$(sed -nE 's/^requests: .* ([0-9]+) failed.*/\1/p' "$out")"
    rps="$(awk -v n="$ok" -v s="$SECONDS_RUN" 'BEGIN {printf "%.0f", n / s}')"
    us[$build]="$(per_request $((t1[$build] - t0[$build])) "$ok")"
    say "| $round | side by side, paced | $build | $ok | ${failed:-0} | $rps | ${us[$build]} us |"
  done
  RATIOS[paced]+="$(awk -v a="${us[profile]}" -v b="${us[default]}" 'BEGIN {printf "%.3f", a / b}') "
  # Alone, saturated: the order alternates over the rounds.
  order="profile default"; [ $((round % 2)) -eq 0 ] && order="default profile"
  for build in $order; do
    a="$(proc_ticks "${PID[$build]}")"
    out="$(wrk -t2 -c32 -d"${SECONDS_RUN}s" -H "X-API-Key: $KEY" "${URL[$build]}")"
    b="$(proc_ticks "${PID[$build]}")"
    requests="$(awk '/requests in/ {print $1}' <<<"$out")"
    non2xx="$(awk '/Non-2xx/ {print $NF}' <<<"$out")"
    rps="$(awk '/Requests\/sec/ {printf "%.0f", $2}' <<<"$out")"
    us[$build]="$(per_request $((b - a)) "$requests")"
    say "| $round | alone, saturated (wrk -c32) | $build | $requests | ${non2xx:-0} | $rps | ${us[$build]} us |"
  done
  RATIOS[saturated]+="$(awk -v a="${us[profile]}" -v b="${us[default]}" 'BEGIN {printf "%.3f", a / b}') "
done
median() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
say ""
for load in paced saturated; do
  say "Service CPU per request, release profile / cargo default, $load: per round ${RATIOS[$load]% }; median $(median "${RATIOS[$load]}")."
done
"${BIN[profile]}" revoke-key --key-id "$key_id" >/dev/null 2>&1 || true

{
  echo "# The workspace's release profile against cargo's default"
  echo
  echo "Produced by \`benches/compare/release_profile.sh\` (PROFILE_ROUNDS=$ROUNDS, PROFILE_SECONDS=$SECONDS_RUN, PROFILE_RATE=$RATE), started $STARTED UTC."
  echo "Machine: $(machine_summary); $(rustc --version)."
  echo "\`profile\`: \`cargo build --release\` with the workspace's profile (lto = \"fat\", codegen-units = 1); \`default\`: the same source with lto = false, codegen-units = 16. Both serve the same DynamoDB Local and the bench's own Redis, the layer on."
  echo
  cat "$BODY"
} >"$RESULT"
log "wrote $RESULT"
