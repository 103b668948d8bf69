# Process ownership for the local stack's scripts (sourced, not run).
#
# A pid file holds "PID STARTTIME MARKER": the pid, its kernel start time and
# a piece of its command line. A process is ours only while all three still
# match, so a pid reused by an unrelated process is never signalled.

# Field 22 of /proc/PID/stat: start time in clock ticks since boot. The command
# name (field 2) may hold spaces, so count fields after its closing parenthesis.
start_time() {
  local stat
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  stat="${stat##*) }"
  set -- $stat
  echo "${20}"
}

# Field 4 of /proc/PID/stat: the parent pid.
parent_of() {
  local stat
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  stat="${stat##*) }"
  set -- $stat
  echo "$2"
}

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

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
