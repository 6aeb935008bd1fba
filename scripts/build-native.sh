#!/bin/sh
# Builds the N-API addon against the headers of the Node that runs it, so a
# fresh machine never tries to download headers (there is no network but the
# registries). Node's prefix holds include/node/ on distribution builds.
set -e
cd "$(dirname "$0")/.."
nodedir=$(node -p "require('path').resolve(process.execPath, '../..')")
if command -v node-gyp >/dev/null 2>&1; then
  exec node-gyp rebuild --nodedir="$nodedir"
fi
# Outside npm scripts node-gyp is not on PATH; npm bundles one.
exec node "$(npm root -g)/npm/node_modules/node-gyp/bin/node-gyp.js" rebuild --nodedir="$nodedir"
