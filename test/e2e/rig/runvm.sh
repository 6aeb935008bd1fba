#!/bin/sh
# runvm.sh JOB [extra qemu args...]
#
# Boot the Debian kernel under QEMU/TCG with the host root as the VM's root (9p,
# read-only, tmpfs overlay), run JOB inside it and exit with JOB's exit status.
# Exit 125 = rig failure (boot failure, hard timeout, no status written back).
#
# Environment:
#   RIG_OUT       output dir (default test/e2e/.cache/runs/<job>-<stamp>); the VM sees it
#                 read-write as /run/rig/out (the job gets it as $RIG_OUT)
#   RIG_TIMEOUT   hard wall-clock limit for the whole VM in seconds (default 240)
#   SMP, MEM      guest CPUs (default 1) and memory (default 2G)
#   HELPER_CMD    helper daemon under test (default /usr/bin/qemu-pr-helper); the job
#                 runs it as "$HELPER_CMD -k <socket>"
#   RIG_PASS_ENV  names of further variables to pass into the job
#   RIG_CONSOLE=1 stream the serial console while the VM runs
#   RIG_STAGE2    the new root's first program (default vm-stage2.sh; vm-stage2-systemd.sh
#                 makes systemd PID 1, which then runs vm-stage2.sh as a service)
# Writes console.log, job.log, timings.json in the output dir.
set -eu
RIG_DIR=$(cd "$(dirname "$0")" && pwd)
. "$RIG_DIR/lib.sh"

[ $# -ge 1 ] || { echo "usage: $0 JOB [qemu args...]" >&2; exit 125; }
JOB=$(realpath "$1") || rig_die "job $1 not found"
shift
[ -f "$JOB" ] || rig_die "job $JOB not found"
[ "$(id -u)" = 0 ] || rig_die "must run as root (9p security_model=passthrough)"
command -v qemu-system-x86_64 >/dev/null || rig_die "qemu-system-x86_64 missing (apt-get install qemu-system-x86)"

artefacts=$("$RIG_DIR/build-cache.sh") || rig_die "cache build failed"
VMLINUX=${artefacts% *} INITRD=${artefacts#* }

name=$(basename "$JOB" .sh)
OUT=${RIG_OUT:-$RIG_CACHE/runs/$name-$(date +%Y%m%d-%H%M%S)-$$}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
rm -f "$OUT/.rc" "$OUT/.rc.tmp" "$OUT/.job-rc" "$OUT/.job-started" "$OUT/console.log" "$OUT/job.log"

TIMEOUT=${RIG_TIMEOUT:-240}
STAGE2=$(realpath "${RIG_STAGE2:-$RIG_DIR/vm-stage2.sh}") || rig_die "stage 2 ${RIG_STAGE2:-} not found"
HELPER_CMD=${HELPER_CMD:-/usr/bin/qemu-pr-helper}

# Environment for the job, as shell source: export NAME='value' (quotes escaped).
shq() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }
{
    echo "export RIG_JOB=$(shq "$JOB")"
    echo "export RIG_JOB_TIMEOUT=$((TIMEOUT > 40 ? TIMEOUT - 20 : TIMEOUT))"
    echo "export RIG_OUT=/run/rig/out"
    echo "export RIG_DIR=$(shq "$RIG_DIR") E2E_DIR=$(shq "$E2E_DIR") REPO_ROOT=$(shq "$REPO_ROOT")"
    echo "export HELPER_CMD=$(shq "$HELPER_CMD")"
    for v in ${RIG_PASS_ENV:-}; do
        eval "val=\${$v-}"
        echo "export $v=$(shq "$val")"
    done
} > "$OUT/job.env"

t0=$(date +%s.%N)
rig_log "booting VM for $name (timeout ${TIMEOUT}s, output $OUT)"
timeout -k 5 "$TIMEOUT" qemu-system-x86_64 \
    -accel tcg -cpu max -smp "${SMP:-1}" -m "${MEM:-2G}" \
    -nodefaults -no-user-config -display none -monitor none -no-reboot \
    -chardev "file,id=con,path=$OUT/console.log" -serial chardev:con \
    -kernel "$VMLINUX" -initrd "$INITRD" \
    -append "console=ttyS0 panic=-1 quiet mitigations=off rig.stage2=$STAGE2" \
    -fsdev local,id=hostroot,path=/,security_model=passthrough,readonly=on,multidevs=remap \
    -device virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot \
    -fsdev "local,id=out,path=$OUT,security_model=passthrough,multidevs=remap" \
    -device virtio-9p-pci,fsdev=out,mount_tag=out \
    "$@" &
qpid=$!
trap 'kill -TERM $qpid 2>/dev/null; wait $qpid 2>/dev/null; exit 125' INT TERM HUP
tpid=
if [ "${RIG_CONSOLE:-0}" = 1 ]; then
    tail -n +1 -F "$OUT/console.log" 2>/dev/null & tpid=$!
fi
qrc=0
wait $qpid || qrc=$?
trap - INT TERM HUP
[ -z "$tpid" ] || kill "$tpid" 2>/dev/null || true
t1=$(date +%s.%N)

mtime() { [ -e "$1" ] && stat -c %.3Y "$1" || echo ""; }
ts=$(mtime "$OUT/.job-started") te=$(mtime "$OUT/.rc")
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", a - b }'; }
boot=null job=null
[ -z "$ts" ] || boot=$(secs "$ts" "$t0")
[ -z "$ts" ] || [ -z "$te" ] || job=$(secs "$te" "$ts")
total=$(secs "$t1" "$t0")
printf '{"job":"%s","boot_to_job_s":%s,"job_s":%s,"vm_total_s":%s,"qemu_rc":%s}\n' \
    "$name" "$boot" "$job" "$total" "$qrc" > "$OUT/timings.json"

rc=125
if [ "$qrc" = 124 ] || [ "$qrc" = 137 ]; then
    rig_log "HARD TIMEOUT after ${TIMEOUT}s: VM killed"
elif [ -s "$OUT/.rc" ]; then
    rc=$(cat "$OUT/.rc")
else
    rig_log "VM exited (qemu rc $qrc) without writing a job status"
fi
rig_log "$name: exit $rc; boot-to-job ${boot} s, job ${job} s, VM total ${total} s"
if [ "$rc" != 0 ] && [ "${RIG_CONSOLE:-0}" != 1 ]; then
    rig_log "---- serial console ($OUT/console.log, last 200 lines) ----"
    tail -n 200 "$OUT/console.log" >&2 || true
    rig_log "---- end of console ----"
fi
exit "$rc"
