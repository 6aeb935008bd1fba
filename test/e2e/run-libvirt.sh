#!/bin/sh
# The real-libvirt tier (npm run test:e2e:libvirt): Debian's libvirtd in the rig VM with
# pr_helper = the installed Debian package's /usr/bin/pr-helper; a domain boots tier 3's L2
# kernel and initramfs on an LIO LUN with managed reservations, a second one is
# hot-unplugged, a helper is killed, domains are destroyed (jobs/libvirt.sh,
# tools/check-libvirt.ts). 4-6 minutes: the L2 guest runs TCG inside TCG.
# Env: RIG_TIMEOUT (default 900), L2_TIMEOUT (600), RIG_OUT, RIG_CONSOLE=1, SMP (2),
# MEM (3G), RIG_SKIP_TSC=1. Root required. Exit 0 PASS, 1 FAIL, 125 rig failure.
set -eu
E2E_DIR=$(cd "$(dirname "$0")" && pwd)
RIG_DIR="$E2E_DIR/rig"
. "$RIG_DIR/lib.sh"
export SMP=${SMP:-2} MEM=${MEM:-3G} RIG_TIMEOUT=${RIG_TIMEOUT:-900}
[ -x /usr/sbin/libvirtd ] || { echo "FAIL libvirt: /usr/sbin/libvirtd missing (apt-get install libvirt-daemon-system libvirt-clients)"; exit 125; }
[ -f "$REPO_ROOT/dist/scripts/package-deb.js" ] || { echo "FAIL libvirt: dist/ missing: npx tsc -p tsconfig.json"; exit 125; }
PR_HELPER_DEB=$(cd "$REPO_ROOT" && node dist/scripts/package-deb.js) || { echo "FAIL libvirt: package build"; exit 125; }
artefacts=$("$RIG_DIR/build-cache.sh") || { echo "FAIL libvirt: cache build"; exit 125; }
L2_KERNEL=${artefacts% *}
L2_INITRD=$("$RIG_DIR/build-l2-initramfs.sh") || { echo "FAIL libvirt: L2 initramfs build"; exit 125; }
L2_TIMEOUT=${L2_TIMEOUT:-600}
export PR_HELPER_DEB L2_KERNEL L2_INITRD L2_TIMEOUT
export RIG_PASS_ENV="${RIG_PASS_ENV:-} PR_HELPER_DEB L2_KERNEL L2_INITRD L2_TIMEOUT"
# What run-tier.sh reports: libvirt starts the installed package, not a HELPER_CMD.
export HELPER_CMD="/usr/bin/pr-helper (the Debian package, started by libvirtd)"
exec "$RIG_DIR/run-tier.sh" libvirt "$E2E_DIR/jobs/libvirt.sh" check-libvirt
