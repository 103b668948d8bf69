#!/usr/bin/env bash
# GET /api/v1/users/{id} throughput and latency of the users API (release
# build), with the rate-limit layer on (API key checked, per-key and per-IP
# buckets in Redis) and off, in one run, with wrk from Debian.
#
# Needs the local stack up (./dev.sh bench starts it). WRK_SECONDS (10) and
# WRK_CONNECTIONS (32) tune the load.
set -euo pipefail
# need_command, free_port, wait_healthy, cargo_target_dir; REPO_ROOT.
# shellcheck source=stack/lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../../stack/lib.sh"
LOG_TAG=users_api_wrk
cd "$REPO_ROOT"
need_command wrk
SECONDS_RUN="${WRK_SECONDS:-10}"
CONNECTIONS="${WRK_CONNECTIONS:-32}"
cargo build -q --release -p users-api
API="$(cargo_target_dir)/release/users-api"
export RUST_LOG=warn IP_PER_SECOND=1000000 IP_BURST=1000000 LIMITER_PREFIX="dynagate-wrk:$$:"
KEY="$("$API" issue-key --owner wrk --per-second 1000000 --burst 1000000 --per-day 1000000000)"

# The server of the current measurement; stopped on exit, whatever failed.
pid=""
trap 'if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; fi' EXIT

# measure LABEL RATE_LIMITS: serve, create the user, load it, print a row.
measure() {
  local label="$1" limits="$2" port out rps p50 p99 non2xx
  port="$(free_port)"
  RATE_LIMITS="$limits" OPS_BIND_ADDR="127.0.0.1:$(free_port)" BIND_ADDR="127.0.0.1:$port" "$API" >/dev/null 2>&1 &
  pid=$!
  wait_healthy "http://127.0.0.1:$port"
  curl -s -o /dev/null -X POST "http://127.0.0.1:$port/api/v1/users" -H "X-API-Key: $KEY" \
    -H 'Content-Type: application/json' -d '{"user_id":"wrk","email":"wrk@example.com","name":"Load"}'
  out="$(wrk -t2 -c"$CONNECTIONS" -d"${SECONDS_RUN}s" --latency -H "X-API-Key: $KEY" \
    "http://127.0.0.1:$port/api/v1/users/wrk")"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  pid=""
  rps="$(awk '/Requests\/sec/ {print $2}' <<<"$out")"
  p50="$(awk '$1 == "50%" {print $2}' <<<"$out")"
  p99="$(awk '$1 == "99%" {print $2}' <<<"$out")"
  non2xx="$(awk '/Non-2xx/ {print $NF}' <<<"$out")"
  printf '| %s | %s | %s | %s | %s |\n' "$label" "$rps" "$p50" "$p99" "${non2xx:-0}"
}

echo "GET /api/v1/users/wrk, wrk -t2 -c$CONNECTIONS -d${SECONDS_RUN}s, release build, DynamoDB Local + Redis on loopback"
echo
echo "| rate-limit layer | requests/s | p50 | p99 | non-2xx |"
echo "|---|---:|---:|---:|---:|"
measure "on (key + per-key and per-IP buckets in Redis)" on
measure "off" off
