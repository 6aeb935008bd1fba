# Helpers for jobs running INSIDE the rig VM. Sourced: . "$RIG_DIR/vm-lib.sh"
# Results go to $RIG_OUT/results.jsonl, one JSON object per line, checked on the host.

RESULTS=${RIG_OUT:-/run}/results.jsonl

# jline step NAME [key value]... — append {"step":"NAME","key":value,...}.
# Values made only of digits are numbers; anything else becomes a string (quotes and
# backslashes removed: these are short tokens, not arbitrary text).
jline() {
    line="{\"step\":\"$1\""
    shift
    while [ $# -ge 2 ]; do
        case "$2" in
        ''|*[!0-9]*) line="$line,\"$1\":\"$(printf '%s' "$2" | tr -d '"\\\n')\"" ;;
        *) line="$line,\"$1\":$2" ;;
        esac
        shift 2
    done
    echo "$line}" >> "$RESULTS"
}

# jraw LINE — append a line that already is JSON (e.g. prh-probe.py output).
jraw() { echo "$1" >> "$RESULTS"; echo "  $1"; }

# sgp ARGS... — sg_persist, retried once when the device reports UNIT ATTENTION
# (sg3_utils exit status 6), e.g. the power-on/reset condition of a fresh LUN.
# Sets SGP_RC, SGP_UA (1 if retried) and SGP_OUT (stdout+stderr); never fails.
sgp() {
    SGP_UA=0
    SGP_RC=0
    SGP_OUT=$(sg_persist "$@" 2>&1) || SGP_RC=$?
    if [ "$SGP_RC" = 6 ]; then
        SGP_UA=1
        SGP_RC=0
        SGP_OUT=$(sg_persist "$@" 2>&1) || SGP_RC=$?
    fi
    echo "\$ sg_persist $* -> $SGP_RC"
    printf '%s\n' "$SGP_OUT" | sed 's/^/    /'
}

# Parsers for sg_persist output (in $SGP_OUT).
sgp_generation() { printf '%s\n' "$SGP_OUT" | sed -n 's/.*PR generation=\(0x[0-9a-f]*\).*/\1/p'; }
sgp_keys() { printf '%s\n' "$SGP_OUT" | sed -n 's/^ *\(0x[0-9a-f]*\)$/\1/p' | tr '\n' ' ' | sed 's/ $//'; }
sgp_res_key() { printf '%s\n' "$SGP_OUT" | sed -n 's/^ *Key=\(0x[0-9a-f]*\).*/\1/p'; }
sgp_res_type() { printf '%s\n' "$SGP_OUT" | sed -n 's/.*scope:.*type: *\(.*\)$/\1/p' | sed 's/ *$//'; }

# drain_ua DEV — TEST UNIT READY straight to the device until it answers GOOD (at most 5
# tries), consuming the UNIT ATTENTIONs a freshly created LUN holds for each nexus, so a
# scripted PR sequence starts from the same point every time. Sets DRAIN_TRIES.
drain_ua() {
    DRAIN_TRIES=0
    while [ "$DRAIN_TRIES" -lt 5 ]; do
        DRAIN_TRIES=$((DRAIN_TRIES + 1))
        sg_turs "$1" >/dev/null 2>&1 && return 0
    done
    echo "drain_ua: $1 not ready after 5 TEST UNIT READY" >&2
    return 1
}

# install_deb DEB — dpkg -i DEB (output in $RIG_OUT/dpkg.log and on stdout). dpkg reads every
# installed package's file list first: 125k paths through 9p under TCG, half a minute. Its
# database here holds only this machine's entries of what our package depends on (nodejs,
# libc6), so the install costs what the package itself costs. Sets DPKG_RC, DPKG_SECONDS.
install_deb() {
    admin=/run/dpkg-admin
    mkdir -p "$admin/info" "$admin/updates" "$admin/triggers"
    dpkg-query -s nodejs libc6 > "$admin/status"
    : > "$admin/available"
    DPKG_RC=0
    t0=$(cut -d' ' -f1 /proc/uptime)
    dpkg --admindir="$admin" -i "$1" > "$RIG_OUT/dpkg.log" 2>&1 || DPKG_RC=$?
    DPKG_SECONDS=$(awk -v a="$(cut -d' ' -f1 /proc/uptime)" -v b="$t0" 'BEGIN { printf "%.1f", a - b }')
    cat "$RIG_OUT/dpkg.log"
}

# qemu_paused_on_helper SOCK DISK — a QEMU in the background (QEMU_PID), paused and
# played over qtest ($QTEST_SOCK) and QMP ($QMP_SOCK), whose scsi-block disk on DISK
# reaches the PR helper at SOCK; its output goes to $RIG_OUT/qemu.log.
qemu_paused_on_helper() {
    qemu-system-x86_64 -machine pc -nodefaults -m 128M -accel tcg -S -display none \
        -qtest "unix:$QTEST_SOCK,server=on,wait=off" -qtest-log /dev/null \
        -qmp "unix:$QMP_SOCK,server=on,wait=off" \
        -object pr-manager-helper,id=helper0,path="$1" \
        -blockdev driver=host_device,filename="$2",pr-manager=helper0,node-name=f0,cache.direct=on \
        -blockdev driver=raw,file=f0,node-name=d0 \
        -device virtio-scsi-pci,id=scsi0,disable-modern=on \
        -device scsi-block,drive=d0,bus=scsi0.0,scsi-id=0,lun=0 \
        > "$RIG_OUT/qemu.log" 2>&1 &
    QEMU_PID=$!
}
