#!/bin/sh
# Tier 2: a real QEMU inside the rig VM as the helper's client, driven over qtest
# (jobs/qemu-client.sh + tools/qtest-virtio-scsi.ts). The VM gets 2 CPUs (QEMU inside).
# Env: HELPER_CMD (default /usr/bin/qemu-pr-helper), RIG_TIMEOUT, RIG_OUT, RIG_CONSOLE=1.
# Root required (9p passthrough). Exit 0 PASS, 1 FAIL, 125 rig failure.
set -eu
E2E_DIR=$(cd "$(dirname "$0")" && pwd)
export SMP=${SMP:-2}
exec "$E2E_DIR/rig/run-tier.sh" qemu-client "$E2E_DIR/jobs/qemu-client.sh" check-qemu-client
