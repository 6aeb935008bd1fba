#!/bin/sh
# validate-lio.sh — VM job (run-validate-lio.sh; checked on the host by
# tools/check-validate-lio.ts).
#
# On real LIO, one LUN behind three tcm_loop nexuses (A and B for the two nodes, C a
# watcher whose READ KEYS cannot eat the UNIT ATTENTIONs meant for A and B), with the
# helper under test ($HELPER_CMD) on $PRH_SOCK:
#   1. `pr-helper validate`: wsfc with A and B; fence_scsi and all with A only, as with
#      two nexuses they fence with PREEMPT AND ABORT, which wedges LIO's tcm_loop on this
#      kernel (test-rigs pitfall: the command never returns, later ones hang too);
#   2. the same with LIO's <db_root>/pr removed (state-changing PR OUT: NOT READY);
#   3. a validate run SIGKILLed as soon as its first key is on the LUN: what is left,
#      the next run's refusal, and a --force run that removes it;
#   4. `pr-helper sg_persist` and Debian's sg_persist, the same commands in both
#      spellings, each run on a fresh LUN so that PR generations match; then bad input.
# Outputs go to $RIG_OUT (validate-*.json, sgp/<run>/<n>.{out,err}); the job only fails
# when the rig breaks.
set -eu
. "$RIG_DIR/vm-lib.sh"
export PRH_SOCK=/run/prh.sock
export PR_HELPER_SOCKET=$PRH_SOCK
export NEXUSES=3
PRH=$HELPER_CMD
: > "$RESULTS"

jline versions kernel "$(uname -r)" sg_persist "$(sg_persist -V 2>&1 | head -n 1)"

fresh_lun() {
    [ ! -f /run/rig.env ] || "$RIG_DIR/lio-teardown.sh"
    "$RIG_DIR/lio-setup.sh"
    . /run/rig.env
    for d in "$DISK_A" "$DISK_B" "$DISK_C"; do drain_ua "$d" || exit 125; done
}

# watch_keys: READ KEYS through the watcher nexus; sets KEYS and RES_KEY.
watch_keys() {
    sgp -n --in --read-keys "$DISK_C"
    KEYS=$(sgp_keys)
    sgp -n --in --read-reservation "$DISK_C"
    RES_KEY=$(sgp_res_key)
}

# validate NAME ARGS...: one validate run with --json; rc and what is left after it.
# Both nexuses unless ARGS name the devices.
validate() {
    name=$1
    shift
    case " $* " in
    *" -d "*) ;;
    *) set -- -d "$DISK_A" -d "$DISK_B" "$@" ;;
    esac
    rc=0
    timeout -k 5 240 $PRH validate -k "$PRH_SOCK" --json "$@" \
        > "$RIG_OUT/validate-$name.json" 2> "$RIG_OUT/validate-$name.err" || rc=$?
    watch_keys
    jline "validate-$name" rc "$rc" keys_after "$KEYS" reservation_after "$RES_KEY"
}

fresh_lun
jline lio-setup disk_a "$DISK_A" disk_b "$DISK_B" disk_c "$DISK_C" init_a "$INIT_A" init_b "$INIT_B" init_c "$INIT_C"
"$RIG_DIR/helper-ctl.sh" start
jline helper-start ok 1 cmd "$HELPER_CMD"

# 1. The three profiles.
validate wsfc --profile wsfc
validate fence_scsi-one --profile fence_scsi -d "$DISK_A"
validate all-one --profile all -d "$DISK_A"

# 2. LIO without its pr/ directory (db_root is fixed when target_core_mod loads).
DBROOT=$(cat /sys/kernel/config/target/dbroot)
rm -rf "$DBROOT/pr"
validate no-pr-dir --profile wsfc
mkdir -p "$DBROOT/pr"
jline dbroot path "$DBROOT"

# 3. SIGKILL in the middle: no chance to clean up.
$PRH validate -k "$PRH_SOCK" -d "$DISK_A" -d "$DISK_B" --profile wsfc > "$RIG_OUT/validate-killed.txt" 2>&1 &
vpid=$!
keys_on_c() { sg_persist -n --in --read-keys "$DISK_C" 2>/dev/null | sed -n 's/^ *\(0x[0-9a-f]*\)$/\1/p' | tr '\n' ' '; }
polls=0
KEYS=
# A key seen by one READ KEYS may be gone by the kill: the run unregisters within
# milliseconds. Stopped (SIGSTOP) it cannot; a key still listed then is one the kill
# leaves. Otherwise it goes on to its next registration.
while kill -0 "$vpid" 2>/dev/null && [ "$polls" -lt 3000 ]; do
    KEYS=$(keys_on_c)
    polls=$((polls + 1))
    [ -n "$KEYS" ] || continue
    kill -STOP "$vpid" 2>/dev/null || break
    KEYS=$(keys_on_c)
    [ -n "$KEYS" ] && break
    kill -CONT "$vpid" 2>/dev/null || true
