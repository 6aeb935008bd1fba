#!/bin/sh
# /init of the Tier 3 L2 guest (busybox sh, PID 1), booted by QEMU inside the rig VM.
# Its /dev/sda is a scsi-block disk on LIO nexus A whose PR commands QEMU hands to the
# helper under test. Runs sg_persist against it and prints one "L2R {json}" line per
# step on the console (the rig VM collects them), then powers off (l2.poll=: see below).
export PATH=/bin:/usr/bin
/bin/busybox mkdir -p /proc /sys /dev
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

# l2r STEP [key value]... — {"step":"STEP","key":value,...}; digits-only values are numbers.
l2r() {
    line="{\"step\":\"$1\""
    shift
    while [ $# -ge 2 ]; do
        case "$2" in
        ''|*[!0-9]*) line="$line,\"$1\":\"$(printf '%s' "$2" | tr -d '"\\\r\n')\"" ;;
        *) line="$line,\"$1\":$2" ;;
        esac
        shift 2
    done
    echo "L2R $line}"
}
finish() { echo "L2: done, uptime $(cut -d' ' -f1 /proc/uptime) s"; sync; reboot -f; }

l2r l2-init uptime "$(cut -d' ' -f1 /proc/uptime)"
failed=
for m in $(cat /modules/order); do insmod "/modules/$m" 2>/dev/null || failed="$failed $m"; done
l2r l2-modules failed "$failed"

i=0
until [ -b /dev/sda ]; do
    i=$((i + 1))
    [ "$i" -le 300 ] || { l2r l2-disk ok 0; finish; }
    sleep 0.2
done
l2r l2-disk ok 1 uptime "$(cut -d' ' -f1 /proc/uptime)"

# sg_persist, retried once on UNIT ATTENTION (exit 6); output echoed as "L2: ..." lines.
sgp() {
    SGP_RC=0
    SGP_OUT=$(sg_persist "$@" 2>&1) || SGP_RC=$?
    if [ "$SGP_RC" = 6 ]; then
        SGP_RC=0
        SGP_OUT=$(sg_persist "$@" 2>&1) || SGP_RC=$?
    fi
    echo "L2: \$ sg_persist $* -> $SGP_RC"
    printf '%s\n' "$SGP_OUT" | sed 's/^/L2:     /'
}
keys() { printf '%s\n' "$SGP_OUT" | sed -n 's/^ *\(0x[0-9a-f]*\)$/\1/p' | tr '\n' ' ' | sed 's/ $//'; }
vendor() { printf '%s\n' "$SGP_OUT" | head -n 1 | sed 's/^ *//; s/  */ /g'; }

sgp --in --read-keys /dev/sda
l2r l2-read-keys rc "$SGP_RC" keys "$(keys)" inquiry "$(vendor)"
sgp --out --register --param-sark=0xc0ffee /dev/sda
l2r l2-register rc "$SGP_RC"
sgp --in --read-keys /dev/sda
l2r l2-read-keys-after-register rc "$SGP_RC" keys "$(keys)"
sgp --out --reserve --param-rk=0xc0ffee --prout-type=3 /dev/sda
l2r l2-reserve-ea rc "$SGP_RC"
sgp --in --read-reservation /dev/sda
l2r l2-read-reservation rc "$SGP_RC" \
    key "$(printf '%s\n' "$SGP_OUT" | sed -n 's/^ *Key=\(0x[0-9a-f]*\).*/\1/p')" \
    type "$(printf '%s\n' "$SGP_OUT" | sed -n 's/.*scope:.*type: *\(.*\)$/\1/p' | sed 's/ *$//')"

# l2.poll=KEY (the libvirt tier): keep reading the keys, at most 30 times, until KEY is
# among them. The rig VM registers KEY from the other nexus after it killed the helper, so
# a READ KEYS that sees it went through a helper started after the kill.
poll=
for arg in $(cat /proc/cmdline); do
    case "$arg" in l2.poll=*) poll=${arg#l2.poll=} ;; esac
done
i=0
while [ -n "$poll" ] && [ "$i" -lt 30 ]; do
    i=$((i + 1))
    sgp --in --read-keys /dev/sda
    l2r l2-poll n "$i" rc "$SGP_RC" keys "$(keys)" uptime "$(cut -d' ' -f1 /proc/uptime)"
    case "$SGP_RC $(keys) " in "0 "*" $poll "*) break ;; esac
    sleep 1
done
finish
