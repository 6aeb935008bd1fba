#!/bin/sh
# Stage 2 for the tiers that need a real service manager (runvm.sh with RIG_STAGE2 set to
# this file): PID 1 in the new root, it writes a minimal boot target onto the overlay and
# becomes systemd, which runs vm-stage2.sh (the job, then power-off) as rig-job.service.
# Only what the job starts is started: the host's enabled units (libvirtd, getty, ...) are
# not pulled in, and the host's /etc/fstab, which describes the host's disks, is emptied.
set -u
RIG_DIR=$(cd "$(dirname "$0")" && pwd)
OUT=/run/rig/out
UNITS=/etc/systemd/system

fail() {
    echo "rig-stage2-systemd: FATAL: $*"
    echo 125 > "$OUT/.rc"
    /bin/busybox reboot -f
}

[ -x /lib/systemd/systemd ] || fail "no /lib/systemd/systemd (apt-get install systemd)"
: > /etc/fstab || fail "cannot write the overlay's /etc/fstab"
# Early boot is slow under TCG (each program start reads its libraries over 9p): no
# generators, and of sysinit.target (which every unit with default dependencies, such as
# pr-helper.socket, pulls in) only journald. Masks in /etc win over the host's units.
mkdir -p /etc/systemd/system-generators
for g in /usr/lib/systemd/system-generators/* /lib/systemd/system-generators/*; do
    [ -e "$g" ] && ln -sf /dev/null "/etc/systemd/system-generators/${g##*/}"
done
for u in /usr/lib/systemd/system/sysinit.target.wants/* /etc/systemd/system/sysinit.target.wants/*; do
    case "${u##*/}" in systemd-journald.service) continue ;; esac
    [ -e "$u" ] && ln -sf /dev/null "$UNITS/${u##*/}"
done
cat > "$UNITS/rig.target" <<UNIT || fail "cannot write $UNITS/rig.target"
[Unit]
Description=Rig: the job and nothing else
Requires=rig-job.service
AllowIsolate=yes
UNIT
cat > "$UNITS/rig-job.service" <<UNIT || fail "cannot write $UNITS/rig-job.service"
[Unit]
Description=Rig job
# Not behind sysinit.target: the job starts what it needs (pr-helper.socket pulls it in).
DefaultDependencies=no
Wants=systemd-journald.socket
After=systemd-journald.socket

[Service]
Type=oneshot
TimeoutStartSec=infinity
ExecStart=/bin/sh $RIG_DIR/vm-stage2.sh
StandardOutput=journal+console
StandardError=inherit
UNIT
exec /lib/systemd/systemd --unit=rig.target
