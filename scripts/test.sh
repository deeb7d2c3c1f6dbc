#!/bin/sh
# Builds dgring and runs every test suite: once plainly in build/, then
# under AddressSanitizer + UndefinedBehaviorSanitizer in build-asan/, each
# on both backends (io_uring, then DGRING_BACKEND=epoll).
# Installs the Debian packages it needs first. Both builds treat warnings as
# errors (-Dwerror=true), as CI does; a plain `meson setup` does not.
# Usage: scripts/test.sh [--plain-only] [extra meson test arguments]
set -eu
cd "$(dirname "$0")/.."

sanitize=1
if [ "${1:-}" = "--plain-only" ]; then
    sanitize=0
    shift
fi

scripts/deps.sh test

setup() { # dir, extra meson options...
    dir=$1
    shift
    if [ -f "$dir/build.ninja" ]; then
        meson configure "$dir" "$@" >/dev/null
    else
        meson setup "$dir" "$@" >/dev/null
    fi
    ninja -C "$dir"
}

setup build -Dwerror=true
meson test -C build --print-errorlogs "$@"
echo "== the same suites on the epoll backend"
DGRING_BACKEND=epoll meson test -C build --no-rebuild --print-errorlogs "$@"

if [ "$sanitize" -eq 1 ]; then
    setup build-asan -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug \
        -Dwerror=true
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        meson test -C build-asan --print-errorlogs "$@"
    echo "== sanitized suites on the epoll backend"
    DGRING_BACKEND=epoll ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        meson test -C build-asan --no-rebuild --print-errorlogs "$@"
fi
echo "test.sh: all suites passed"
