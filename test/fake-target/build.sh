#!/bin/sh
# Builds the fake SCSI target (fake-sg.so) and its probe into build/fake-target/
# under the repository root. Idempotent: an output is rebuilt only when it is
# missing or older than its source. Each output is compiled to a temporary name
# and renamed, so concurrent runs (parallel test files) never see a half-written file.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out="$root/build/fake-target"
cc=${CC:-cc}
mkdir -p "$out"

build() { # build OUTPUT SOURCE "CFLAGS" "LIBS"
  target=$1 src=$2 cflags=$3 libs=$4
  if [ -f "$target" ] && [ ! "$src" -nt "$target" ]; then
    return 0
  fi
  tmp="$target.tmp.$$"
  # shellcheck disable=SC2086 # flag lists are meant to split
  "$cc" $cflags -o "$tmp" "$src" $libs && mv -f "$tmp" "$target" || { rm -f "$tmp"; exit 1; }
}

build "$out/fake-sg.so" "$here/fake-sg.c" "-shared -fPIC -O2 -Wall -Wextra -Werror" "-ldl"
build "$out/probe" "$here/probe.c" "-O2 -Wall -Wextra -Werror -pthread" ""

echo "$out/fake-sg.so"
