# Shared definitions for the host-side rig scripts. Sourced, not executed.
# The caller sets RIG_DIR (the directory of the script that sources this file).

REPO_ROOT=$(cd "$RIG_DIR/../../.." && pwd)
E2E_DIR="$REPO_ROOT/test/e2e"
# Caches and run outputs: test/e2e/.cache/ (git-ignored by test/e2e/.gitignore). Not
# build/: node-gyp owns it and "node-gyp rebuild" (every npm install) deletes it whole.
RIG_CACHE=${RIG_CACHE:-$E2E_DIR/.cache}
# The shell's python3 may be a pyenv shim; the VM only has the Debian one anyway.
PY=/usr/bin/python3

rig_log() { printf '[rig %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
rig_die() { rig_log "ERROR: $*"; exit 125; }

# Newest /lib/modules/<K> that has a matching /boot/vmlinuz-<K>; RIG_KVER overrides.
rig_kver() {
    if [ -n "${RIG_KVER:-}" ]; then echo "$RIG_KVER"; return; fi
    for k in $(ls -1 /lib/modules 2>/dev/null | sort -rV); do
        if [ -f "/boot/vmlinuz-$k" ]; then echo "$k"; return; fi
    done
    rig_die "no /lib/modules/<K> with a matching /boot/vmlinuz-<K> (apt-get install linux-image-amd64)"
}
