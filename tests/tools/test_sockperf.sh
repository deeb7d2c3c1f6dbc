#!/bin/sh
# Interoperability with sockperf (Debian package "sockperf"), both ways:
# sockperf's ping-pong and under-load clients against dgring-echo
# --sockperf, and dgblast pingpong/underload --sockperf against
# 'sockperf server'. Skipped (exit 77) when sockperf is not installed.
#
# usage: test_sockperf.sh PATH/TO/dgring-echo PATH/TO/dgblast
#
# See test_lib.sh for the rules (loopback only, ports read back, no
# timing assertions). sockperf is IPv4 only, so this runs on 127.0.0.1.

if [ $# -ne 2 ]; then
    echo "usage: $0 DGRING_ECHO DGBLAST" >&2
    exit 2
fi
ECHO_TOOL=$1
BLAST_TOOL=$2
# shellcheck source=tests/tools/test_lib.sh
. "$(dirname "$0")/test_lib.sh"

if ! command -v sockperf >/dev/null 2>&1; then
    echo "SKIP: sockperf is not installed (apt-get install sockperf)"
    exit 77
fi

# sockperf_received NAME: the ReceivedMessages count of sockperf's
# "[Valid Duration]" line in NAME.out (empty if there is none).
sockperf_received() {
    sed -n 's/.*\[Valid Duration\].*ReceivedMessages=\([0-9]*\).*/\1/p' "$WORK/$1.out" |
        head -n 1
}

# sockperf_client NAME MODE PORT: runs 'sockperf MODE' for 2 s against
# 127.0.0.1:PORT; it must exit 0 having received answers.
sockperf_client() {
    run "$1" sockperf "$2" -i 127.0.0.1 -p "$3" -t 2
    received=$(sockperf_received "$1")
    if [ "$STATUS" -ne 0 ]; then
        fail "$1: sockperf exit $STATUS"
        show "$WORK/$1.out" "$WORK/$1.err"
    elif [ "${received:-0}" -le 0 ]; then
        fail "$1: sockperf received no answers"
        show "$WORK/$1.out" "$WORK/$1.err"
    else
        pass "$1: $(grep -h 'Valid Duration' "$WORK/$1.out")"
    fi
}

# sockperf's clients against dgring-echo --sockperf.
check_sockperf_clients() {
    start echo "$ECHO_TOOL" --sockperf --port 0 --address 127.0.0.1 --json
    echo_pid=$LAST_PID
    if ! port=$(wait_for_port echo "$echo_pid"); then
        fail "dgring-echo --sockperf: no listening line"
        show "$WORK/echo.out" "$WORK/echo.err"
        return 1
    fi
    sockperf_client pingpong_client ping-pong "$port"
    sockperf_client underload_client under-load "$port"
    kill -INT "$echo_pid"
    wait_bounded "$echo_pid" 10
    replies=$(json_value "$WORK/echo.out" replies)
    malformed=$(json_value "$WORK/echo.out" malformed)
    if [ "$STATUS" -eq 0 ] && [ "${replies:-0}" -gt 0 ] && [ "$malformed" = 0 ]; then
        pass "dgring-echo --sockperf: $(grep '^{' "$WORK/echo.out")"
    else
        fail "dgring-echo --sockperf: exit $STATUS"
        show "$WORK/echo.out" "$WORK/echo.err"
    fi
}

# A plain echo sends sockperf's own message back with the client flag
# still set: sockperf must ignore it (which is why --sockperf exists).
check_plain_echo_ignored() {
    start plain "$ECHO_TOOL" --port 0 --address 127.0.0.1
    plain_pid=$LAST_PID
    if ! port=$(wait_for_port plain "$plain_pid"); then
        fail "plain dgring-echo: no listening line"
        return 1
    fi
    run ignored sockperf ping-pong -i 127.0.0.1 -p "$port" -t 1
    if [ "$(sockperf_received ignored)" = "" ] || [ "$(sockperf_received ignored)" = 0 ]; then
        pass "sockperf ignores a plain echo"
    else
        fail "sockperf took a plain echo as answers"
        show "$WORK/ignored.out"
    fi
    kill -INT "$plain_pid"
    wait_bounded "$plain_pid" 10
}

# udp_port PID: the local port of PID's first UDP socket, from /proc
# (sockperf server binds port 0 but prints 0, not the port it got).
udp_port() {
    for fd in /proc/"$1"/fd/*; do
        inode=$(readlink "$fd" 2>/dev/null | sed -n 's/^socket:\[\([0-9]*\)\]$/\1/p')
        [ -n "$inode" ] || continue
        hex=$(awk -v inode="$inode" '$10 == inode { split($2, a, ":"); print a[2] }' \
            /proc/net/udp)
        if [ -n "$hex" ]; then
            echo $((0x$hex))
            return 0
        fi
    done
    return 1
}

# wait_udp_port PID: udp_port, retried for up to 10 s.
wait_udp_port() {
    tries=0
    while [ $tries -lt 100 ]; do
        udp_port "$1" && return 0
        kill -0 "$1" 2>/dev/null || return 1
        sleep 0.1
        tries=$((tries + 1))
    done
    return 1
}

# dgblast's --sockperf modes against sockperf's own server.
check_sockperf_server() {
    start server sockperf server -i 127.0.0.1 -p 0
    server_pid=$LAST_PID
    if ! port=$(wait_udp_port "$server_pid"); then
        fail "sockperf server: no UDP port found"
        show "$WORK/server.out" "$WORK/server.err"
        return 1
    fi
    drops_before=$(snmp_udp RcvbufErrors)
    run pingpong "$BLAST_TOOL" pingpong --sockperf --host 127.0.0.1 --port "$port" \
        --duration 1 --timeout-ms 10000 --json
    if [ "$STATUS" -eq 0 ] && [ "$(json_value "$WORK/pingpong.out" packets)" -gt 0 ]; then
        pass "dgblast pingpong --sockperf: $(cat "$WORK/pingpong.out")"
        expect_loss_counted pingpong loss "$drops_before"
    else
        fail "dgblast pingpong --sockperf: exit $STATUS"
        show "$WORK/pingpong.out" "$WORK/pingpong.err"
    fi
    drops_before=$(snmp_udp RcvbufErrors)
    run underload "$BLAST_TOOL" underload --sockperf --host 127.0.0.1 --port "$port" \
        --duration 1 --rate 5000 --reply-every 50 --timeout-ms 10000 --json
    if [ "$STATUS" -eq 0 ] && [ "$(json_value "$WORK/underload.out" replies)" -gt 0 ]; then
        pass "dgblast underload --sockperf: $(cat "$WORK/underload.out")"
        expect_loss_counted underload lost "$drops_before"
    else
        fail "dgblast underload --sockperf: exit $STATUS"
        show "$WORK/underload.out" "$WORK/underload.err"
    fi
    kill -INT "$server_pid"
    wait_bounded "$server_pid" 10
}

# What sockperf's figures are: by default half the round trip, printed as
# "latency" (the README and tools/README label them one-way); with
# --full-rtt the whole round trip, as dgblast prints. Checked here so the
# labels stay true.
check_sockperf_labels() {
    start label_echo "$ECHO_TOOL" --sockperf --port 0 --address 127.0.0.1
    label_pid=$LAST_PID
    if ! port=$(wait_for_port label_echo "$label_pid"); then
        fail "dgring-echo --sockperf: no listening line"
        return 1
    fi
    run half sockperf ping-pong -i 127.0.0.1 -p "$port" -t 1
    run full sockperf ping-pong -i 127.0.0.1 -p "$port" -t 1 --full-rtt
    if grep -q 'avg-latency=' "$WORK/half.out" && grep -q 'Summary: Latency is' "$WORK/half.out" &&
        grep -q 'avg-rtt=' "$WORK/full.out" && grep -q 'Summary: Round trip is' "$WORK/full.out"
    then
        pass "sockperf prints one-way latency (half the round trip) unless --full-rtt"
    else
        fail "sockperf's labels changed: the README's one-way/round-trip labels need checking"
        show "$WORK/half.out" "$WORK/full.out"
    fi
    kill -INT "$label_pid"
    wait_bounded "$label_pid" 10
}

check_sockperf_clients
check_sockperf_labels
check_plain_echo_ignored
check_sockperf_server
finish
