# shellcheck shell=bash
# Process ownership for the stack's scripts (sourced after stack/lib.sh, not run).
#
# A pid file holds "PID STARTTIME MARKER": the pid, its kernel start time and
# a piece of its command line. A process is ours only while all three still
# match, so a pid reused by an unrelated process is never signalled.

# proc_stat PID N: field N of /proc/PID/stat, numbered as in proc(5). The
# command name (field 2) may hold spaces, so fields are counted after its
# closing parenthesis, where field 3 begins.
proc_stat() {
  local stat index=$(($2 - 2))
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  stat="${stat##*) }"
  # shellcheck disable=SC2086 # split into fields on purpose
  set -- $stat
  echo "${!index}"
}

# Start time in clock ticks since boot.
start_time() { proc_stat "$1" 22; }
parent_of() { proc_stat "$1" 4; }
# A zombie has finished; only its parent can reap it.
is_zombie() { [ "$(proc_stat "$1" 3)" = "Z" ]; }

cmdline() { tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null; }

# write_pid_file FILE PID MARKER: remember that we started PID; fails if it is gone.
write_pid_file() {
  local started
  started="$(start_time "$2")" || return 1
  printf '%s %s %s\n' "$2" "$started" "$3" >"$1"
}

# owned_pid_in FILE: print the pid recorded in FILE if that process still runs
# and is the one we started; otherwise remove the stale file and fail.
owned_pid_in() {
  local file="$1" pid started marker
  [ -f "$file" ] || return 1
  read -r pid started marker <"$file" || return 1
  if [ -d "/proc/$pid" ] && [ "$(start_time "$pid")" = "$started" ] &&
    [[ "$(cmdline "$pid")" == *"$marker"* ]]; then
    echo "$pid"
    return 0
  fi
  rm -f "$file"
  return 1
}

# terminate_owned FILE LABEL SECONDS: stop the process FILE records, if it is
# still ours: SIGTERM, and SIGKILL when it still runs (and is still ours) after
# SECONDS. Removes FILE.
terminate_owned() {
  local file="$1" label="$2" seconds="$3" pid
  pid="$(owned_pid_in "$file")" || return 0
  log "stopping $label (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 $((seconds * 10))); do
    [ -d "/proc/$pid" ] || break
    is_zombie "$pid" && break
    sleep 0.1
  done
  if [ -d "/proc/$pid" ] && [ "$(owned_pid_in "$file")" = "$pid" ]; then
    log "$label did not stop within $seconds s; killing pid $pid"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$file"
}
