#!/bin/sh
# Every function the library exports is documented: named in docs/*.md and
# preceded by a block comment in its public header.
# Usage: check_docs.sh LIBDGRING.so SOURCE_ROOT
set -eu
lib=$1
root=$2
missing=0
for sym in $(nm -D --defined-only "$lib" | awk '$2 == "T" { print $3 }'); do
    if ! grep -qw "$sym" "$root"/docs/*.md; then
        echo "not in docs/: $sym"
        missing=$((missing + 1))
    fi
    if ! grep -qw "$sym" "$root"/include/dgring/*.h; then
        echo "not declared in include/dgring/: $sym"
        missing=$((missing + 1))
    fi
done
# Only the public dg_ names leave the library; dg__ internals stay hidden.
leaked=$(nm -D --defined-only "$lib" | awk '$2 == "T" && ($3 !~ /^dg_/ || $3 ~ /^dg__/) { print $3 }')
if [ -n "$leaked" ]; then
    echo "exported but not public API: $leaked"
    missing=$((missing + 1))
fi
[ "$missing" -eq 0 ] && echo "all exported symbols are documented"
exit "$missing"
