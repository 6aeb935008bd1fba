#!/bin/sh
# /init of the rig initramfs (busybox sh, PID 1). Stage 1 of the VM boot:
#   host / over 9p (read-only) + tmpfs overlay  ->  /newroot
#   9p share "out" (read-write)                 ->  /newroot/run/rig/out
# then switch_root runs stage 2 (rig.stage2=<abs path>, a script of the host tree).
export PATH=/bin

fail() {
    echo "rig-init: FATAL: $*"
    # Tell runvm.sh this was a rig failure, if the results share is reachable.
    [ -d /newroot/run/rig/out ] && echo 125 > /newroot/run/rig/out/.rc
    /bin/busybox reboot -f
}

/bin/busybox mkdir -p /proc /sys /dev
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

for m in $(cat /modules/order); do
    insmod "/modules/$m" || fail "insmod $m"
done

stage2=
for arg in $(cat /proc/cmdline); do
    case "$arg" in rig.stage2=*) stage2=${arg#rig.stage2=} ;; esac
done
[ -n "$stage2" ] || fail "no rig.stage2= on the kernel command line"

mount -t 9p -o ro,trans=virtio,version=9p2000.L,msize=262144,cache=loose hostroot /lower \
    || fail "mount 9p hostroot"
mount -t tmpfs -o size=1g,mode=755 rw /rw || fail "mount tmpfs"
mkdir -p /rw/upper /rw/work
mount -t overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work overlay /newroot \
    || fail "mount overlay"

# A fresh /run (host runtime state must not leak in). Never a tmpfs on /tmp: it would
# hide job scripts living under the host's /tmp (test-rigs.md 4.1).
mount -t tmpfs -o mode=755 run /newroot/run || fail "mount /run"
mkdir -p /newroot/run/rig/out
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 out /newroot/run/rig/out \
    || fail "mount 9p out"

for d in proc sys dev; do
    mount --move "/$d" "/newroot/$d" || fail "move /$d"
done

[ -f "/newroot$stage2" ] || fail "stage 2 $stage2 not visible in the new root"
exec switch_root /newroot /bin/sh "$stage2"
