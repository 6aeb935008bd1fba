#!/bin/sh
# systemd.sh — VM job of the real-systemd tier (run-systemd.sh; checked on the host by
# tools/check-systemd.ts). systemd is PID 1 (rig/vm-stage2-systemd.sh). The job installs
# the Debian package ($PR_HELPER_DEB) with dpkg, starts pr-helper.socket, and a real QEMU
# (paused, played over qtest as in tier 2) connects to /run/qemu-pr-helper.sock with its
# scsi-block disk on LIO nexus A: socket activation starts pr-helper.service, which must
# run PR commands on the LUN with nothing but CAP_SYS_RAWIO. Then systemctl stop, and the
# journal. Results: $RIG_OUT/results.jsonl.
set -eu
. "$RIG_DIR/vm-lib.sh"
SOCK=/run/qemu-pr-helper.sock
QTEST_SOCK=/run/qtest.sock
QMP_SOCK=/run/qmp.sock
DRIVER="$REPO_ROOT/dist/test/e2e/tools/qtest-virtio-scsi.js"
: > "$RESULTS"
[ -f "$DRIVER" ] || { echo "missing $DRIVER: run npx tsc -p test/e2e/tsconfig.json" >&2; exit 125; }
[ -f "${PR_HELPER_DEB:-}" ] || { echo "missing PR_HELPER_DEB=${PR_HELPER_DEB:-}" >&2; exit 125; }

jline pid1 comm "$(cat /proc/1/comm)" system_state "$(systemctl is-system-running 2>/dev/null || true)"

"$RIG_DIR/lio-setup.sh"
. /run/rig.env
jline lio-setup disk_a "$DISK_A" disk_b "$DISK_B" init_a "$INIT_A" init_b "$INIT_B"
sgp --out --register --param-sark=0xbbbb "$DISK_B"
jline sgp-register-b rc "$SGP_RC"

# The package's postinst enables and starts the socket, as on a host (deb-systemd-invoke).
# The machine this rig borrows its root from may forbid starting services from package
# scripts (a container's policy-rc.d exits 101); a hypervisor host has no such policy.
rm -f /usr/sbin/policy-rc.d
install_deb "$PR_HELPER_DEB"
jline dpkg-install rc "$DPKG_RC" seconds "$DPKG_SECONDS" \
    socket_enabled "$(systemctl is-enabled pr-helper.socket 2>&1 || true)" \
    socket_active "$(systemctl is-active pr-helper.socket 2>&1 || true)"

rc=0
systemctl start pr-helper.socket || rc=$?
jline socket-start rc "$rc" socket_file "$([ -S "$SOCK" ] && echo 1 || echo 0)" \
    service_active "$(systemctl is-active pr-helper.service 2>&1 || true)"

qemu_paused_on_helper "$SOCK" "$DISK_A"
trap 'kill $QEMU_PID 2>/dev/null || true' EXIT

# The tier 2 scenario without its helper kill/restart: QMP connected, then PR commands
# through virtio-scsi, QEMU and the service to LIO, cross-checked from nexus B.
rc=0
timeout -k 5 120 node "$DRIVER" --qtest "$QTEST_SOCK" --qmp "$QMP_SOCK" --disk-b "$DISK_B" --results "$RESULTS" || rc=$?
jline driver-exit rc "$rc"

show() { systemctl show pr-helper.service -p "$1" --value; }
pid=$(show MainPID)
jline service-running active "$(show ActiveState)" sub "$(show SubState)" status_text "$(show StatusText)" \
    main_pid "$pid" restarts "$(show NRestarts)" comm "$(cat "/proc/$pid/comm" 2>/dev/null || true)" \
    cmdline "$(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null || true)"
# One line per thread, from a single awk (every program start costs under TCG); a thread
# that ends meanwhile is simply not listed.
awk -f "$RIG_DIR/thread-creds.awk" /proc/"$pid"/task/*/status >> "$RESULTS" 2>/dev/null || true

# A failure the daemon logs at warn: SG_IO on /dev/null fails with ENOTTY. journald must
# store it at priority warning, so that `journalctl -p warning` shows it.
rc=0
pr-helper client --socket "$SOCK" --device /dev/null read-keys > "$RIG_OUT/client-devnull.log" 2>&1 || rc=$?
jline client-devnull rc "$rc"

# Stopped with QEMU still connected, as an operator would.
rc=0
systemctl stop pr-helper.service pr-helper.socket || rc=$?
jline stopped rc "$rc" service "$(show ActiveState)" socket "$(systemctl is-active pr-helper.socket 2>&1 || true)" \
    pid_alive "$(kill -0 "$pid" 2>/dev/null && echo 1 || echo 0)" \
    processes "$(pgrep -x pr-helper | wc -l)" socket_file "$([ -e "$SOCK" ] && echo 1 || echo 0)"

kill "$QEMU_PID" 2>/dev/null || true
wait "$QEMU_PID" 2>/dev/null || true
trap - EXIT

# The daemon's own lines (not systemd's "Started ..."), as journald stored them.
journalctl -u pr-helper.service --no-pager -o verbose > "$RIG_OUT/journal.txt" 2>&1 || true
own() { journalctl -u pr-helper.service --no-pager -o cat "_PID=$pid" 2>/dev/null | grep -c "$1" || true; }
jline journal accepting "$(own 'accepting connections')" stopping "$(own 'stopping')" stopped "$(own 'stopped')" \
    lines "$(journalctl -u pr-helper.service --no-pager -o cat "_PID=$pid" 2>/dev/null | wc -l)"
at_warning() { journalctl -u pr-helper.service --no-pager -o cat -p warning "_PID=$pid" 2>/dev/null | grep -c "$1" || true; }
jline journal-priority enotty_at_warning "$(at_warning 'SG_IO ENOTTY')" accepting_at_warning "$(at_warning 'accepting connections')" \
    enotty_priority "$(journalctl -u pr-helper.service --no-pager -o json "_PID=$pid" 2>/dev/null | grep 'SG_IO ENOTTY' | sed -n 's/.*"PRIORITY":"\([0-9]\)".*/\1/p' | head -n 1)"
journalctl -u pr-helper.service -u pr-helper.socket --no-pager -o short-monotonic || true
echo "systemd job done: $(wc -l < "$RESULTS") result lines"
