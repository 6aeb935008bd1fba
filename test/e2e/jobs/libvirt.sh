#!/bin/sh
# libvirt.sh — VM job of the real-libvirt tier (run-libvirt.sh; checked on the host by
# tools/check-libvirt.ts). Debian's libvirtd, run by hand (no systemd here), with
# qemu.conf pr_helper = the launcher of the installed Debian package. Domain "l2a": the L2
# kernel and initramfs of tier 3 on a <disk type='block' device='lun'> on LIO nexus A with
# <reservations managed='yes'/>, so its sg_persist goes through QEMU and the helper libvirt
# starts. Domain "idle" (paused, nexus B's disk) is there to be hot-unplugged. Then the
# helper of l2a is killed while the guest keeps sending PR commands, and l2a is destroyed.
# Needs L2_KERNEL, L2_INITRD, PR_HELPER_DEB. Results: $RIG_OUT/results.jsonl.
set -eu
. "$RIG_DIR/vm-lib.sh"
L2_TIMEOUT=${L2_TIMEOUT:-600}
MARKER=0x5eed
CON="$RIG_OUT/l2-console.log"
: > "$RESULTS"
[ -f "$L2_KERNEL" ] && [ -f "$L2_INITRD" ] || { echo "missing L2 kernel/initramfs" >&2; exit 125; }
[ -f "${PR_HELPER_DEB:-}" ] || { echo "missing PR_HELPER_DEB=${PR_HELPER_DEB:-}" >&2; exit 125; }
up() { cut -d' ' -f1 /proc/uptime; }
alive() { [ -n "$1" ] && [ "$1" != 0 ] && kill -0 "$1" 2>/dev/null; }
gone() { ! alive "$1"; }
virsh() { command virsh -c qemu:///system "$@"; }
# listen_path PID — the path of the Unix socket PID listens on (/proc/net/unix: flags
# 00010000 = accepting). The daemon's process title hides its argv, so this is how the
# -k path libvirt passed shows.
listen_path() {
    for i in $(ls -l /proc/"$1"/fd 2>/dev/null | sed -n 's/.*socket:\[\([0-9]*\)\].*/\1/p'); do
        awk -v i="$i" '$7 == i && $4 == "00010000" && $8 != "" { print $8 }' /proc/net/unix
    done | head -n 1
}
# helpers — "PID:listening socket" of every running pr-helper, space separated.
helpers() {
    for p in $(pgrep -x pr-helper || true); do printf '%s:%s ' "$p" "$(listen_path "$p")"; done
}
# helper_of DOMAIN — the pid of the helper listening in DOMAIN's state directory, if any.
helper_of() {
    for p in $(pgrep -x pr-helper || true); do
        case "$(listen_path "$p")" in *"-$1/pr-helper0.sock") echo "$p"; return 0 ;; esac
    done
    return 0
}
# wait_for WHAT SECONDS COMMAND... — polls COMMAND every 0.5 s; sets WAITED (seconds).
wait_for() {
    what=$1 limit=$2
    shift 2
    t0=$(up)
    until "$@"; do
        WAITED=$(awk -v a="$(up)" -v b="$t0" 'BEGIN { printf "%.1f", a - b }')
        awk -v w="$WAITED" -v l="$limit" 'BEGIN { exit !(w > l) }' && { echo "timed out waiting for $what"; return 1; }
        sleep 0.5
    done
    WAITED=$(awk -v a="$(up)" -v b="$t0" 'BEGIN { printf "%.1f", a - b }')
}

"$RIG_DIR/lio-setup.sh"
. /run/rig.env
jline lio-setup disk_a "$DISK_A" disk_b "$DISK_B" init_a "$INIT_A" init_b "$INIT_B"
sgp --out --register --param-sark=0xbbbb "$DISK_B"
jline sgp-register-b rc "$SGP_RC"

install_deb "$PR_HELPER_DEB"
jline dpkg-install rc "$DPKG_RC" seconds "$DPKG_SECONDS"

# qemu.conf: our helper; QEMU as root without a security driver or private /dev (this
# kernel has no AppArmor/SELinux, and the LIO disks need no relabelling); the serial
# console written by QEMU itself, so no virtlogd is needed.
cat >> /etc/libvirt/qemu.conf <<CONF
pr_helper = "/usr/bin/pr-helper"
user = "root"
group = "root"
security_driver = "none"
namespaces = [ ]
stdio_handler = "file"
CONF
t0=$(up)
libvirtd -d -p /run/libvirtd.pid > "$RIG_OUT/libvirtd.log" 2>&1
rc=0
wait_for "libvirtd" 120 sh -c 'virsh -c qemu:///system version > /dev/null 2>&1' || rc=1
jline libvirtd-up rc "$rc" seconds "$WAITED" version "$(virsh version 2>/dev/null | sed -n 's/.*libvirt \([0-9.]*\)$/\1/p' | head -n 1)"

# domain NAME DISK PAUSED(1/0) — a domain XML on stdout.
domain() {
    cat <<XML
<domain type='qemu'>
  <name>$1</name>
  <memory unit='MiB'>512</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>$L2_KERNEL</kernel>
    <initrd>$L2_INITRD</initrd>
    <cmdline>console=ttyS0 panic=-1 quiet mitigations=off l2.poll=$MARKER</cmdline>
  </os>
  <cpu mode='maximum' migratable='off'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <controller type='usb' model='none'/>
    <controller type='scsi' index='0' model='virtio-scsi'/>
    $(disk "$2")
    <serial type='file'><source path='$RIG_OUT/console-$1.log'/></serial>
    <memballoon model='none'/>
  </devices>
</domain>
XML
}
disk() {
    cat <<XML
<disk type='block' device='lun'>
      <driver name='qemu' type='raw' cache='none'/>
      <source dev='$1'><reservations managed='yes'/></source>
      <target dev='sda' bus='scsi'/>
      <address type='drive' controller='0' bus='0' target='0' unit='0'/>
    </disk>
XML
}

