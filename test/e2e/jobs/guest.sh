#!/bin/sh
# guest.sh — VM job for Tier 3 (run-guest.sh; checked on the host by tools/check-guest.ts).
#
# A real L2 Linux guest (TCG inside TCG) whose /dev/sda is scsi-block on LIO nexus A,
# with pr-manager-helper -> $HELPER_CMD. Its /init (rig/l2-init.sh) runs sg_persist:
# READ KEYS, REGISTER 0xc0ffee, RESERVE Exclusive Access, READ RESERVATION, all through
# the guest kernel's SCSI stack, QEMU and the helper. Nexus B (here, in L1) registers
# first and checks the outcome afterwards. Needs L2_KERNEL and L2_INITRD.
set -eu
. "$RIG_DIR/vm-lib.sh"
export PRH_SOCK=/run/prh.sock
L2_TIMEOUT=${L2_TIMEOUT:-600}
: > "$RESULTS"
[ -f "$L2_KERNEL" ] && [ -f "$L2_INITRD" ] || { echo "missing L2 kernel/initramfs" >&2; exit 125; }

"$RIG_DIR/lio-setup.sh"
. /run/rig.env
jline lio-setup disk_a "$DISK_A" disk_b "$DISK_B" init_a "$INIT_A" init_b "$INIT_B"
sgp --out --register --param-sark=0xbbbb "$DISK_B"
jline sgp-register-b rc "$SGP_RC"

"$RIG_DIR/helper-ctl.sh" start
jline helper-start ok 1 cmd "$HELPER_CMD"

t0=$(cut -d' ' -f1 /proc/uptime)
rc=0
timeout -k 5 "$L2_TIMEOUT" qemu-system-x86_64 -accel tcg,tb-size=256 -cpu max -smp 1 -m 512M \
    -nodefaults -no-user-config -display none -monitor none -no-reboot \
    -chardev "file,id=con,path=$RIG_OUT/l2-console.log" -serial chardev:con \
    -kernel "$L2_KERNEL" -initrd "$L2_INITRD" \
    -append "console=ttyS0 panic=-1 quiet mitigations=off" \
    -object pr-manager-helper,id=helper0,path="$PRH_SOCK" \
    -blockdev driver=host_device,filename="$DISK_A",pr-manager=helper0,node-name=f0,cache.direct=on \
    -blockdev driver=raw,file=f0,node-name=d0 \
    -device virtio-scsi-pci,id=scsi0 \
    -device scsi-block,drive=d0,bus=scsi0.0,scsi-id=0,lun=0 \
    > "$RIG_OUT/l2-qemu.log" 2>&1 || rc=$?
t1=$(cut -d' ' -f1 /proc/uptime)
jline l2-exit rc "$rc" seconds "$(awk -v a="$t1" -v b="$t0" 'BEGIN { printf "%d", a - b }')"
# The guest's own results, as it printed them on its console.
tr -d '\r' < "$RIG_OUT/l2-console.log" | sed -n 's/^L2R //p' >> "$RESULTS"
tr -d '\r' < "$RIG_OUT/l2-console.log" | grep '^L2' || true

# The other node's view: the guest's key holds an Exclusive Access reservation via nexus A.
sgp --in --read-full-status "$DISK_B"
# Flattened, lines separated by "|"; tools/check-guest.ts finds the holder's descriptor.
jline sgp-read-full-status-b rc "$SGP_RC" text "$(printf '%s\n' "$SGP_OUT" | tr '\n' '|' | sed 's/  */ /g')"
sgp --out --reserve --param-rk=0xbbbb --prout-type=1 "$DISK_B"
jline sgp-reserve-b rc "$SGP_RC"
sgp --out --clear --param-rk=0xbbbb "$DISK_B"
jline sgp-clear-b rc "$SGP_RC"

"$RIG_DIR/helper-ctl.sh" stop || true
jline helper-stop ok 1
# Our daemon logs each connection's request count (JSON lines); qemu-pr-helper logs nothing.
jline helper-log requests "$(sed -n 's/.*"requests":\([0-9]*\).*/\1/p' "$RIG_OUT/helper.log" | awk '{ s += $1 } END { print s + 0 }')"
echo "guest job done: $(wc -l < "$RESULTS") result lines"
