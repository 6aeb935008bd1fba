#!/bin/sh
# run-tier.sh NAME JOB CHECKER — host-side flow shared by the run-*.sh entry scripts:
# build the VM caches and the e2e TypeScript, run JOB in the VM, check its results
# with dist/test/e2e/tools/CHECKER.js, print PASS/FAIL with timings.
# Exit 0 = PASS, 1 = checks failed, 125 = rig failure (or the job's own status).
set -eu
RIG_DIR=$(cd "$(dirname "$0")" && pwd)
. "$RIG_DIR/lib.sh"
[ $# = 3 ] || { echo "usage: $0 NAME JOB CHECKER" >&2; exit 125; }
name=$1 job=$2 checker=$3

now() { date +%s.%N; }
dt() { awk -v a="$2" -v b="$1" 'BEGIN { printf "%.1f", a - b }'; }

t_start=$(now)
"$RIG_DIR/build-cache.sh" > /dev/null || { echo "FAIL $name: cache build"; exit 125; }
t_cache=$(now)
# Only the e2e sources: the rest of the tree may be mid-edit by others. run-all.sh
# compiles once for all tiers (RIG_SKIP_TSC=1).
if [ "${RIG_SKIP_TSC:-0}" != 1 ]; then
    (cd "$REPO_ROOT" && npx --no-install tsc -p test/e2e/tsconfig.json) || { echo "FAIL $name: tsc"; exit 125; }
fi
t_tsc=$(now)

OUT=${RIG_OUT:-$RIG_CACHE/runs/$name-$(date +%Y%m%d-%H%M%S)-$$}
rc=0
RIG_OUT=$OUT "$RIG_DIR/runvm.sh" "$job" || rc=$?
t_vm=$(now)

# Check whenever results exist: a failing job still tells which step broke.
if [ -s "$OUT/results.jsonl" ] && [ "$rc" != 125 ]; then
    crc=0
    node "$REPO_ROOT/dist/test/e2e/tools/$checker.js" "$OUT/results.jsonl" || crc=$?
    [ "$rc" != 0 ] || [ "$crc" = 0 ] || rc=1
elif [ "$rc" = 0 ]; then
    echo "no results written"; rc=1
fi
t_end=$(now)

verdict=PASS
[ "$rc" = 0 ] || verdict=FAIL
echo "$verdict $name (HELPER_CMD=${HELPER_CMD:-/usr/bin/qemu-pr-helper}; exit $rc; output $OUT)"
echo "  caches $(dt "$t_start" "$t_cache") s, tsc $(dt "$t_cache" "$t_tsc") s, VM $(dt "$t_tsc" "$t_vm") s" \
     "$(cat "$OUT/timings.json" 2>/dev/null || echo '(no timings)'), checks $(dt "$t_vm" "$t_end") s," \
     "total $(dt "$t_start" "$t_end") s"
exit "$rc"
