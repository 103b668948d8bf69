# shellcheck shell=bash
# CPU time of processes and of the machine, from /proc, for the benchmark
# scripts (sourced, not run):
#
#   . "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/proc_cpu.sh"
#
# Every figure is in clock ticks (`getconf CLK_TCK`, usually 100 a second), the
# unit /proc counts in; CLK_TCK holds it. CPU time, unlike throughput, holds
# still when something else shares the machine, so the benches report it per
# request.

# shellcheck disable=SC2034 # read by the scripts that source this file
CLK_TCK="$(getconf CLK_TCK)"

# proc_ticks PID...: the user and system time (fields 14 and 15 of
# /proc/PID/stat, every thread of the process) summed over the PIDs. The
# fields are counted after the last `)`, since the command name in field 2
# may hold spaces and parentheses. A PID that is gone counts 0.
proc_ticks() {
  local pid stat total=0
  for pid in "$@"; do
    stat="$(cat "/proc/$pid/stat" 2>/dev/null)" || continue
    stat="${stat##*) }"
    # After `) `: field 3 (state) is $1, so utime (14) is $12 and stime (15) $13.
    total=$((total + $(awk '{print $12 + $13}' <<<"$stat")))
  done
  echo "$total"
}

# proc_switches PID: the context switches (voluntary and not) of every
# thread of the process so far, from /proc/PID/task/*/status. A thread that
# waits for I/O with nothing else to do sleeps and is woken: on a VM that
# is much of what a request's extra round trip costs, so the count per request
# says where CPU time went. A thread that ended is not counted.
proc_switches() {
  cat /proc/"$1"/task/*/status 2>/dev/null | awk '/ctxt_switches/ {s += $2} END {print s + 0}'
}

# machine_busy_ticks: the ticks every core spent on anything but idle and
# iowait since boot (the `cpu` line of /proc/stat), to tell how busy the
# rest of the machine was during a measurement.
machine_busy_ticks() {
  awk '$1 == "cpu" {print $2 + $3 + $4 + $7 + $8 + $9; exit}' /proc/stat
}

# pids_named COMM PATTERN: the pids whose command line matches PATTERN and
# whose command name is COMM (`pgrep -f` also matches a wrapper script or a
# shell that mentions the pattern).
pids_named() {
  local comm="$1" pattern="$2" pid
  for pid in $(pgrep -f "$pattern" || true); do
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$comm" ] && echo "$pid"
  done
  return 0
}

# load_average: the first three fields of /proc/loadavg.
load_average() { awk '{print $1, $2, $3}' /proc/loadavg; }

# machine_summary: CPU model, cores, memory and kernel, as benches/common/results.rs words them.
machine_summary() {
  local model memory
  model="$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
  memory="$(awk '/^MemTotal:/ {printf "%.1f GiB", $2 / 1024 / 1024}' /proc/meminfo)"
  printf '%s, %s cores, %s, Linux %s\n' "${model:-unknown CPU}" "$(nproc)" "$memory" "$(uname -r)"
}