domain l2a "$DISK_A" > /run/l2a.xml
domain idle "$DISK_B" > /run/idle.xml
disk "$DISK_B" > /run/idle-disk.xml

rc=0
virsh create /run/l2a.xml > "$RIG_OUT/virsh-create-l2a.log" 2>&1 || rc=$?
t_l2a=$(up)
cat "$RIG_OUT/virsh-create-l2a.log"
A=$(helper_of l2a)
jline l2a-started rc "$rc" helper_pid "${A:-0}" helpers "$(helpers)" socket "$(listen_path "${A:-0}")" \
    pidfiles "$(ls /run/libvirt/qemu/*pr-helper* /var/lib/libvirt/qemu/domain-*/*pr-helper* 2>/dev/null | tr '\n' ' ')" \
    pr_managers "$(virsh qemu-monitor-command l2a '{"execute":"query-pr-managers"}' 2>&1 | tr -d ' ')"
if [ -n "$A" ]; then
    awk -f "$RIG_DIR/thread-creds.awk" /proc/"$A"/task/*/status 2>/dev/null | sed 's/"step":"thread"/"step":"thread","of":"l2a"/' >> "$RESULTS" || true
fi
jline fd-of-l2a-helper fds "$(ls -l /proc/"${A:-0}"/fd 2>/dev/null | awk 'NR > 1 { printf "%s->%s ", $9, $11 }')"

# The second domain, paused: QEMU connects to its own helper at start; no guest runs.
rc=0
virsh create --paused /run/idle.xml > "$RIG_OUT/virsh-create-idle.log" 2>&1 || rc=$?
cat "$RIG_OUT/virsh-create-idle.log"
I=$(helper_of idle)
jline idle-started rc "$rc" helper_pid "${I:-0}" helpers "$(helpers)"
rc=0
virsh detach-device idle /run/idle-disk.xml --live > "$RIG_OUT/virsh-detach.log" 2>&1 || rc=$?
cat "$RIG_OUT/virsh-detach.log"
grc=0
[ -n "$I" ] && wait_for "the idle domain's helper to exit" 20 gone "$I" || grc=1
jline idle-detached rc "$rc" helper_gone "$([ "$grc" = 0 ] && echo 1 || echo 0)" seconds "$WAITED" \
    l2a_helper_alive "$(alive "$A" && echo 1 || echo 0)" helpers "$(helpers)" \
    disks "$(virsh domblklist idle 2>/dev/null | awk 'NR > 2 && NF { printf "%s ", $1 }')"
virsh destroy idle > /dev/null 2>&1 || true

# The guest's PR sequence, then its poll loop.
seen() { grep -q "$1" "$RIG_OUT/console-l2a.log" 2>/dev/null; }
rc=0
wait_for "the L2 guest's PR sequence" "$L2_TIMEOUT" seen '"step":"l2-read-reservation"' || rc=1
jline l2-sequence-done rc "$rc" seconds_since_start "$(awk -v a="$(up)" -v b="$t_l2a" 'BEGIN { printf "%d", a - b }')"

# Kill the helper while the guest runs, as a crash would; watch what libvirt does.
[ -z "$A" ] || kill -KILL "$A"
t_kill=$(up)
# B is registered (0xbbbb): it changes its key to the marker.
sgp --out --register --param-rk=0xbbbb --param-sark="$MARKER" "$DISK_B"
jline killed pid "${A:-0}" marker_rc "$SGP_RC"
rc=0
wait_for "the guest to see $MARKER or give up" 300 sh -c "grep -q '\"step\":\"l2-poll\".*\"rc\":0.*$MARKER' '$RIG_OUT/console-l2a.log' || ! virsh domstate l2a 2>/dev/null | grep -q running" || rc=1
A2=$(helper_of l2a)
jline after-kill rc "$rc" seconds "$(awk -v a="$(up)" -v b="$t_kill" 'BEGIN { printf "%.1f", a - b }')" \
    new_helper_pid "${A2:-0}" helpers "$(helpers)" domstate "$(virsh domstate l2a 2>&1 | head -n 1)"

rc=0
virsh destroy l2a > "$RIG_OUT/virsh-destroy.log" 2>&1 || rc=$?
cat "$RIG_OUT/virsh-destroy.log"
none() { [ -z "$(pgrep -x pr-helper)" ]; }
grc=0
wait_for "no pr-helper left" 20 none || grc=1
jline destroyed rc "$rc" no_helper "$([ "$grc" = 0 ] && echo 1 || echo 0)" helpers "$(helpers)" \
    pidfiles "$(ls /run/libvirt/qemu/*pr-helper* /var/lib/libvirt/qemu/domain-*/*pr-helper* 2>/dev/null | tr '\n' ' ')"

# The guest's own results, as it printed them on its console.
tr -d '\r' < "$RIG_OUT/console-l2a.log" | sed -n 's/^L2R //p' >> "$RESULTS"
tr -d '\r' < "$RIG_OUT/console-l2a.log" | grep '^L2' || true
sgp --in --read-full-status "$DISK_B"
jline sgp-read-full-status-b rc "$SGP_RC" text "$(printf '%s\n' "$SGP_OUT" | tr '\n' '|' | sed 's/  */ /g')"
grep -h "pr-helper\|pr_helper\|PR" /var/log/libvirt/qemu/*.log 2>/dev/null | tail -n 40 || true
kill "$(cat /run/libvirtd.pid)" 2>/dev/null || true
echo "libvirt job done: $(wc -l < "$RESULTS") result lines"
