#!/bin/sh
# A guest that issues SCSI persistent reservations on a host SCSI disk,
# forwarded through pr-helper. Set DISK (a stable /dev/disk/by-id/ path is
# better than /dev/sdX) and the guest image; run as the user QEMU
# normally runs as (it needs read-write access to DISK and write permission on
# the helper socket, e.g. membership in group kvm with pr-helper.socket).
set -eu

DISK=${DISK:-/dev/sdb}
SOCKET=${SOCKET:-/run/qemu-pr-helper.sock}
# Started by pr-helper.socket, or by hand:  pr-helper -k "$SOCKET" --socket-group kvm --socket-mode 0660 &
# Check the path first:                    pr-helper check --socket "$SOCKET" --device "$DISK"

# -object pr-manager-helper: QEMU connects to the helper when it starts and
#     fails to start if nothing answers there.
# -drive ...,file.pr-manager=pr0: PERSISTENT RESERVE IN/OUT that the guest
#     sends to this disk go to the helper, together with QEMU's descriptor for
#     DISK; every other command goes to the kernel directly. pr-manager is an
#     option of the host_device protocol node ("file."), so DISK must be a real
#     SCSI disk, sg node or dm-multipath map. The -blockdev spelling is
#     -blockdev node-name=shared0,driver=host_device,filename=$DISK,pr-manager=pr0
# -device scsi-block: passes the guest's SCSI commands through to DISK
#     (scsi-generic on /dev/sgN works too); scsi-hd does not pass PR commands on.
exec qemu-system-x86_64 \
    -machine q35,accel=kvm -m 2048 -nographic \
    -object pr-manager-helper,id=pr0,path="$SOCKET" \
    -drive file=guest.qcow2,if=virtio \
    -device virtio-scsi-pci,id=scsi0 \
    -drive if=none,id=shared0,format=raw,cache=none,file.driver=host_device,file.filename="$DISK",file.pr-manager=pr0 \
    -device scsi-block,bus=scsi0.0,drive=shared0
