#!/bin/sh
# Tier 1b: the Tier 1 sequence (tools/pr-sequence.ts) against OUR daemon's simulated disk
# (--simulate, one LUN, two paths with LIO's initiator names and relative target ports),
# compared with LIO's replies. Every difference must be a documented LIO quirk on the
# allow-list in tools/lio-divergences.ts (tools/check-sim-vs-lio.ts). Runs on the host:
# no VM, no root.
# Env: LIO_SEQ  LIO recording (default test/e2e/fixtures/lio-pr-sequence.json; run-all.sh
#               passes the one Tier 1 has just made), RIG_OUT, RIG_SKIP_TSC=1.
# Exit 0 PASS, 1 FAIL, 125 rig failure.
set -eu
E2E_DIR=$(cd "$(dirname "$0")" && pwd)
REPO_ROOT=$(cd "$E2E_DIR/../.." && pwd)
RIG_CACHE=${RIG_CACHE:-$E2E_DIR/.cache}
LIO_SEQ=${LIO_SEQ:-$E2E_DIR/fixtures/lio-pr-sequence.json}
DAEMON="$REPO_ROOT/dist/src/cli/main.js"
now() { date +%s.%N; }
dt() { awk -v a="$2" -v b="$1" 'BEGIN { printf "%.1f", a - b }'; }

t_start=$(now)
if [ "${RIG_SKIP_TSC:-0}" != 1 ]; then
    (cd "$REPO_ROOT" && npx --no-install tsc -p test/e2e/tsconfig.json) || { echo "FAIL sim-vs-lio: tsc"; exit 125; }
fi
[ -f "$DAEMON" ] || { echo "FAIL sim-vs-lio: $DAEMON missing (npx tsc -p tsconfig.json)"; exit 125; }
[ -f "$LIO_SEQ" ] || { echo "FAIL sim-vs-lio: no LIO recording $LIO_SEQ"; exit 125; }

OUT=${RIG_OUT:-$RIG_CACHE/runs/sim-vs-lio-$(date +%Y%m%d-%H%M%S)-$$}
mkdir -p "$OUT/state"
OUT=$(cd "$OUT" && pwd)
# Unix socket paths are limited to 107 bytes: keep it short.
SOCK_DIR=$(mktemp -d /tmp/prh-sim.XXXXXX)
SOCK="$SOCK_DIR/prh.sock"
: > "$OUT/a.img"
: > "$OUT/b.img"
cat > "$OUT/simulate.json" <<JSON
{
  "stateDir": "$OUT/state",
  "luns": [{
    "name": "disk0",
    "paths": [
      { "path": "$OUT/a.img", "initiator": "naa.50014050000000a1", "targetPort": 1 },
      { "path": "$OUT/b.img", "initiator": "naa.50014050000000a2", "targetPort": 2 }
    ]
  }]
}
JSON

node "$DAEMON" --simulate "$OUT/simulate.json" -k "$SOCK" > "$OUT/helper.log" 2>&1 &
pid=$!
cleanup() { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$SOCK_DIR"; }
trap cleanup EXIT
i=0
until [ -S "$SOCK" ]; do
    kill -0 "$pid" 2>/dev/null || { echo "FAIL sim-vs-lio: daemon exited"; cat "$OUT/helper.log"; exit 125; }
    i=$((i + 1))
    [ "$i" -le 150 ] || { echo "FAIL sim-vs-lio: no socket after 15 s"; exit 125; }
    sleep 0.1
done

rc=0
node "$REPO_ROOT/dist/test/e2e/tools/pr-sequence.js" --socket "$SOCK" --disk-a "$OUT/a.img" --disk-b "$OUT/b.img" \
    --label simulated --out "$OUT/seq-simulated.json" > "$OUT/sequence.log" 2>&1 || rc=125
if [ "$rc" = 0 ]; then
    node "$REPO_ROOT/dist/test/e2e/tools/check-sim-vs-lio.js" "$LIO_SEQ" "$OUT/seq-simulated.json" || rc=1
else
    cat "$OUT/sequence.log"
fi
cleanup
trap - EXIT
t_end=$(now)
verdict=PASS
[ "$rc" = 0 ] || verdict=FAIL
echo "$verdict sim-vs-lio (LIO recording $LIO_SEQ; exit $rc; output $OUT)"
echo "  total $(dt "$t_start" "$t_end") s"
exit "$rc"
