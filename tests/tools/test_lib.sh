# Helpers shared by the tools' and examples' end-to-end tests; sourced by
# test_*.sh (POSIX sh).
#
# Rules every test follows: only 127.0.0.1, ::1 (and a multicast group on
# the loopback interface) are used, always with port 0 read back from the
# tool's "listening ADDRESS:PORT" line; nothing checks a rate or a latency,
# only exit statuses, output shapes and counts loopback cannot miss. Every
# background process is waited for with a watchdog, so a hang fails the
# test instead of stalling it.

set -u

WORK=$(mktemp -d "${TMPDIR:-/tmp}/dgring-test.XXXXXX") || exit 1
PIDS=""
FAILURES=0
SKIPS=0
STATUS=0

# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
    for pid in $PIDS; do
        kill -KILL "$pid" 2>/dev/null
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

fail() {
    echo "FAIL: $*"
    FAILURES=$((FAILURES + 1))
}

pass() {
    echo "ok: $*"
}

skip() {
    echo "SKIP: $*"
    SKIPS=$((SKIPS + 1))
}

show() {
    for show_file in "$@"; do
        [ -s "$show_file" ] && sed "s|^|    $(basename "$show_file"): |" "$show_file"
    done
    return 0
}

# start NAME CMD...: runs CMD in the background with stdout in
# $WORK/NAME.out and stderr in $WORK/NAME.err; its pid lands in LAST_PID.
start() {
    start_name=$1
    shift
    "$@" >"$WORK/$start_name.out" 2>"$WORK/$start_name.err" &
    LAST_PID=$!
    PIDS="$PIDS $LAST_PID"
}

# start_input NAME INPUT CMD...: as start, with stdin from file INPUT.
start_input() {
    start_name=$1
    start_in=$2
    shift 2
    "$@" <"$start_in" >"$WORK/$start_name.out" 2>"$WORK/$start_name.err" &
    LAST_PID=$!
    PIDS="$PIDS $LAST_PID"
}

# wait_bounded PID SECONDS: waits for PID, killing it after SECONDS; its
# exit status lands in STATUS (137 when the watchdog had to kill it).
# The watchdog polls in short sleeps so that killing it leaves no long
# sleep behind, and gets SIGKILL: a SIGTERM that arrives before the forked
# subshell has reset the inherited INT/TERM trap would be lost.
wait_bounded() {
    (
        ticks=$(($2 * 10))
        while [ "$ticks" -gt 0 ] && kill -0 "$1" 2>/dev/null; do
            sleep 0.1
            ticks=$((ticks - 1))
        done
        kill -KILL "$1" 2>/dev/null
    ) </dev/null >/dev/null 2>&1 &
    watchdog=$!
    wait "$1"
    STATUS=$?
    kill -KILL "$watchdog" 2>/dev/null
    wait "$watchdog" 2>/dev/null
    return 0
}

# run NAME CMD...: start + wait_bounded 60, stdin from /dev/null.
run() {
    run_name=$1
    shift
    start_input "$run_name" /dev/null "$@"
    wait_bounded "$LAST_PID" 60
}

# run_input NAME INPUT CMD...: run with stdin from file INPUT.
run_input() {
    start_input "$@"
    wait_bounded "$LAST_PID" 60
}

# listening_port FILE PID [FILE2]: prints the port of the "listening A:P"
# line of FILE (or FILE2), waiting up to 10 s. Fails if the line does not
# come or PID dies first.
listening_port() {
    tries=0
    while [ $tries -lt 100 ]; do
        line=$(cat "$1" ${3:+"$3"} 2>/dev/null | grep '^listening ' | head -n 1)
        if [ -n "$line" ]; then
            echo "${line##*:}"
            return 0
        fi
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.1
        tries=$((tries + 1))
    done
    return 1
}

