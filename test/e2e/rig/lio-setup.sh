#!/bin/sh
# lio-setup.sh — run INSIDE the rig VM (as root).
#
# One LIO LUN exported through two tcm_loop I_T nexuses: two SCSI disks that are the
# same logical unit seen by two initiators (two nodes of a cluster). Writes
# /run/rig.env (shell source) with:
#   DISK_A DISK_B   block devices (/dev/sdX) of nexus A and B
#   SG_A SG_B       their sg nodes (/dev/sgN)
#   INIT_A INIT_B   initiator port names (naa.…) as LIO reports them
#   LUN_SERIAL      the unit serial number
#   DISK_C SG_C INIT_C  a third nexus, only with NEXUSES=3 (a watcher that must not
#                   consume the UNIT ATTENTIONs meant for A and B)
# Environment: BACKSTORE=rd (default, 64 MiB rd_mcp) or fileio (64 MiB file in /run);
# NEXUSES=2 (default) or 3.
# Pitfalls handled (test-rigs.md 4.4): APTPL dir before target_core_mod, nexus before
# LUN, unit serial set, SCSI hosts identified via the tpg "address" attribute
# (proc_name is "tcm_loopback", not "tcm_loop").
set -eu
CFG=/sys/kernel/config
ENV_FILE=/run/rig.env
SERIAL=prhelper0e2e0001
WWN_PREFIX=naa.50014050000000f   # target ports  …f1, …f2 (…f3)
INIT_PREFIX=naa.50014050000000a  # initiators    …a1, …a2 (…a3)
case "${NEXUSES:-2}" in
2) NEXUS_IDS="1 2" ;;
3) NEXUS_IDS="1 2 3" ;;
*) echo "lio-setup: NEXUSES must be 2 or 3" >&2; exit 125 ;;
esac

die() { echo "lio-setup: $*" >&2; exit 125; }
t_start=$(cut -d' ' -f1 /proc/uptime)

# Without a writable <db_root>/pr every state-changing PR OUT is applied but answered
# NOT READY (LIO cannot write the APTPL file). db_root is chosen at module load.
mkdir -p /etc/target/pr
for m in configfs sd_mod sg target_core_mod tcm_loop; do
    modprobe "$m" || die "modprobe $m failed"
done
grep -qs " $CFG configfs" /proc/mounts || mount -t configfs configfs "$CFG"

case "${BACKSTORE:-rd}" in
rd)
    BS="$CFG/target/core/rd_mcp_0/disk0"
    mkdir -p "$BS"
    echo rd_pages=16384 > "$BS/control"   # 16384 x 4 KiB = 64 MiB
    ;;
fileio)
    BS="$CFG/target/core/fileio_0/disk0"
    mkdir -p "$BS"
    truncate -s 64M /run/lio-disk0.img
    echo fd_dev_name=/run/lio-disk0.img,fd_dev_size=67108864 > "$BS/control"
    ;;
*) die "unknown BACKSTORE=${BACKSTORE}" ;;
esac
echo "$SERIAL" > "$BS/wwn/vpd_unit_serial"
echo 1 > "$BS/enable"

for i in $NEXUS_IDS; do
    T="$CFG/target/loopback/$WWN_PREFIX$i/tpgt_1"
    mkdir -p "$T"
    # The nexus must exist before the LUN: linking the LUN triggers the SCSI scan,
    # which fails with "TCM_Loop I_T Nexus does not exist" otherwise.
    echo "$INIT_PREFIX$i" > "$T/nexus"
    mkdir -p "$T/lun/lun_0"
    ln -s "$BS" "$T/lun/lun_0/disk0"
done

# Wait (bounded) for each nexus' sd and sg nodes. The tpg's "address" attribute is
# "<host>:<channel>:<tpgt>"; LUN 0 of that target is <host>:0:<tpgt>:0.
find_dev() { # $1 = scsi device dir, $2 = block|scsi_generic
    for d in "$1/$2"/*; do [ -e "$d" ] && { basename "$d"; return 0; }; done
    return 1
}
for i in $NEXUS_IDS; do
    T="$CFG/target/loopback/$WWN_PREFIX$i/tpgt_1"
    addr=$(cat "$T/address")
    sdev="/sys/bus/scsi/devices/$addr:0"
    tries=0
    while :; do
        if [ -d "$sdev" ] && blk=$(find_dev "$sdev" block) && sg=$(find_dev "$sdev" scsi_generic) \
           && [ -b "/dev/$blk" ] && [ -c "/dev/$sg" ]; then
            break
        fi
        tries=$((tries + 1))
        [ "$tries" -le 150 ] || die "nexus $i ($addr): no device nodes after 30 s"
        sleep 0.2
    done
    host=${addr%%:*}
    proc=$(cat "/sys/class/scsi_host/host$host/proc_name")
    [ "$proc" = tcm_loopback ] || die "host$host has proc_name '$proc', expected tcm_loopback"
    init=$(cat "$T/nexus")
    case $i in
    1) DISK_A=/dev/$blk SG_A=/dev/$sg INIT_A=$init ;;
    2) DISK_B=/dev/$blk SG_B=/dev/$sg INIT_B=$init ;;
    3) DISK_C=/dev/$blk SG_C=/dev/$sg INIT_C=$init ;;
    esac
done

cat > "$ENV_FILE" <<ENV
DISK_A=$DISK_A
DISK_B=$DISK_B
SG_A=$SG_A
SG_B=$SG_B
INIT_A=$INIT_A
INIT_B=$INIT_B
LUN_SERIAL=$SERIAL
ENV
[ -z "${DISK_C:-}" ] || printf 'DISK_C=%s\nSG_C=%s\nINIT_C=%s\n' "$DISK_C" "$SG_C" "$INIT_C" >> "$ENV_FILE"
t_end=$(cut -d' ' -f1 /proc/uptime)
echo "lio-setup: ready in $(awk -v a="$t_end" -v b="$t_start" 'BEGIN { printf "%.1f", a - b }') s:" \
    "A=$DISK_A ($SG_A, $INIT_A) B=$DISK_B ($SG_B, $INIT_B)"
