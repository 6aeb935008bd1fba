#!/bin/sh
# run-all.sh (npm run test:e2e) — the end-to-end tiers with OUR daemon as the helper:
#   1   run-differential.sh  LIO in the rig VM: the PR sequence through qemu-pr-helper and
#                            through our daemon must give byte-identical replies
#   1b  run-sim-vs-lio.sh    the same sequence on our simulated disk (host, no VM) against
#                            the LIO replies tier 1 just recorded: only pinned LIO quirks differ
#   2   run-qemu-client.sh   a real QEMU in the VM as the client, helper kill/restart
# Builds the VM caches and compiles the e2e sources once, runs the tiers one after the
# other, prints PASS/FAIL per tier with its time. Exit 0 if all pass, 1 if any failed,
# 125 if the rig itself could not be prepared. Root required (9p passthrough).
# Env: HELPER_CMD (default: our daemon, node dist/src/cli/main.js), RIG_CACHE, RIG_CONSOLE=1.
set -u
E2E_DIR=$(cd "$(dirname "$0")" && pwd)
REPO_ROOT=$(cd "$E2E_DIR/../.." && pwd)
RIG_CACHE=${RIG_CACHE:-$E2E_DIR/.cache}
export RIG_CACHE
export HELPER_CMD=${HELPER_CMD:-node $REPO_ROOT/dist/src/cli/main.js}
RUNS="$RIG_CACHE/runs/all-$(date +%Y%m%d-%H%M%S)-$$"
now() { date +%s.%N; }
dt() { awk -v a="$2" -v b="$1" 'BEGIN { printf "%.1f", a - b }'; }

t_all=$(now)
[ "$(id -u)" = 0 ] || { echo "run-all: must run as root (9p security_model=passthrough)"; exit 125; }
[ -f "$REPO_ROOT/dist/src/cli/main.js" ] || { echo "run-all: dist/src/cli/main.js missing: npx tsc -p tsconfig.json"; exit 125; }
"$E2E_DIR/rig/build-cache.sh" > /dev/null || { echo "run-all: VM cache build failed"; exit 125; }
(cd "$REPO_ROOT" && npx --no-install tsc -p test/e2e/tsconfig.json) || { echo "run-all: tsc -p test/e2e/tsconfig.json failed"; exit 125; }
export RIG_SKIP_TSC=1
echo "run-all: prepared in $(dt "$t_all" "$(now)") s; HELPER_CMD=$HELPER_CMD; output $RUNS"

summary=""
failed=0
# tier NAME SCRIPT [VAR=value...] — runs one tier with its output under $RUNS/NAME.
tier() {
    name=$1 script=$2
    shift 2
    echo "==== tier $name: $(basename "$script")"
    t0=$(now)
    rc=0
    env RIG_OUT="$RUNS/$name" "$@" "$script" || rc=$?
    secs=$(dt "$t0" "$(now)")
    if [ "$rc" = 0 ]; then verdict=PASS; else verdict=FAIL; failed=1; fi
    summary="$summary$(printf 'TIER %-3s %s  %6s s  %s (exit %s)' "$name" "$verdict" "$secs" "$(basename "$script")" "$rc")
"
}

tier 1 "$E2E_DIR/run-differential.sh"
# Tier 1b compares with what LIO has just answered; without a fresh recording (tier 1 could
# not run) it falls back to the one kept in the tree.
lio_seq="$RUNS/1/seq-reference.json"
[ -s "$lio_seq" ] || { lio_seq="$E2E_DIR/fixtures/lio-pr-sequence.json"; echo "run-all: no fresh LIO recording; tier 1b uses $lio_seq"; }
tier 1b "$E2E_DIR/run-sim-vs-lio.sh" LIO_SEQ="$lio_seq"
tier 2 "$E2E_DIR/run-qemu-client.sh"

echo "==== summary (output $RUNS)"
printf '%s' "$summary"
echo "TOTAL $(dt "$t_all" "$(now)") s: $([ "$failed" = 0 ] && echo PASS || echo FAIL)"
exit "$failed"
