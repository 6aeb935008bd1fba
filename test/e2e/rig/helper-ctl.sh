#!/bin/sh
# helper-ctl.sh start|stop|status — run INSIDE the rig VM.
# Starts the helper under test as "$HELPER_CMD -k $PRH_SOCK" (HELPER_CMD may carry
# extra options, e.g. "/usr/bin/qemu-pr-helper -v"); output goes to $RIG_OUT/helper.log.
#   start   waits (bounded, 15 s) until the socket exists; fails if the helper dies
#   stop    SIGTERM, waits (bounded, 10 s) for the exit, then SIGKILL
set -eu
HELPER_CMD=${HELPER_CMD:-/usr/bin/qemu-pr-helper}
PRH_SOCK=${PRH_SOCK:-/run/prh.sock}
PIDFILE=${PRH_PIDFILE:-/run/prh.pid}
LOG=${RIG_OUT:-/run}/helper.log

running() { [ -s "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

case "${1:-}" in
start)
    ! running || { echo "helper-ctl: already running (pid $(cat "$PIDFILE"))" >&2; exit 1; }
    echo "== $(cut -d' ' -f1 /proc/uptime) start: $HELPER_CMD -k $PRH_SOCK" >> "$LOG"
    ( eval "exec $HELPER_CMD -k \"\$PRH_SOCK\"" ) >> "$LOG" 2>&1 < /dev/null &
    echo $! > "$PIDFILE"
    i=0
    until [ -S "$PRH_SOCK" ]; do
        if ! running; then
            echo "helper-ctl: helper exited during startup; end of $LOG:" >&2
            tail -n 20 "$LOG" >&2
            exit 1
        fi
        i=$((i + 1))
        [ "$i" -le 150 ] || { echo "helper-ctl: no socket $PRH_SOCK after 15 s" >&2; exit 1; }
        sleep 0.1
    done
    ;;
stop)
    running || { echo "helper-ctl: not running" >&2; exit 1; }
    pid=$(cat "$PIDFILE")
    kill -TERM "$pid"
    i=0
    while kill -0 "$pid" 2>/dev/null; do
        i=$((i + 1))
        if [ "$i" -gt 100 ]; then
            echo "helper-ctl: pid $pid ignored SIGTERM for 10 s, killing" >&2
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.1
    done
    wait "$pid" 2>/dev/null || true
    rm -f "$PIDFILE"
    echo "== $(cut -d' ' -f1 /proc/uptime) stopped pid $pid" >> "$LOG"
    ;;
status)
    running
    ;;
*)
    echo "usage: $0 start|stop|status" >&2
    exit 2
    ;;
esac
