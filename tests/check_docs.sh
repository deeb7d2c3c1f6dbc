#!/bin/sh
# Every function the library exports is documented: named in docs/*.md and
# preceded by a block comment in its public header, and nothing internal is
# exported. Fails, naming each one, when any is not.
#
# "Preceded by a block comment": a /* ... */ comment ends on the line above
# the function's declaration, or above the run of declarations it belongs
# to (consecutive DG_EXPORT declarations, and one-line typedefs such as a
# callback type, with no blank line between: one comment may cover a
# get/set pair). A blank line, or any other line, between the comment and
# the run means the function has no doc comment.
# Usage: check_docs.sh LIBDGRING.so SOURCE_ROOT
set -eu
lib=$1
root=$2
missing=0

# "HEADER NAME yes|no" for every DG_EXPORT function of the public headers.
declared=$(awk '
FNR == 1 { doc = 0; in_comment = 0; in_decl = 0 }
in_comment {
    if ($0 ~ /\*\//) { in_comment = 0; doc = 1 }
    next
}
/^[[:space:]]*\/\*/ {
    if ($0 ~ /\*\/[[:space:]]*$/) doc = 1
    else in_comment = 1
    next
}
in_decl {
    if ($0 ~ /;/) in_decl = 0
    next
}
/^[[:space:]]*DG_EXPORT[[:space:]]/ {
    name = $0
    sub(/[[:space:]]*\(.*/, "", name)
    sub(/.*[^A-Za-z0-9_]/, "", name)
    print FILENAME, name, (doc ? "yes" : "no")
    if ($0 !~ /;/) in_decl = 1
    next
}
/^[[:space:]]*typedef[^{]*;[[:space:]]*$/ { next }
{ doc = 0 }
' "$root"/include/dgring/*.h)

for sym in $(nm -D --defined-only "$lib" | awk '$2 == "T" { print $3 }'); do
    if ! grep -qw "$sym" "$root"/docs/*.md; then
        echo "not in docs/: $sym"
        missing=$((missing + 1))
    fi
    entry=$(printf '%s\n' "$declared" | awk -v s="$sym" '$2 == s { print; exit }')
    if [ -z "$entry" ]; then
        echo "not declared with DG_EXPORT in include/dgring/: $sym"
        missing=$((missing + 1))
    elif [ "${entry##* }" != yes ]; then
        echo "no doc comment above its declaration in ${entry%% *}: $sym"
        missing=$((missing + 1))
    fi
done
# Only the public dg_ names leave the library; dg__ internals stay hidden.
leaked=$(nm -D --defined-only "$lib" | awk '$2 == "T" && ($3 !~ /^dg_/ || $3 ~ /^dg__/) { print $3 }')
if [ -n "$leaked" ]; then
    echo "exported but not public API: $leaked"
    missing=$((missing + 1))
fi
[ "$missing" -eq 0 ] && echo "all exported functions are documented"
exit "$missing"
