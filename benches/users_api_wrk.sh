#!/usr/bin/env bash
# GET /api/v1/users/{id} throughput and latency of the users API (release
# build), with the rate-limit layer on (API key checked, per-key and per-IP
# buckets in Redis) and off, in one run, with wrk from Debian.
#
# Needs the local stack up (./dev.sh bench starts it). WRK_SECONDS (10) and
# WRK_CONNECTIONS (32) tune the load.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
command -v wrk >/dev/null 2>&1 || {
  if [ "$(id -u)" -eq 0 ]; then DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null ||
    { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
  else echo "install wrk (apt-get install wrk)" >&2; exit 1; fi
}
SECONDS_RUN="${WRK_SECONDS:-10}"
CONNECTIONS="${WRK_CONNECTIONS:-32}"
cargo build -q --release -p users-api
API="${CARGO_TARGET_DIR:-$ROOT/target}/release/users-api"
export RUST_LOG=warn IP_PER_SECOND=1000000 IP_BURST=1000000 LIMITER_PREFIX="dynagate-wrk:$$:"
KEY="$("$API" issue-key --owner wrk --per-second 1000000 --burst 1000000 --per-day 1000000000)"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# measure LABEL RATE_LIMITS: serve, create the user, load it, print a row.
measure() {
  local label="$1" limits="$2" port pid out rps p50 p99 non2xx
  port="$(free_port)"
  RATE_LIMITS="$limits" BIND_ADDR="127.0.0.1:$port" "$API" >/dev/null 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
  curl -s -o /dev/null -X POST "http://127.0.0.1:$port/api/v1/users" -H "X-API-Key: $KEY" \
    -H 'Content-Type: application/json' -d '{"user_id":"wrk","email":"wrk@example.com","name":"Load"}'
  out="$(wrk -t2 -c"$CONNECTIONS" -d"${SECONDS_RUN}s" --latency -H "X-API-Key: $KEY" \
    "http://127.0.0.1:$port/api/v1/users/wrk")"
  kill "$pid"; wait "$pid" 2>/dev/null || true
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
