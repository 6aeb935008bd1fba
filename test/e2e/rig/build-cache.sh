#!/bin/sh
# Build (or refresh) the VM boot artefacts under $RIG_CACHE (test/e2e/.cache/):
#   vmlinux-<K>             uncompressed kernel, booted through PVH
#   initramfs-<K>.cpio.gz   busybox + virtio/9p/overlay modules + initramfs-init.sh as /init
# Idempotent: does nothing when both are newer than their inputs. Prints "<vmlinux> <initramfs>".
set -eu
RIG_DIR=$(cd "$(dirname "$0")" && pwd)
. "$RIG_DIR/lib.sh"

K=$(rig_kver)
mkdir -p "$RIG_CACHE"
VMLINUX="$RIG_CACHE/vmlinux-$K"
INITRD="$RIG_CACHE/initramfs-$K.cpio.gz"

if [ ! -s "$VMLINUX" ] || [ "/boot/vmlinuz-$K" -nt "$VMLINUX" ]; then
    rig_log "extracting vmlinux-$K"
    "$PY" "$RIG_DIR/extract-vmlinux.py" "/boot/vmlinuz-$K" "$VMLINUX" || rig_die "vmlinux extraction failed"
fi

stale=0
[ -s "$INITRD" ] || stale=1
for dep in "$RIG_DIR/initramfs-init.sh" "$RIG_DIR/build-cache.sh" /bin/busybox "/lib/modules/$K/modules.dep"; do
    [ -e "$dep" ] || rig_die "missing $dep (apt-get install busybox-static linux-image-amd64)"
    [ "$stale" = 1 ] || [ ! "$dep" -nt "$INITRD" ] || stale=1
done

if [ "$stale" = 1 ]; then
    rig_log "building initramfs-$K"
    tmp=$(mktemp -d "$RIG_CACHE/initramfs.XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    mkdir -p "$tmp/bin" "$tmp/dev" "$tmp/proc" "$tmp/sys" "$tmp/modules" \
             "$tmp/lower" "$tmp/rw" "$tmp/newroot"
    cp /bin/busybox "$tmp/bin/busybox"
    ln -s busybox "$tmp/bin/sh"
    # No devtmpfs automount in this kernel: the kernel needs /dev/console before /init runs.
    mknod "$tmp/dev/console" c 5 1
    mknod "$tmp/dev/null" c 1 3
    # busybox insmod resolves nothing: load in the order modprobe would (test-rigs.md 4.1).
    for m in virtio_pci 9pnet_virtio 9p overlay; do
        modprobe -S "$K" --show-depends "$m" || rig_die "modprobe --show-depends $m failed"
    done | awk '$1 == "insmod" && !seen[$2]++ { print $2 }' > "$tmp/modules.paths"
    : > "$tmp/modules/order"
    while read -r ko; do
        case "$ko" in *.ko) ;; *) rig_die "compressed module $ko: busybox insmod needs plain .ko" ;; esac
        cp "$ko" "$tmp/modules/"
        basename "$ko" >> "$tmp/modules/order"
    done < "$tmp/modules.paths"
    rm "$tmp/modules.paths"
    cp "$RIG_DIR/initramfs-init.sh" "$tmp/init"
    chmod 755 "$tmp/init"
    (cd "$tmp" && find . | cpio -o -H newc --quiet) | gzip -1 > "$INITRD.tmp.$$"
    mv "$INITRD.tmp.$$" "$INITRD"
fi

echo "$VMLINUX $INITRD"
