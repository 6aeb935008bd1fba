#!/bin/sh
# smoke-real-helper.sh — VM job (run with rig/runvm.sh; checked by tools/check-smoke.ts).
#
# Proves real SG_IO through the helper under test ($HELPER_CMD, default the real
# /usr/bin/qemu-pr-helper) against LIO: two nexuses (A, B) on one LUN, keys
# registered with sg_persist from both, then PR IN / PR OUT through the helper socket
# with tools/prh-probe.py (fd passed with SCM_RIGHTS). Everything observed goes to
# $RIG_OUT/results.jsonl; the job itself only fails when the rig breaks.
set -eu
. "$RIG_DIR/vm-lib.sh"
PROBE="/usr/bin/python3 $E2E_DIR/tools/prh-probe.py"
export PRH_SOCK=/run/prh.sock
: > "$RESULTS"

"$RIG_DIR/lio-setup.sh"
. /run/rig.env
jline lio-setup disk_a "$DISK_A" disk_b "$DISK_B" init_a "$INIT_A" init_b "$INIT_B"

# Keys from both initiators, straight to the device.
sgp --out --register --param-sark=0xaaaa "$DISK_A"
jline sgp-register-a rc "$SGP_RC" ua_retried "$SGP_UA"
sgp --out --register --param-sark=0xbbbb "$DISK_B"
jline sgp-register-b rc "$SGP_RC" ua_retried "$SGP_UA"
sgp --in --read-keys "$DISK_A"
jline sgp-read-keys-a rc "$SGP_RC" generation "$(sgp_generation)" keys "$(sgp_keys)"

"$RIG_DIR/helper-ctl.sh" start
jline helper-start ok 1 cmd "$HELPER_CMD"

RK_A=000000000000aaaa
RK_B=000000000000bbbb
Z8=0000000000000000
# CDBs (16 bytes, zero padded by the probe). PR IN allocation length 8192 = bytes 7-8.
READ_KEYS=5e000000000000200000
READ_RESERVATION=5e010000000000200000
RESERVE_WE=5f010100000000001800     # service action 1, LU scope, type 1 (Write Exclusive)
RELEASE_WE=5f020100000000001800
REGISTER=5f000000000000001800

jraw "$($PROBE "$PRH_SOCK" "$DISK_A" $READ_KEYS --label prh-read-keys-a)"
jraw "$($PROBE "$PRH_SOCK" "$DISK_B" $READ_KEYS --rdonly --label prh-read-keys-b-rdonly)"
jraw "$($PROBE "$PRH_SOCK" "$DISK_A" $RESERVE_WE $RK_A$Z8$Z8 --label prh-reserve-a)"

sgp --in --read-reservation "$DISK_B"
jline sgp-read-reservation-b rc "$SGP_RC" key "$(sgp_res_key)" type "$(sgp_res_type)"

jraw "$($PROBE "$PRH_SOCK" "$DISK_B" $RESERVE_WE $RK_B$Z8$Z8 --label prh-reserve-b-conflict)"
jraw "$($PROBE "$PRH_SOCK" "$DISK_B" $READ_RESERVATION --label prh-read-reservation-b)"
jraw "$($PROBE "$PRH_SOCK" "$DISK_A" $REGISTER $Z8${Z8%????}cccc$Z8 --rdonly --label prh-register-rdonly)"
jraw "$($PROBE "$PRH_SOCK" "$DISK_A" $RELEASE_WE $RK_A$Z8$Z8 --label prh-release-a)"

sgp --in --read-reservation "$DISK_B"
jline sgp-read-reservation-after-release rc "$SGP_RC" key "$(sgp_res_key)"

"$RIG_DIR/helper-ctl.sh" stop
jline helper-stop ok 1
echo "smoke job done: $(wc -l < "$RESULTS") result lines"
