#!/bin/sh
# Runs the module's node --test suites against a built addon (meson test
# runs this: tests/meson.build, suite "node").
# Usage: run.sh NODE ADDON [test files...]
# Host names in the tests go through scripted lookup functions or are
# "localhost"; DGRING_DNS_SERVERS points anything else at a loopback port
# where nothing listens, never at the machine's resolver.
set -eu
node=$1
addon=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
[ -n "$node" ] && [ -x "$node" ] || { echo "run.sh: no node"; exit 77; }
export DGRING_NODE_ADDON="$addon"
export DGRING_DNS_SERVERS="${DGRING_DNS_SERVERS:-127.0.0.1:9}"
cd "$here"
if [ $# -eq 0 ]; then
    set -- *.test.js
fi
exec "$node" --test --test-concurrency=1 "$@"
