#!/bin/sh
# Tier 3 (npm run test:e2e:guest): a real L2 Linux guest, booted by QEMU inside the rig
# VM (TCG inside TCG), whose /dev/sda is scsi-block on LIO nexus A with pr-manager-helper
# -> the helper under test; sg_persist inside L2 registers and reserves, nexus B in L1
# checks (jobs/guest.sh, rig/l2-init.sh, tools/check-guest.ts). 3-4 minutes.
# Env: HELPER_CMD (default: OUR daemon, node dist/src/cli/main.js), RIG_TIMEOUT (default
# 720), L2_TIMEOUT (default 600; the L2 guest needs ~200 s on an idle machine, twice that
# when other VMs share the 2 cores), RIG_OUT, RIG_CONSOLE=1, SMP (2), MEM (3G).
# Root required. Exit 0 PASS, 1 FAIL, 125 rig failure.
set -eu
E2E_DIR=$(cd "$(dirname "$0")" && pwd)
RIG_DIR="$E2E_DIR/rig"
. "$RIG_DIR/lib.sh"
export HELPER_CMD=${HELPER_CMD:-node $REPO_ROOT/dist/src/cli/main.js}
export SMP=${SMP:-2} MEM=${MEM:-3G} RIG_TIMEOUT=${RIG_TIMEOUT:-720}
artefacts=$("$RIG_DIR/build-cache.sh") || { echo "FAIL guest: cache build"; exit 125; }
L2_KERNEL=${artefacts% *}
L2_INITRD=$("$RIG_DIR/build-l2-initramfs.sh") || { echo "FAIL guest: L2 initramfs build"; exit 125; }
L2_TIMEOUT=${L2_TIMEOUT:-600}
export L2_KERNEL L2_INITRD L2_TIMEOUT
export RIG_PASS_ENV="${RIG_PASS_ENV:-} L2_KERNEL L2_INITRD L2_TIMEOUT"
exec "$RIG_DIR/run-tier.sh" guest "$E2E_DIR/jobs/guest.sh" check-guest
