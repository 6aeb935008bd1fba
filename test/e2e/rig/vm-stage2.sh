#!/bin/sh
# Stage 2 of the VM boot, PID 1 inside the new root (host tree over 9p + overlay), or
# systemd's rig-job.service when vm-stage2-systemd.sh made systemd PID 1.
# Reads /run/rig/out/job.env (written by runvm.sh), runs $RIG_JOB, records its exit
# status in /run/rig/out/.rc and powers off (QEMU runs with -no-reboot).
set -u
OUT=/run/rig/out
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root TERM=dumb LANG=C.UTF-8

finish() {
    echo "$1" > "$OUT/.rc.tmp" && mv "$OUT/.rc.tmp" "$OUT/.rc"
    sync
    /bin/busybox reboot -f
}

. "$OUT/job.env" || finish 125

# Under vm-stage2-systemd.sh, systemd has mounted some of these already.
mkdir -p /dev/pts /dev/shm
mountpoint -q /dev/pts || mount -t devpts devpts /dev/pts
mountpoint -q /dev/shm || mount -t tmpfs -o mode=1777 shm /dev/shm
mountpoint -q /sys/kernel/config || { modprobe configfs && mount -t configfs configfs /sys/kernel/config; }
hostname rig-vm
ip link set lo up 2>/dev/null || true

: > "$OUT/.job-started"
echo "rig: running $RIG_JOB (guest uptime $(cut -d' ' -f1 /proc/uptime) s)"
# The inner timeout fires before runvm.sh's hard one, so the job log still arrives.
( cd / && timeout -k 5 "$RIG_JOB_TIMEOUT" /bin/sh -c 'if [ -x "$1" ]; then exec "$1"; else exec /bin/sh "$1"; fi' \
    rig-job "$RIG_JOB"; echo $? > "$OUT/.job-rc" ) 2>&1 | tee "$OUT/job.log"
rc=$(cat "$OUT/.job-rc" 2>/dev/null || echo 125)
[ "$rc" != 124 ] || echo "rig: job TIMED OUT after $RIG_JOB_TIMEOUT s (inner timeout)"
echo "rig: job exit status $rc (guest uptime $(cut -d' ' -f1 /proc/uptime) s)"
finish "$rc"