# wait_for_port NAME PID: listening_port of NAME's stdout or stderr (where
# the tools print it with --json, whose stdout carries only JSON).
wait_for_port() {
    listening_port "$WORK/$1.out" "$2" "$WORK/$1.err"
}

# wait_for_line FILE PATTERN PID: waits up to 10 s for a line of FILE
# matching the grep PATTERN. Fails if it does not come or PID dies.
wait_for_line() {
    tries=0
    while [ $tries -lt 100 ]; do
        grep -q "$2" "$1" 2>/dev/null && return 0
        kill -0 "$3" 2>/dev/null || { grep -q "$2" "$1" 2>/dev/null; return $?; }
        sleep 0.1
        tries=$((tries + 1))
    done
    return 1
}

# json_value FILE KEY: the value (a number, true, false or null) after
# "KEY": on FILE's summary: its first JSON line of a "mode" that is no
# per-thread line (those follow the summary; interval lines start with
# "interval").
json_value() {
    grep '^{"mode":' "$1" | grep -v '^{"mode":"[a-z]*-thread"' | head -n 1 |
        sed -n "s/.*\"$2\":\([0-9.a-z]*\).*/\1/p"
}

# json_sum FILE KEY: the sum of the numbers after "KEY": over FILE's lines
# (0 if none), e.g. a count over every flush line of dgstatsd.
json_sum() {
    sed -n "s/.*\"$2\":\([0-9]*\).*/\1/p" "$1" | awk '{ s += $1 } END { print s + 0 }'
}

# impair_total FILE KEY: KEY of dgring-impair's totals line in its report
# FILE; impair_up_dropped FILE: the sum of its up_dropped_* totals.
impair_total() {
    grep '"mode":"impair"' "$1" | sed -n "s/.*\"$2\":\([0-9]*\).*/\1/p"
}

impair_up_dropped() {
    grep '"mode":"impair"' "$1" | tr ',' '\n' |
        sed -n 's/^"up_dropped_[a-z]*":\([0-9]*\)$/\1/p' | awk '{ s += $1 } END { print s + 0 }'
}

# expect_equal DESCRIPTION GOT WANT: GOT is WANT (and not empty).
expect_equal() {
    if [ -n "$2" ] && [ "$2" = "$3" ]; then
        pass "$1: $2"
    else
        fail "$1: '$2', expected '$3'"
    fi
}

# json_lines FILE: every line of FILE is a JSON object (jq parses each);
# fails naming the first that is not. Without jq: returns 2 (the caller
# skips).
json_lines() {
    command -v jq >/dev/null 2>&1 || return 2
    [ -s "$1" ] || return 1
    jq -e 'type == "object"' "$1" >/dev/null 2>"$WORK/jq.err"
}

# proc_udp_drops PORT: the drops column of the UDP socket bound to PORT in
# /proc/net/udp and /proc/net/udp6 (the kernel's own count for it).
proc_udp_drops() {
    hex=$(printf '%04X' "$1")
    cat /proc/net/udp /proc/net/udp6 2>/dev/null |
        awk -v p=":$hex" '$2 ~ p"$" { print $NF; exit }'
}

# wait_udp_read PORT: waits (10 s at most) until the UDP socket bound to
# PORT has read everything that reached it: its receive queue
# (rx_queue of /proc/net/udp) is empty. Before a SIGINT to dgring-impair,
# which stops forwarding: what it reads after it is counted as dropped
# while closing, which a receiver cannot see as a gap. Fails if the queue
# stays non-empty.
wait_udp_read() {
    hex=$(printf '%04X' "$1")
    tries=0
    while [ $tries -lt 100 ]; do
        queued=$(cat /proc/net/udp /proc/net/udp6 2>/dev/null |
            awk -v p=":$hex" '$2 ~ p"$" { split($5, q, ":"); print q[2]; exit }')
        [ "$queued" = "00000000" ] && return 0
        sleep 0.1
        tries=$((tries + 1))
    done
    return 1
}

