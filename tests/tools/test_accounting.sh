#!/bin/sh
# The numbers dgblast recv and dgring-echo print, checked against the
# kernel's own counters (issue 14): loss and reordering per sender, foreign
# payloads, a sender cap, and the socket's kernel drops against the drops
# column of /proc/net/udp and, in a private network namespace, nstat's
# UdpRcvbufErrors and UdpInDatagrams.
#
# usage: test_accounting.sh PATH/TO/dgblast PATH/TO/dgring-echo PATH/TO/dgcat
#
# As root with unshare(1) and ip(8), the script runs itself again in a
# network namespace of its own (only lo, brought up): the namespace's UDP
# counters then count this script's datagrams only, so they can be
# compared exactly. Elsewhere the nstat comparisons are skipped, visibly.
#
# Counts, never timings: the runs that must lose nothing send at most 410
# datagrams of 64 bytes, which the smallest receive queue the tools can be
# granted (2 x 212992 bytes, Linux's default net.core.rmem_max) holds even
# if the receiver never ran; the runs that must lose freeze the receiver
# (SIGSTOP) or give it a 64 KiB buffer, and compare what the tools print
# with what the kernel counted, exactly.

if [ $# -ne 3 ]; then
    echo "usage: $0 DGBLAST DGRING_ECHO DGCAT" >&2
    exit 2
fi

if [ -z "${DGRING_TEST_NETNS:-}" ] && [ "$(id -u)" -eq 0 ] && command -v unshare >/dev/null &&
    command -v ip >/dev/null && unshare -n true 2>/dev/null; then
    DGRING_TEST_NETNS=1
    export DGRING_TEST_NETNS
    exec unshare -n sh "$0" "$@"
fi
if [ -n "${DGRING_TEST_NETNS:-}" ] && ! ip link set lo up; then
    echo "cannot bring lo up in the test's network namespace"
    exit 1
fi

BLAST_TOOL=$1
ECHO_TOOL=$2
CAT_TOOL=$3
# shellcheck source=tests/tools/test_lib.sh
. "$(dirname "$0")/test_lib.sh"

if [ -n "${DGRING_TEST_NETNS:-}" ]; then
    echo "in a network namespace of its own: its UDP counters are this script's"
fi

# own_counters: whether the kernel's UDP counters count this script only.
own_counters() {
    [ -n "${DGRING_TEST_NETNS:-}" ]
}

# nstat_udp NAME: nstat's absolute value of UdpNAME (RcvbufErrors,
# InDatagrams), with its history kept in $WORK.
nstat_udp() {
    NSTAT_HISTORY="$WORK/nstat.history" nstat -az "Udp$1" 2>/dev/null |
        awk -v k="Udp$1" '$1 == k { print $2 }'
}

# kernel_udp NAME: nstat's figure, cross-checked with /proc/net/snmp.
kernel_udp() {
    from_snmp=$(snmp_udp "$1")
    if command -v nstat >/dev/null 2>&1; then
        from_nstat=$(nstat_udp "$1")
        if [ "$from_nstat" != "$from_snmp" ]; then
            echo "nstat Udp$1 $from_nstat, /proc/net/snmp $from_snmp" >&2
        fi
    fi
    echo "$from_snmp"
}

# proc_drops_sum PORT: the drops column summed over every socket bound to
# PORT (a reuse-port group has one per thread).
proc_drops_sum() {
    hex=$(printf '%04X' "$1")
    cat /proc/net/udp /proc/net/udp6 2>/dev/null |
        awk -v p=":$hex" '$2 ~ p"$" { s += $NF } END { print s + 0 }'
}

# start_recv NAME ARGS...: dgblast recv --json on 127.0.0.1 port 0; sets
# RECV_PID and RECV_PORT.
start_recv() {
    recv_name=$1
    shift
    start "$recv_name" "$BLAST_TOOL" recv -B 127.0.0.1 -p 0 -J "$@"
    RECV_PID=$LAST_PID
    if ! RECV_PORT=$(wait_for_port "$recv_name" "$RECV_PID"); then
        fail "$recv_name: no listening line"
        show "$WORK/$recv_name.out" "$WORK/$recv_name.err"
        return 1
    fi
}

# expect_equal WHAT GOT WANT: one check.
expect_equal() {
    if [ "$2" = "$3" ]; then
        pass "$1: $2"
    else
        fail "$1: $2, expected $3"
    fi
}

# send_total NAME KEY: KEY of a dgblast send summary.
send_total() {
    json_value "$WORK/$1.out" "$2"
}

# ---- Senders, loss and reordering ----------------------------------------

# check_flows N RATE: N paced senders (each its own socket and sender id)
# into one recv: everything arrives, nothing is lost or reordered, N
# senders are told apart, the kernel dropped nothing.
check_flows() {
    name="flows$1"
    start_recv "${name}_recv" --idle-ms 1000 || return 1
    run "${name}_send" "$BLAST_TOOL" send -c 127.0.0.1 -p "$RECV_PORT" -P "$1" -r "$2" -t 0.1 -J
    wait_bounded "$RECV_PID" 30
    recv_out="$WORK/${name}_recv.out"
    expect_equal "$name: received = sent" "$(json_value "$recv_out" packets)" \
        "$(send_total "${name}_send" packets)"
    expect_equal "$name: lost" "$(json_value "$recv_out" lost)" 0
    expect_equal "$name: reordered" "$(json_value "$recv_out" reordered)" 0
    expect_equal "$name: senders" "$(json_value "$recv_out" senders)" "$1"
    expect_equal "$name: kernel drops" "$(json_value "$recv_out" kernel_drops)" 0
}

# --skip-every: each sender leaves out a known count of sequence numbers;
# recv must count exactly those as lost, and nothing reordered.
check_skipped() {
    start_recv skip_recv --idle-ms 1000 || return 1
    run skip_send "$BLAST_TOOL" send -c 127.0.0.1 -p "$RECV_PORT" -P 2 -r 1000 -t 0.2 \
        --skip-every 10 -J
    wait_bounded "$RECV_PID" 30
    skipped=$(send_total skip_send seq_skipped)
    if [ "${skipped:-0}" -gt 0 ]; then
        pass "skip: the senders left out $skipped sequence numbers"
    else
        fail "skip: the senders left out '${skipped}'"
        show "$WORK/skip_send.out"
    fi
    expect_equal "skip: lost = skipped" "$(json_value "$WORK/skip_recv.out" lost)" "$skipped"
    expect_equal "skip: reordered" "$(json_value "$WORK/skip_recv.out" reordered)" 0
    expect_equal "skip: received = sent" "$(json_value "$WORK/skip_recv.out" packets)" \
        "$(send_total skip_send packets)"
}

# Payloads that are not dgblast's: counted as foreign, out of the loss;
# a rate over one datagram is "too short".
check_foreign() {
    start_recv foreign_recv --idle-ms 500 || return 1
    printf 'a:1|c\n' >"$WORK/statsd.in"
    run_input foreign_cat "$WORK/statsd.in" "$CAT_TOOL" 127.0.0.1 "$RECV_PORT"
    wait_bounded "$RECV_PID" 30
    out="$WORK/foreign_recv.out"
    expect_equal "foreign: packets" "$(json_value "$out" packets)" 1
    expect_equal "foreign: foreign" "$(json_value "$out" foreign)" 1
    expect_equal "foreign: lost" "$(json_value "$out" lost)" 0
    expect_equal "foreign: senders" "$(json_value "$out" senders)" 0
    expect_equal "foreign: pps over one datagram" "$(json_value "$out" pps)" null

    start foreign_text "$BLAST_TOOL" recv -B 127.0.0.1 -p 0 --idle-ms 500
    text_pid=$LAST_PID
    port=$(wait_for_port foreign_text "$text_pid") || return 1
    run_input foreign_cat2 "$WORK/statsd.in" "$CAT_TOOL" 127.0.0.1 "$port"
    run short_send "$BLAST_TOOL" send -c 127.0.0.1 -p "$port" -s 8 -r 1000 -t 0.05
    wait_bounded "$text_pid" 30
    sent=$(sed -n 's/^send: \([0-9]*\) packets.*/\1/p' "$WORK/short_send.out")
    if grep -q "lost 0, reordered 0, duplicates 0 from 0 senders; foreign $((sent + 1))," \
        "$WORK/foreign_text.out"; then
        pass "foreign: 8-byte payloads (no header) and a statsd line are foreign"
    else
        fail "foreign: text summary"
        show "$WORK/foreign_text.out" "$WORK/short_send.out"
    fi
}

# A single datagram gives no rate: the text says "too short".
check_too_short() {
    start short "$BLAST_TOOL" recv -B 127.0.0.1 -p 0 --count 1
    short_pid=$LAST_PID
    port=$(wait_for_port short "$short_pid") || return 1
    run_input short_cat "$WORK/statsd.in" "$CAT_TOOL" 127.0.0.1 "$port"
    wait_bounded "$short_pid" 30
    if grep -q '^recv: 1 packets, 5 bytes in 0.000 s, rate: too short' "$WORK/short.out"; then
        pass "one datagram: $(grep '^recv:' "$WORK/short.out")"
    else
        fail "one datagram: no 'too short'"
        show "$WORK/short.out"
    fi
}

# Four senders, room for two: evictions are counted and said, and loss
# stays exact (a sender back after eviction counts from its return).
check_sender_cap() {
    start_recv cap_recv --idle-ms 1000 --max-senders 2 || return 1
    run cap_send "$BLAST_TOOL" send -c 127.0.0.1 -p "$RECV_PORT" -P 4 -r 500 -t 0.2 -J
    wait_bounded "$RECV_PID" 30
    out="$WORK/cap_recv.out"
    evicted=$(json_value "$out" senders_evicted)
    if [ "${evicted:-0}" -ge 2 ]; then
        pass "sender cap 2, 4 senders: $evicted evicted"
    else
        fail "sender cap 2, 4 senders: evicted '${evicted}', expected at least 2"
        show "$out"
    fi
    expect_equal "sender cap: lost" "$(json_value "$out" lost)" 0
    expect_equal "sender cap: received = sent" "$(json_value "$out" packets)" \
        "$(send_total cap_send packets)"
}

# ---- Kernel drops ------------------------------------------------------------

# The receiver frozen (SIGSTOP) while a flood fills its 64 KiB buffer:
# every drop comes after the last datagram it will get, so no sequence
# gap shows them; recv's kernel drops must equal the socket's drop count
# in /proc/net/udp, received + dropped must equal sent, and (in the
# namespace) nstat must have counted the same.
check_frozen_recv() {
    own_counters && rcvbuf_before=$(kernel_udp RcvbufErrors) &&
        in_before=$(kernel_udp InDatagrams)
    start_recv frozen_recv --idle-ms 1000 --rcvbuf 64K || return 1
    kill -STOP "$RECV_PID"
    run frozen_send "$BLAST_TOOL" send -c 127.0.0.1 -p "$RECV_PORT" -t 0.2 -J
    proc=$(proc_udp_drops "$RECV_PORT")
    kill -CONT "$RECV_PID"
    wait_bounded "$RECV_PID" 30
    out="$WORK/frozen_recv.out"
    drops=$(json_value "$out" kernel_drops)
    discarded=$(json_value "$out" discarded_at_close)
    got=$(json_value "$out" packets)
    sent=$(send_total frozen_send packets)
    if [ "${drops:-0}" -gt 0 ]; then
        pass "frozen receiver: $got received, $drops dropped of $sent"
    else
        fail "frozen receiver: kernel drops '${drops}'"
        show "$out" "$WORK/frozen_recv.err"
    fi
    expect_equal "frozen: kernel drops = /proc/net/udp drops" "$drops" "$proc"
    expect_equal "frozen: received + kernel drops + discarded at close = sent" \
        "$((got + drops + discarded))" "$sent"
    expect_equal "frozen: lost (no gap before the drops)" "$(json_value "$out" lost)" 0
    if own_counters; then
        expect_equal "frozen: kernel drops = nstat UdpRcvbufErrors" \
            "$(($(kernel_udp RcvbufErrors) - rcvbuf_before))" "$drops"
        expect_equal "frozen: received = nstat UdpInDatagrams" \
            "$(($(kernel_udp InDatagrams) - in_before))" "$got"
    else
        skip "frozen: nstat not compared (no network namespace of our own)"
    fi
}

# Two unpaced senders into a running receiver with a 64 KiB buffer: the
# kernel drops what the queue cannot hold; recv must count every drop
# (= nstat's RcvbufErrors), received + drops = sent, and the gaps it
# counts as lost can only come from those drops.
check_flood() {
    own_counters && rcvbuf_before=$(kernel_udp RcvbufErrors)
    start_recv flood_recv --idle-ms 500 --rcvbuf 64K || return 1
    run flood_send "$BLAST_TOOL" send -c 127.0.0.1 -p "$RECV_PORT" -P 2 -t 0.3 -J
    wait_bounded "$RECV_PID" 30
    out="$WORK/flood_recv.out"
    drops=$(json_value "$out" kernel_drops)
    lost=$(json_value "$out" lost)
    got=$(json_value "$out" packets)
    discarded=$(json_value "$out" discarded_at_close)
    sent=$(send_total flood_send packets)
    pass "flood: $got received of $sent, kernel drops $drops, lost $lost"
    expect_equal "flood: received + kernel drops + discarded at close = sent" \
        "$((got + drops + discarded))" "$sent"
    expect_equal "flood: senders" "$(json_value "$out" senders)" 2
    if [ "$lost" -le "$drops" ]; then
        pass "flood: lost $lost <= kernel drops $drops"
    else
        fail "flood: lost $lost > kernel drops $drops"
    fi
    if own_counters; then
        expect_equal "flood: kernel drops = nstat UdpRcvbufErrors" \
            "$(($(kernel_udp RcvbufErrors) - rcvbuf_before))" "$drops"
    else
        skip "flood: nstat not compared (no network namespace of our own)"
    fi
}

# The same kernel drops in the human summary, with the reason.
check_drops_explained() {
    start drops_text "$BLAST_TOOL" recv -B 127.0.0.1 -p 0 --idle-ms 1000 --rcvbuf 64K
    text_pid=$LAST_PID
    port=$(wait_for_port drops_text "$text_pid") || return 1
    kill -STOP "$text_pid"
    run drops_text_send "$BLAST_TOOL" send -c 127.0.0.1 -p "$port" -t 0.1
    proc=$(proc_udp_drops "$port")
    kill -CONT "$text_pid"
    wait_bounded "$text_pid" 30
    if grep -q "^  kernel drops $proc, discarded at close 0, receive buffer 131072 bytes$" \
        "$WORK/drops_text.out" &&
        grep -q "^  the kernel dropped $proc datagrams: the socket's receive queue was full" \
            "$WORK/drops_text.out"; then
        pass "drops explained: $(grep 'the kernel dropped' "$WORK/drops_text.out")"
    else
        fail "drops explained (the kernel counted $proc)"
        show "$WORK/drops_text.out"
    fi
}

# recv --threads 2 frozen: the per-thread kernel drops add up to the total,
# which equals the drops of the group's sockets in /proc/net/udp.
check_group_drops() {
    start_recv group_recv --idle-ms 1000 --rcvbuf 64K -P 2 || return 1
    kill -STOP "$RECV_PID"
    run group_send "$BLAST_TOOL" send -c 127.0.0.1 -p "$RECV_PORT" -P 4 -t 0.2 -J
    proc=$(proc_drops_sum "$RECV_PORT")
    kill -CONT "$RECV_PID"
    wait_bounded "$RECV_PID" 30
    out="$WORK/group_recv.out"
    drops=$(json_value "$out" kernel_drops)
    threads=$(grep '^{"mode":"recv-thread"' "$out" |
        sed 's/.*"kernel_drops":\([0-9]*\).*/\1/' | awk '{ s += $1 } END { print s + 0 }')
    expect_equal "group: kernel drops = /proc/net/udp drops of its sockets" "$drops" "$proc"
    expect_equal "group: per-thread kernel drops add up" "$threads" "$drops"
    expect_equal "group: received + kernel drops + discarded at close = sent" \
        "$(($(json_value "$out" packets) + drops + $(json_value "$out" discarded_at_close)))" \
        "$(send_total group_send packets)"
}

# ---- Discarded at close -----------------------------------------------------

# recv --count 50 frozen while about 200 paced datagrams queue up (fewer
# than any granted queue holds: no kernel drop): it takes 50 and closes
# with the rest queued, which the close discards and counts; received +
# kernel drops + discarded at close = sent, in the JSON and the text.
check_count_discards() {
    start_recv count_recv --count 50 || return 1
    kill -STOP "$RECV_PID"
    run count_send "$BLAST_TOOL" send -c 127.0.0.1 -p "$RECV_PORT" -s 64 -r 1000 -t 0.2 -J
    kill -CONT "$RECV_PID"
    wait_bounded "$RECV_PID" 30
    out="$WORK/count_recv.out"
    sent=$(send_total count_send packets)
    discarded=$(json_value "$out" discarded_at_close)
    expect_equal "count: received" "$(json_value "$out" packets)" 50
    expect_equal "count: kernel drops" "$(json_value "$out" kernel_drops)" 0
    expect_equal "count: discarded at close = sent - received" "$discarded" "$((sent - 50))"
    if [ "${discarded:-0}" -gt 0 ]; then
        pass "count: $discarded discarded at close of $sent"
    else
        fail "count: discarded at close '${discarded}' of $sent"
    fi

    start count_text "$BLAST_TOOL" recv -B 127.0.0.1 -p 0 --count 10
    text_pid=$LAST_PID
    port=$(wait_for_port count_text "$text_pid") || return 1
    kill -STOP "$text_pid"
    run count_text_send "$BLAST_TOOL" send -c 127.0.0.1 -p "$port" -s 64 -r 1000 -t 0.05 -J
    kill -CONT "$text_pid"
    wait_bounded "$text_pid" 30
    left=$(($(send_total count_text_send packets) - 10))
    if grep -q "^  kernel drops 0, discarded at close $left, receive buffer" \
        "$WORK/count_text.out"; then
        pass "count: the text summary says $left discarded at close"
    else
        fail "count: text summary (expected $left discarded at close)"
        show "$WORK/count_text.out"
    fi
}

# dgring-echo frozen the same way: its summary's kernel drops equal the
# kernel's count for its socket. How many of the queued datagrams it
# echoed before SIGINT depends on when the signal lands, but the rest are
# discarded at close and counted: echoed + kernel drops + discarded at
# close = sent.
check_echo_drops() {
    start echo_frozen "$ECHO_TOOL" -B 127.0.0.1 -p 0 -J --rcvbuf 64K
    echo_pid=$LAST_PID
    port=$(wait_for_port echo_frozen "$echo_pid") || return 1
    kill -STOP "$echo_pid"
    run echo_send "$BLAST_TOOL" send -c 127.0.0.1 -p "$port" -t 0.1 -J
    proc=$(proc_udp_drops "$port")
    kill -CONT "$echo_pid"
    kill -INT "$echo_pid"
    wait_bounded "$echo_pid" 30
    out="$WORK/echo_frozen.out"
    drops=$(json_value "$out" kernel_drops)
    expect_equal "echo: kernel drops = /proc/net/udp drops" "$drops" "$proc"
    got=$(json_value "$out" received)
    discarded=$(json_value "$out" rx_discarded_at_close)
    sent=$(send_total echo_send packets)
    if [ "${drops:-0}" -gt 0 ]; then
        pass "echo: $got echoed, $drops dropped by the kernel of $sent sent"
    else
        fail "echo: kernel drops '${drops}'"
        show "$out"
    fi
    expect_equal "echo: echoed + kernel drops + discarded at close ($discarded) = sent" \
        "$((got + drops + ${discarded:-0}))" "$sent"
}

check_flows 2 2000
check_flows 4 1000
check_skipped
check_foreign
check_too_short
check_sender_cap
check_frozen_recv
check_flood
check_drops_explained
check_group_drops
check_count_discards
check_echo_drops
finish
