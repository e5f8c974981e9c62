# Process helpers for the perf scripts: start servers in the background, remember their PIDs,
# stop exactly those (SIGTERM, then SIGKILL after 5 s) on the way out. Sourced, not run; the
# caller sets `tmp` (a scratch directory removed at exit) before installing the trap.

started_pids=()

alive() { [ -r "/proc/$1/status" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }

forget_pid() {
  local pid=$1 kept=() p
  for p in "${started_pids[@]}"; do [ "$p" = "$pid" ] || kept+=("$p"); done
  started_pids=("${kept[@]}")
}

# SIGTERM, up to 5 s to go, then SIGKILL. Sets stop_status to the exit status.
stop_pid() {
  local pid=$1 i
  stop_status=0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    alive "$pid" || break
    sleep 0.1
  done
  if alive "$pid"; then
    printf 'warning: PID %s ignored SIGTERM for 5 s; sending SIGKILL\n' "$pid" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || stop_status=$?
  forget_pid "$pid"
}

# The EXIT trap (or the end of one): every process still running is stopped, the scratch
# directory removed, and the script exits with $1 (default: the status it was exiting with).
stop_all_and_clean() {
  local status=${1:-$?} pid
  trap - EXIT INT TERM
  for pid in "${started_pids[@]}"; do stop_pid "$pid"; done
  [ -z "${tmp:-}" ] || rm -rf "$tmp"
  exit "$status"
}