# expect_loss_counted NAME KEY BEFORE: the count KEY (lost, loss) in
# NAME's JSON is 0, or the kernel counted at least as many receive-buffer
# drops (Udp RcvbufErrors, system-wide, so other tenants' drops count too)
# since BEFORE (snmp_udp RcvbufErrors read before the run). On loopback a
# datagram is lost only where a socket's buffer was full: a receiver that
# was not scheduled for a while on a loaded machine loses some, and the
# test checks that the loss was real and counted, not that no stall
# happened (tests never fail on a timing).
expect_loss_counted() {
    lost=$(json_value "$WORK/$1.out" "$2")
    drops=$(($(snmp_udp RcvbufErrors) - $3))
    if [ "$lost" = 0 ]; then
        pass "$1: $2 0"
    elif [ -n "$lost" ] && [ "$drops" -ge "$lost" ]; then
        pass "$1: $2 $lost, all dropped where the kernel counts it (RcvbufErrors +$drops)"
    else
        fail "$1: $2 '$lost', but the kernel counted only $drops receive-buffer drops"
        show "$WORK/$1.out"
    fi
}

# snmp_udp FIELD: the kernel's counter FIELD of the Udp line of
# /proc/net/snmp (RcvbufErrors, InDatagrams ...): what nstat reports as
# UdpFIELD.
snmp_udp() {
    awk -v f="$1" '/^Udp:/ { if (!n) { for (i = 2; i <= NF; i++) col[$i] = i; n = 1 }
                             else { print $col[f]; exit } }' /proc/net/snmp
}

# expect_status DESCRIPTION WANT CMD...: CMD (stdin /dev/null) must exit
# WANT printing exactly one line on stderr.
expect_status() {
    description=$1
    want=$2
    shift 2
    run usage "$@"
    lines=$(wc -l <"$WORK/usage.err")
    if [ "$STATUS" -ne "$want" ]; then
        fail "$description: exit $STATUS, expected $want"
        show "$WORK/usage.err"
    elif [ "$lines" -ne 1 ]; then
        fail "$description: $lines stderr lines, expected 1"
        show "$WORK/usage.err"
    else
        pass "$description: $(cat "$WORK/usage.err")"
    fi
}

# expect_usage DESCRIPTION CMD...: CMD must exit 2 with one stderr line.
expect_usage() {
    description=$1
    shift
    expect_status "$description" 2 "$@"
}

# expect_help DESCRIPTION CMD...: CMD must exit 0 printing usage.
expect_help() {
    description=$1
    shift
    run help "$@"
    if [ "$STATUS" -eq 0 ] && grep -q '^usage:' "$WORK/help.out"; then
        pass "$description"
    else
        fail "$description: exit $STATUS"
        show "$WORK/help.out" "$WORK/help.err"
    fi
}

have_ipv6_loopback() {
    grep -q '^00000000000000000000000000000001 ' /proc/net/if_inet6 2>/dev/null
}

# closed_port TOOL: prints a UDP port on 127.0.0.1 that nothing listens
# on: one the kernel picked for a dgcat -l that then ended. (A fake DNS
# server address for tests that need a host name to fail to resolve
# without asking the machine's DNS.)
closed_port() {
    start closed "$1" -l 127.0.0.1 0 --count 1
    closed_pid=$LAST_PID
    closed_found=$(listening_port "$WORK/closed.err" "$closed_pid")
    kill -INT "$closed_pid" 2>/dev/null
    wait_bounded "$closed_pid" 10
    echo "$closed_found"
}

# finish: the verdict and the exit status. Skipped checks print why and
# do not fail the test; a script whose every check needs something absent
# exits 77 itself, which meson reports as a skip.
finish() {
    if [ "$FAILURES" -ne 0 ]; then
        echo "$FAILURES check(s) failed"
        exit 1
    fi
    echo "all checks passed ($SKIPS skipped)"
    exit 0
}
