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

qemu_paused_on_helper "$PRH_SOCK" "$DISK_A"
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
