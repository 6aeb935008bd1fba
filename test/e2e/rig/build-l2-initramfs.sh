#!/bin/sh
# Build (or refresh) the Tier 3 L2 guest's initramfs under $RIG_CACHE:
#   initramfs-l2-<K>.cpio.gz   busybox, sg_persist + its libraries, virtio-scsi/sd/sg
#                              modules, l2-init.sh as /init
# The L2 guest boots the same vmlinux-<K> as the rig VM (build-cache.sh). Idempotent.
# Prints the initramfs path.
set -eu
RIG_DIR=$(cd "$(dirname "$0")" && pwd)
. "$RIG_DIR/lib.sh"

K=$(rig_kver)
mkdir -p "$RIG_CACHE"
INITRD="$RIG_CACHE/initramfs-l2-$K.cpio.gz"
SG_PERSIST=/usr/bin/sg_persist

stale=0
[ -s "$INITRD" ] || stale=1
for dep in "$RIG_DIR/l2-init.sh" "$RIG_DIR/build-l2-initramfs.sh" /bin/busybox "$SG_PERSIST" "/lib/modules/$K/modules.dep"; do
    [ -e "$dep" ] || rig_die "missing $dep (apt-get install busybox-static sg3-utils linux-image-amd64)"
    [ "$stale" = 1 ] || [ ! "$dep" -nt "$INITRD" ] || stale=1
done

if [ "$stale" = 1 ]; then
    rig_log "building initramfs-l2-$K"
    tmp=$(mktemp -d "$RIG_CACHE/initramfs-l2.XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    mkdir -p "$tmp/bin" "$tmp/usr/bin" "$tmp/dev" "$tmp/proc" "$tmp/sys" "$tmp/modules"
    cp /bin/busybox "$tmp/bin/busybox"
    ln -s busybox "$tmp/bin/sh"
    mknod "$tmp/dev/console" c 5 1
    mknod "$tmp/dev/null" c 1 3
    # sg_persist and the shared objects ldd names (the loader included), at their paths.
    cp "$SG_PERSIST" "$tmp/usr/bin/"
    for lib in $(ldd "$SG_PERSIST" | awk '/=>/ { print $3; next } $1 ~ /^\// { print $1 }'); do
        mkdir -p "$tmp$(dirname "$lib")"
        cp -L "$lib" "$tmp$lib"
    done
    # virtio-scsi disk + sd + sg, in modprobe's dependency order (busybox insmod resolves nothing).
    for m in virtio_pci virtio_scsi sd_mod sg; do
        modprobe -S "$K" --show-depends "$m" || rig_die "modprobe --show-depends $m failed"
    done | awk '$1 == "insmod" && !seen[$2]++ { print $2 }' > "$tmp/modules.paths"
    : > "$tmp/modules/order"
    while read -r ko; do
        case "$ko" in *.ko) ;; *) rig_die "compressed module $ko: busybox insmod needs plain .ko" ;; esac
        cp "$ko" "$tmp/modules/"
        basename "$ko" >> "$tmp/modules/order"
    done < "$tmp/modules.paths"
    rm "$tmp/modules.paths"
    cp "$RIG_DIR/l2-init.sh" "$tmp/init"
    chmod 755 "$tmp/init"
    (cd "$tmp" && find . | cpio -o -H newc --quiet) | gzip -1 > "$INITRD.tmp.$$"
    mv "$INITRD.tmp.$$" "$INITRD"
fi
echo "$INITRD"
