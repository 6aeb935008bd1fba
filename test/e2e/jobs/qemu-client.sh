#!/bin/sh
# qemu-client.sh — VM job for tier 2 (run with SMP=2 rig/runvm.sh; see run-qemu-client.sh).
#
# A real QEMU inside the VM is the helper's client: its scsi-block disk sits on LIO
# nexus A with pr-manager=helper0 -> $HELPER_CMD. QEMU runs paused (-S; Debian's build
# has no qtest accelerator) and tools/qtest-virtio-scsi.ts plays the guest over qtest.
# Nexus B (sg_persist) is the other cluster node. Results: $RIG_OUT/results.jsonl.
set -eu
. "$RIG_DIR/vm-lib.sh"
export PRH_SOCK=/run/prh.sock
QTEST_SOCK=/run/qtest.sock
QMP_SOCK=/run/qmp.sock
DRIVER="$REPO_ROOT/dist/test/e2e/tools/qtest-virtio-scsi.js"
: > "$RESULTS"
[ -f "$DRIVER" ] || { echo "missing $DRIVER: run npx tsc -p test/e2e/tsconfig.json" >&2; exit 125; }

"$RIG_DIR/lio-setup.sh"
. /run/rig.env
jline lio-setup disk_a "$DISK_A" disk_b "$DISK_B" init_a "$INIT_A" init_b "$INIT_B"

sgp --out --register --param-sark=0xbbbb "$DISK_B"
jline sgp-register-b rc "$SGP_RC" ua_retried "$SGP_UA"

"$RIG_DIR/helper-ctl.sh" start
jline helper-start ok 1 cmd "$HELPER_CMD"

qemu-system-x86_64 -machine pc -nodefaults -m 128M -accel tcg -S -display none \
    -qtest "unix:$QTEST_SOCK,server=on,wait=off" -qtest-log /dev/null \
    -qmp "unix:$QMP_SOCK,server=on,wait=off" \
    -object pr-manager-helper,id=helper0,path="$PRH_SOCK" \
    -blockdev driver=host_device,filename="$DISK_A",pr-manager=helper0,node-name=f0,cache.direct=on \
    -blockdev driver=raw,file=f0,node-name=d0 \
    -device virtio-scsi-pci,id=scsi0,disable-modern=on \
    -device scsi-block,drive=d0,bus=scsi0.0,scsi-id=0,lun=0 \
    > "$RIG_OUT/qemu.log" 2>&1 &
QEMU_PID=$!
trap 'kill $QEMU_PID 2>/dev/null || true' EXIT

rc=0
timeout -k 5 150 node "$DRIVER" --qtest "$QTEST_SOCK" --qmp "$QMP_SOCK" --disk-b "$DISK_B" \
    --helper-ctl "$RIG_DIR/helper-ctl.sh" --results "$RESULTS" || rc=$?
jline driver-exit rc "$rc"

kill "$QEMU_PID" 2>/dev/null || true
wait "$QEMU_PID" 2>/dev/null || true
jline qemu-exit log_lines "$(wc -l < "$RIG_OUT/qemu.log")"
"$RIG_DIR/helper-ctl.sh" stop || true
exit "$rc"
