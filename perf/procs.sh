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
    printf 'warning: PID %s (%s) ignored SIGTERM for 5 s; sending SIGKILL\n' "$pid" \
      "$(ps -o args= -p "$pid" 2>/dev/null | cut -c1-80)" >&2
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

# Starts `taskset -c CPU SERVER ARGS...` in the background and waits (up to 5 s) for its
# "listening on ...:PORT" line: sets server_pid and server_port, or dies.
start_listening_server() {
  local cpu=$1 server=$2 n
  shift 2
  # (Removed first: the child truncates the file only once it runs, and until then the last
  # server's line would be read for this one's.)
  rm -f "$tmp/server.out"
  taskset -c "$cpu" "$server" "$@" >"$tmp/server.out" 2>"$tmp/server.err" &
  server_pid=$!
  started_pids+=("$server_pid")
  for ((n = 0; n < 100; n++)); do
    grep -q '^listening on' "$tmp/server.out" 2>/dev/null && break
    alive "$server_pid" || die "$server exited: $(tail -c 2000 "$tmp/server.err")"
    sleep 0.05
  done
  server_port=$(sed -n 's|^listening on .*:\([0-9]*\).*|\1|p' "$tmp/server.out" | head -1)
  [ -n "$server_port" ] || die "$server did not say where it listens"
}

# Sets `order` to the arguments after ROUND, turned round in every even round (an A/B's
# interleaving: neither build always runs first).
round_order() {
  local round=$1 i
  shift
  order=("$@")
  if ((round % 2 == 0)); then
    order=()
    for ((i = $#; i >= 1; i--)); do order+=("${!i}"); done
  fi
}
