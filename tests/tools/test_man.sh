#!/bin/sh
# The man pages match the tools: every long option a tool's --help lists
# appears in its page, every page documents the exit statuses 0, 1 and 2,
# and (where groff is installed) formats without a warning.
#
# usage: test_man.sh MAN_DIR DGRING_ECHO DGBLAST DGCAT DGRING_IMPAIR

if [ $# -ne 5 ]; then
    echo "usage: $0 MAN_DIR DGRING_ECHO DGBLAST DGCAT DGRING_IMPAIR" >&2
    exit 2
fi
MAN_DIR=$1
# shellcheck source=tests/tools/test_lib.sh
. "$(dirname "$0")/test_lib.sh"

# check_page PAGE HELP_FILE: the checks above for one page.
check_page() {
    page=$MAN_DIR/$1
    missing=""
    # shellcheck disable=SC2013 # options are single words
    for option in $(grep -o -- '--[a-z][a-z0-9-]*' "$2" | sort -u); do
        roff=$(echo "$option" | sed 's/-/\\\\-/g')
        grep -q -- "$roff" "$page" || missing="$missing $option"
    done
    if [ -n "$missing" ]; then
        fail "$1: options of --help missing from the page:$missing"
    else
        pass "$1: every option of --help is documented"
    fi
    if grep -q '^\.SH EXIT STATUS' "$page" && grep -q '^\.B 0$' "$page" &&
        grep -q '^\.B 1$' "$page" && grep -q '^\.B 2$' "$page"; then
        pass "$1: exit statuses documented"
    else
        fail "$1: no EXIT STATUS section with 0, 1 and 2"
    fi
    if ! command -v groff >/dev/null 2>&1; then
        skip "$1: groff is not installed, formatting not checked"
    elif groff -man -ww -z "$page" 2>"$WORK/groff.err" && [ ! -s "$WORK/groff.err" ]; then
        pass "$1: formats without warnings"
    else
        fail "$1: groff warnings"
        show "$WORK/groff.err"
    fi
}

"$2" --help >"$WORK/echo.help"
check_page dgring-echo.1 "$WORK/echo.help"
"$3" --help >"$WORK/blast.help"
for mode in send recv pingpong underload; do
    "$3" "$mode" --help >>"$WORK/blast.help"
done
check_page dgblast.1 "$WORK/blast.help"
"$4" --help >"$WORK/cat.help"
check_page dgcat.1 "$WORK/cat.help"
"$5" --help >"$WORK/impair.help"
check_page dgring-impair.1 "$WORK/impair.help"
finish
