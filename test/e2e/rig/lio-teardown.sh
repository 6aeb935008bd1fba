#!/bin/sh
# lio-teardown.sh — run INSIDE the rig VM: removes everything lio-setup.sh created
# (tcm_loop LUNs, nexuses and targets, then the backstores), so that the next
# lio-setup.sh starts from a new device: PR generation 0, no registrations, relative
# target port identifiers 1 and 2 again. Nothing may hold the disks open.
set -eu
CFG=/sys/kernel/config
die() { echo "lio-teardown: $*" >&2; exit 125; }
t_start=$(cut -d' ' -f1 /proc/uptime)
[ -f /run/rig.env ] && . /run/rig.env

for tpg in "$CFG"/target/loopback/*/tpgt_*; do
    [ -d "$tpg" ] || continue
    for lun in "$tpg"/lun/lun_*; do
        [ -d "$lun" ] || continue
        for link in "$lun"/*; do
            [ -L "$link" ] && { rm "$link" || die "unlink $link"; }
        done
        rmdir "$lun" || die "rmdir $lun"
    done
    # tcm_loop drops the I_T nexus when "NULL" is written to it.
    echo NULL > "$tpg/nexus" 2>/dev/null || true
    rmdir "$tpg" || die "rmdir $tpg"
    rmdir "$(dirname "$tpg")" || die "rmdir $(dirname "$tpg")"
done
for hba in "$CFG"/target/core/*_[0-9]*; do
    [ -d "$hba" ] || continue
    for dev in "$hba"/*; do
        [ -d "$dev" ] && { rmdir "$dev" || die "rmdir $dev"; }
    done
    rmdir "$hba" || die "rmdir $hba"
done

# The SCSI disks go away with their LUNs; wait (bounded) so the next setup's scan
# cannot race with the removal.
tries=0
while [ -n "${DISK_A:-}" ] && { [ -e "$DISK_A" ] || [ -e "${DISK_B:-/nonexistent}" ] || [ -e "${DISK_C:-/nonexistent}" ]; }; do
    tries=$((tries + 1))
    [ "$tries" -le 100 ] || die "$DISK_A / $DISK_B still present 10 s after the LUNs were removed"
    sleep 0.1
done
rm -f /run/rig.env
t_end=$(cut -d' ' -f1 /proc/uptime)
echo "lio-teardown: done in $(awk -v a="$t_end" -v b="$t_start" 'BEGIN { printf "%.1f", a - b }') s"
