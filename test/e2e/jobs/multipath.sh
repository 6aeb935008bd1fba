#!/bin/sh
# multipath.sh — VM job for the dm-multipath tier (run-multipath.sh; checked on the host
# by tools/multipath-check.ts).
#
# One LIO LUN exported through THREE tcm_loop I_T nexuses: two of them (initiators
# …a1 and …a2) are the paths of node A's dm-multipath map "mpatha" (a plain dmsetup
# multipath table with a "mpath-" uuid, as multipath-tools would create it), the
# third (…b1) is node B's own disk, the second cluster node. The helper under test
# ($HELPER_CMD) serves both nodes; tools/multipath-scenario.js drives them, injects
# path failures (SCSI device offline, tcm_loop transport offline) and writes
# $RIG_OUT/results.jsonl.
set -eu
. "$RIG_DIR/vm-lib.sh"
export PRH_SOCK=/run/prh.sock
SCENARIO="$REPO_ROOT/dist/test/e2e/tools/multipath-scenario.js"
CFG=/sys/kernel/config
SERIAL=prhelpermpath001
: > "$RESULTS"
[ -f "$SCENARIO" ] || { echo "missing $SCENARIO: run npx tsc -p test/e2e/tsconfig.json" >&2; exit 125; }
command -v dmsetup >/dev/null || { echo "dmsetup missing (apt-get install dmsetup)" >&2; exit 125; }
die() { echo "multipath job: $*" >&2; exit 125; }

jline versions kernel "$(uname -r)" dmsetup "$(dmsetup --version 2>&1 | head -n 1)" helper "$HELPER_CMD"

# ---- LIO: one rd_mcp LUN, three tcm_loop nexuses (pitfalls: test-rigs.md 4.4) ----
t0=$(cut -d' ' -f1 /proc/uptime)
mkdir -p /etc/target/pr
for m in configfs sd_mod sg target_core_mod tcm_loop dm_mod dm_multipath dm_round_robin; do
    modprobe "$m" || die "modprobe $m failed"
done
grep -qs " $CFG configfs" /proc/mounts || mount -t configfs configfs "$CFG"
BS="$CFG/target/core/rd_mcp_0/disk0"
mkdir -p "$BS"
echo rd_pages=16384 > "$BS/control"
echo "$SERIAL" > "$BS/wwn/vpd_unit_serial"
echo 1 > "$BS/enable"
tport() { case "$1" in a1) echo f1 ;; a2) echo f2 ;; b1) echo f3 ;; esac; }
for n in a1 a2 b1; do
    T="$CFG/target/loopback/naa.50014050000000$(tport "$n")/tpgt_1"
    mkdir -p "$T"
    echo "naa.50014050000000$n" > "$T/nexus"   # the nexus before the LUN
    mkdir -p "$T/lun/lun_0"
    ln -s "$BS" "$T/lun/lun_0/disk0"
done
for n in a1 a2 b1; do
    T="$CFG/target/loopback/naa.50014050000000$(tport "$n")/tpgt_1"
    addr=$(cat "$T/address")
    sdev="/sys/bus/scsi/devices/$addr:0"
    tries=0 blk=
    while :; do
        if [ -d "$sdev/block" ]; then
            for d in "$sdev"/block/*; do [ -e "$d" ] && blk=$(basename "$d"); done
        fi
        [ -n "$blk" ] && [ -b "/dev/$blk" ] && break
        tries=$((tries + 1))
        [ "$tries" -le 150 ] || die "nexus $n ($addr): no disk after 30 s"
        sleep 0.2
    done
    eval "DISK_$n=$blk TPG_$n=$T"
done
# Power-on UNIT ATTENTIONs of the new LUN, consumed on every nexus.
for d in "$DISK_a1" "$DISK_a2" "$DISK_b1"; do drain_ua "/dev/$d" || die "/dev/$d not ready"; done

# ---- node A's map: round-robin over the a1 and a2 paths ----
SECTORS=$(cat "/sys/block/$DISK_a1/size")
dmsetup create mpatha --uuid mpath-36001405prhelpermpath001 \
    --table "0 $SECTORS multipath 0 0 1 1 round-robin 0 2 1 /dev/$DISK_a1 1 /dev/$DISK_a2 1" \
    || die "dmsetup create failed"
dmsetup mknodes mpatha   # no udev in the rig: create /dev/mapper/mpatha ourselves
DEVNO=$(dmsetup info -c --noheadings -o major,minor --separator : mpatha | tr -d ' ')
DM=$(basename "$(readlink -f "/sys/dev/block/$DEVNO")")
t1=$(cut -d' ' -f1 /proc/uptime)
jline setup map /dev/mapper/mpatha dm "$DM" devno "$DEVNO" uuid "$(cat "/sys/block/$DM/dm/uuid")" \
    slaves "$(ls "/sys/block/$DM/slaves" | tr '\n' ' ' | sed 's/ $//')" \
    path_a1 "$DISK_a1" path_a2 "$DISK_a2" disk_b "$DISK_b1" \
    table "$(dmsetup table mpatha)" setup_s "$(awk -v a="$t1" -v b="$t0" 'BEGIN { printf "%.1f", a - b }')"
echo "multipath job: map mpatha ($DM) over $DISK_a1 + $DISK_a2; node B on $DISK_b1"

"$RIG_DIR/helper-ctl.sh" start
jline helper-start ok 1
rc=0
timeout -k 5 150 node "$SCENARIO" --socket "$PRH_SOCK" --map /dev/mapper/mpatha \
    --path "$DISK_a1=naa.50014050000000a1=$TPG_a1" --path "$DISK_a2=naa.50014050000000a2=$TPG_a2" \
    --node-b "/dev/$DISK_b1" --init-b naa.50014050000000b1 --out "$RESULTS" || rc=$?
jline scenario rc "$rc"
alive=0
"$RIG_DIR/helper-ctl.sh" status && alive=1
jline helper-alive-after-scenario ok "$alive"
"$RIG_DIR/helper-ctl.sh" stop || true

# A daemon that dropped to a user who may not open the path nodes (-u nobody): the
# map's commands must fail cleanly (CHECK CONDITION), with a log line saying why.
UNPRIV_LOG=$RIG_OUT/helper-unprivileged.log
RIG_OUT=/run HELPER_CMD="$HELPER_CMD -u nobody" PRH_SOCK=/run/prh-nobody.sock PRH_PIDFILE=/run/prh-nobody.pid \
    "$RIG_DIR/helper-ctl.sh" start
rc=0
timeout -k 5 30 node "$SCENARIO" --unprivileged-probe --socket /run/prh-nobody.sock --map /dev/mapper/mpatha \
    --out "$RESULTS" || rc=$?
hint=0
grep -q 'run it as root without -u' /run/helper.log && hint=1
alive=0
PRH_PIDFILE=/run/prh-nobody.pid "$RIG_DIR/helper-ctl.sh" status && alive=1
jline unprivileged-probe rc "$rc" log_hint "$hint" alive "$alive" uid "$(grep -o '"uid":[0-9]*' /run/helper.log | head -n 1)"
RIG_OUT=/run PRH_SOCK=/run/prh-nobody.sock PRH_PIDFILE=/run/prh-nobody.pid "$RIG_DIR/helper-ctl.sh" stop || true
cp /run/helper.log "$UNPRIV_LOG" 2>/dev/null || true

dmsetup status mpatha || true
dmsetup remove mpatha || true
echo "multipath job done: $(wc -l < "$RESULTS") result lines"
