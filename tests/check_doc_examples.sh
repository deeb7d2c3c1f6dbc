#!/bin/sh
# Every ```c block of README.md and docs/*.md is compiled against the built
# library with -Wall -Wextra -Werror, and every whole program among them is
# run briefly, so no example in the docs rots. docs/contributing.md
# ("Examples in the docs") describes the marker comments:
#
#   (no marker)          a whole program (it has main): built and run; it
#                        must exit 0 by itself within 10 seconds
#   <!-- doc-example: runs-until-signal -->
#                        a whole program that serves until a signal: it must
#                        still run after a second, then SIGINT must make it
#                        exit 0 within 10 seconds
#   <!-- doc-example: compile-only REASON -->
#                        a whole program that is built, not run (REASON says
#                        why, e.g. it binds a fixed port)
#   <!-- doc-example: fragment
#   DECLARATIONS; FUNCTION HEAD -->
#                        a piece of a function: compiled (not linked) as the
#                        body of the function head the marker ends with,
#                        after the usual headers and the declarations
#
# The marker is an HTML comment (invisible on a rendered page) on the lines
# right before the fence. A block without main() and without a marker fails.
#
# Usage: check_doc_examples.sh SOURCE_ROOT LIBDGRING.so "CC" [CFLAGS...]
# (CC may be several words, as "ccache gcc"; CFLAGS are added to every
# compile, for instance the build's -fsanitize=).
set -eu
root=$(cd "$1" && pwd)
lib=$2
cc=$3
shift 3
libdir=$(cd "$(dirname "$lib")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM
failed=0
count=0

# Splits the docs into $work/N.c (the block), $work/N.head (a fragment's
# declarations and function head) and one line per block in $work/index:
# "N FILE LINE MODE".
cd "$root"
for rel in README.md docs/*.md; do
    awk -v rel="$rel" -v dir="$work" -v start="$(cat "$work/next" 2>/dev/null || echo 0)" '
    BEGIN { n = start; mode = ""; head = ""; in_marker = 0; in_block = 0 }
    in_block {
        if ($0 ~ /^```[[:space:]]*$/) { in_block = 0; close(dir "/" n ".c"); next }
        print > (dir "/" n ".c")
        next
    }
    in_marker {
        if ($0 ~ /-->/) { sub(/-->.*/, ""); in_marker = 0 }
        head = head $0 "\n"
        next
    }
    /^<!-- doc-example:/ {
        line = $0
        sub(/^<!-- doc-example:[[:space:]]*/, "", line)
        if (line ~ /-->/) { sub(/[[:space:]]*-->.*/, "", line) } else { in_marker = 1 }
        split(line, words, /[[:space:]]+/)
        mode = words[1]
        head = ""
        next
    }
    /^```c[[:space:]]*$/ {
        n++
        in_block = 1
        printf "" > (dir "/" n ".c")
        if (mode == "fragment")
            printf "%s", head > (dir "/" n ".head")
        print n, rel, NR + 1, (mode == "" ? "auto" : mode) >> (dir "/index")
        mode = ""
        next
    }
    /[^[:space:]]/ { mode = "" }
    END { print n > (dir "/next") }
    ' "$rel"
done

fail() {
    echo "FAIL $1"
    failed=$((failed + 1))
}

# Builds block N as a program; returns non-zero (after reporting) if the
# compiler refuses it.
build_program() {
    # shellcheck disable=SC2086 # CC may be several words
    if ! $cc -std=gnu11 -Wall -Wextra -Werror "$@" -I"$root/include" -o "$work/$n" \
        "$work/$n.c" -L"$libdir" -ldgring -Wl,-rpath,"$libdir" -pthread \
        >"$work/$n.log" 2>&1; then
        fail "$where: does not compile"
        sed 's/^/    /' "$work/$n.log"
        return 1
    fi
}

build_fragment() {
    {
        printf '#include <dgring.h>\n#include <errno.h>\n#include <signal.h>\n'
        printf '#include <stdint.h>\n#include <stdio.h>\n#include <stdlib.h>\n'
        printf '#include <string.h>\n#include <sys/epoll.h>\n#include <unistd.h>\n'
        cat "$work/$n.head"
        printf '\n{\n'
        cat "$work/$n.c"
        printf '}\n'
    } >"$work/$n.frag.c"
    # shellcheck disable=SC2086 # CC may be several words
    if ! $cc -std=gnu11 -Wall -Wextra -Werror -Wno-unused-parameter "$@" -I"$root/include" \
        -c -o "$work/$n.o" "$work/$n.frag.c" >"$work/$n.log" 2>&1; then
        fail "$where: the fragment does not compile"
        sed 's/^/    /' "$work/$n.log"
        return 1
    fi
}

# Waits up to $2 seconds for process $1 to end; its status in $status.
wait_bounded() {
    tries=$(($2 * 20))
    while kill -0 "$1" 2>/dev/null && [ "$tries" -gt 0 ]; do
        sleep 0.05
        tries=$((tries - 1))
    done
    if kill -0 "$1" 2>/dev/null; then
        kill -KILL "$1" 2>/dev/null || true
        wait "$1" 2>/dev/null || true
        status=timeout
        return
    fi
    status=0
    wait "$1" || status=$?
}

run_program() {
    "$work/$n" >"$work/$n.out" 2>&1 &
    pid=$!
    wait_bounded "$pid" 10
    [ "$status" = 0 ] || fail "$where: exit $status (a whole program must exit 0)"
}

run_until_signal() {
    "$work/$n" >"$work/$n.out" 2>&1 &
    pid=$!
    sleep 1
    if ! kill -0 "$pid" 2>/dev/null; then
        wait "$pid" || true
        fail "$where: ended at once (it says it runs until a signal)"
        return
    fi
    kill -INT "$pid"
    wait_bounded "$pid" 10
    [ "$status" = 0 ] || fail "$where: exit $status after SIGINT, want 0"
}

# Nothing these programs do may reach the machine's DNS.
export DGRING_DNS_SERVERS=127.0.0.1:9
while read -r n file line mode; do
    where="$file:$line"
    count=$((count + 1))
    before=$failed
    if [ "$mode" = auto ]; then
        if grep -q 'main(' "$work/$n.c"; then
            mode=program
        else
            fail "$where: a fragment without a doc-example marker (docs/contributing.md)"
            continue
        fi
    fi
    case $mode in
    program | runs-until-signal | compile-only)
        build_program "$@" || continue
        case $mode in
        program) run_program ;;
        runs-until-signal) run_until_signal ;;
        esac
        ;;
    fragment) build_fragment "$@" || continue ;;
    *)
        fail "$where: unknown doc-example mode '$mode'"
        continue
        ;;
    esac
    if [ "$failed" -eq "$before" ]; then
        echo "ok   $where ($mode)"
    elif [ -f "$work/$n.out" ]; then
        sed 's/^/    | /' "$work/$n.out" | head -n 20
    fi
done <"$work/index"

echo "check_doc_examples: $count blocks, $failed failed"
[ "$count" -gt 0 ] && [ "$failed" -eq 0 ]
