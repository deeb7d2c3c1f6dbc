#!/bin/sh
# Runs a representative subset of the test suites under valgrind's memcheck
# (docs/valgrind.md): a debug build in build-valgrind/ with the io_uring
# buffer annotations (-Dvalgrind=true), every Criterion worker process
# traced, definite leaks and every memcheck error fatal.
# Usage: scripts/valgrind.sh [--backend uring|epoll] [suite...]
# The backend is DGRING_BACKEND, passed through (--backend sets it); the
# default suites are listed below. Fails if memcheck reports anything.
set -eu
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--backend" ]; then
    DGRING_BACKEND=$2
    export DGRING_BACKEND
    shift 2
fi
suites=${*:-"loop socket_io lifetime receive send_buffers recv_batch"}

scripts/deps.sh ci

dir=build-valgrind
if [ -f "$dir/build.ninja" ]; then
    meson configure "$dir" -Dbuildtype=debug -Dvalgrind=true -Dwerror=true >/dev/null
else
    meson setup "$dir" -Dbuildtype=debug -Dvalgrind=true -Dwerror=true >/dev/null
fi
ninja -C "$dir"

logs="$dir/valgrind-logs"
rm -rf "$logs"
mkdir -p "$logs"

# Criterion runs each test in a worker process of its own (BoxFort starts
# it with exec), so memcheck must follow children; one log per process.
# Criterion judges a test by its assertions, not by the worker's exit
# status, so the logs are what decide. -j1: one worker at a time on the
# shared machine. Tests that need another thread to run while the loop
# waits in io_uring_enter are left out: valgrind 3.19 keeps its lock over
# that system call, so no other thread of the process can run until it
# returns (docs/valgrind.md).
vg="valgrind --tool=memcheck --trace-children=yes --error-exitcode=1 --leak-check=full"
vg="$vg --errors-for-leak-kinds=definite --show-leak-kinds=definite --num-callers=30"
vg="$vg --suppressions=$(pwd)/tests/valgrind.supp --log-file=$(pwd)/$logs/%q{DG_VG_SUITE}.%p.log"

echo "== memcheck (backend ${DGRING_BACKEND:-default}): $suites"
status=0
for suite in $suites; do
    start=$(date +%s)
    # meson test gives each suite its environment (DGRING_DNS_SERVERS ...).
    if ! DG_VG_SUITE=$suite CRITERION_JOBS=1 CRITERION_TEST_PATTERN='!(*another_thread*)' \
        meson test -C "$dir" --print-errorlogs --timeout-multiplier 4 --wrapper "$vg" \
        "$suite" >"$logs/$suite.meson.txt" 2>&1; then
        cat "$logs/$suite.meson.txt"
        echo "valgrind.sh: $suite failed under memcheck" >&2
        status=1
    fi
    bad=$(grep -L "ERROR SUMMARY: 0 errors" "$logs/$suite".*.log || true)
    n=$(ls "$logs/$suite".*.log | wc -l)
    if [ -n "$bad" ]; then
        for f in $bad; do
            echo "---- $f"
            cat "$f"
        done
        echo "valgrind.sh: memcheck errors in $suite" >&2
        status=1
    fi
    echo "$suite: $n processes checked, $(($(date +%s) - start)) s"
done
[ "$status" -eq 0 ] && echo "valgrind.sh: no memcheck errors"
exit "$status"