done
alive=0
kill -0 "$vpid" 2>/dev/null && alive=1
kill -KILL "$vpid" 2>/dev/null || true
krc=0
wait "$vpid" || krc=$?
seen=$KEYS
watch_keys
jline validate-killed alive_at_kill "$alive" rc "$krc" polls "$polls" keys_seen "$seen" \
    keys_after "$KEYS" reservation_after "$RES_KEY"
validate after-kill --profile wsfc
validate after-kill-force --profile wsfc --force

# 4. pr-helper sg_persist and Debian's sg_persist on the same LUN.
# sgp_case RUN N TOOL ARGS...: TOOL is "debian" or "ours"; DEVICE names are A, B or a path.
sgp_case() {
    run=$1 n=$2 tool=$3
    shift 3
    args=
    for a in "$@"; do
        case $a in
        A) a=$DISK_A ;;
        B) a=$DISK_B ;;
        esac
        args="$args $a"
    done
    mkdir -p "$RIG_OUT/sgp/$run"
    rc=0
    if [ "$tool" = debian ]; then
        /usr/bin/sg_persist $args > "$RIG_OUT/sgp/$run/$n.out" 2> "$RIG_OUT/sgp/$run/$n.err" || rc=$?
    else
        $PRH sg_persist $args > "$RIG_OUT/sgp/$run/$n.out" 2> "$RIG_OUT/sgp/$run/$n.err" || rc=$?
    fi
    jline sgp-case run "$run" n "$n" tool "$tool" args "$*" rc "$rc"
}

# The sequence, one line a step: short spelling | long spelling. Keys aa (A) and bb (B).
SEQUENCE='-n -k A|--no-inquiry --read-keys A
-n -o -G -S aa A|--no-inquiry --out --register --param-sark=aa A
-n -o -I -S bb B|--no-inquiry --out --register-ignore --param-sark=bb B
-n -k B|--no-inquiry --read-keys B
-n -o -R -K aa -T 5 A|--no-inquiry --out --reserve --param-rk=aa --prout-type=5 A
-n -r B|--no-inquiry --read-reservation B
-n -s A|--no-inquiry --read-full-status A
-n -c A|--no-inquiry --report-capabilities A
-n -o -R -K bb -T 5 B|--no-inquiry --out --reserve --param-rk=bb --prout-type=5 B
-n -o -P -K bb -S aa -T 5 B|--no-inquiry --out --preempt --param-rk=bb --param-sark=aa --prout-type=5 B
-n -k A|--no-inquiry --read-keys A
-n -o -A -K aa -S bb -T 5 A|--no-inquiry --out --preempt-abort --param-rk=aa --param-sark=bb --prout-type=5 A
-n -H -k B|--no-inquiry --hex --read-keys B
-n -HH -r B|--no-inquiry --hex --hex --read-reservation B
-n -HHH -s B|--no-inquiry --hex --hex --hex --read-full-status B
-n -H -c B|--no-inquiry --hex --report-capabilities B
-n -o -G -S cc A|--no-inquiry --out --register --param-sark=cc A
-n -o -L -K bb -T 5 B|--no-inquiry --out --release --param-rk=bb --prout-type=5 B
-n -o -C -K bb B|--no-inquiry --out --clear --param-rk=bb B
-n -k A|--no-inquiry --read-keys A
-n -k A|--no-inquiry --read-keys A
-n -v -k B|--no-inquiry --verbose --read-keys B
-k B|--read-keys B
-n -k /dev/nonexistent|--no-inquiry --read-keys /dev/nonexistent
-n -k /dev/null|--no-inquiry --read-keys /dev/null
-n -o -G -S zz A|--no-inquiry --out --register --param-sark=zz A
-n -o -R -K aa -T x A|--no-inquiry --out --reserve --param-rk=aa --prout-type=x A
-n|--no-inquiry'

"$RIG_DIR/helper-ctl.sh" stop || true
for spelling in short long; do
    for tool in debian ours; do
        fresh_lun
        "$RIG_DIR/helper-ctl.sh" start
        n=0
        printf '%s\n' "$SEQUENCE" | while IFS='|' read -r short long; do
            n=$((n + 1))
            if [ "$spelling" = short ]; then set -- $short; else set -- $long; fi
            sgp_case "$spelling-$tool" "$n" "$tool" "$@"
        done
        "$RIG_DIR/helper-ctl.sh" stop || true
    done
done

# The helper's own failure, which Debian's sg_persist cannot have: no socket.
sgp_case socket 1 ours -n -k --socket=/run/absent.sock A
echo "validate-lio job done: $(wc -l < "$RESULTS") result lines"
