#!/bin/sh
# End-to-end test of dgring-echo and dgblast on loopback.
#
# usage: test_tools.sh PATH/TO/dgring-echo PATH/TO/dgblast PATH/TO/dgcat
#
# See test_lib.sh for the rules (loopback only, ports read back, no
# timing assertions). IPv6 checks skip visibly without ::1.

if [ $# -ne 3 ]; then
    echo "usage: $0 DGRING_ECHO DGBLAST DGCAT" >&2
    exit 2
fi
ECHO_TOOL=$1
BLAST_TOOL=$2
CAT_TOOL=$3
# shellcheck source=tests/tools/test_lib.sh
. "$(dirname "$0")/test_lib.sh"

# check_json NAME MODE KEY...: NAME.out has one JSON line of MODE with
# every KEY, and "packets" > 0.
check_json() {
    json_name=$1
    json_mode=$2
    shift 2
    file="$WORK/$json_name.out"
    packets=$(json_value "$file" packets)
    if ! grep -q "^{\"mode\":\"$json_mode\"" "$file"; then
        fail "$json_name: no $json_mode JSON summary"
        show "$file" "$WORK/$json_name.err"
        return 1
    fi
    for key in backend packets bytes seconds pps "$@"; do
        if ! grep '^{' "$file" | grep -q "\"$key\":"; then
            fail "$json_name: JSON lacks \"$key\""
            show "$file"
            return 1
        fi
    done
    if [ "${packets:-0}" -le 0 ]; then
        fail "$json_name: packets is ${packets:-missing}"
        show "$file" "$WORK/$json_name.err"
        return 1
    fi
    pass "$json_name: $(grep '^{' "$file")"
}

# expect_zero NAME KEY: KEY of NAME's JSON summary is 0.
expect_zero() {
    if [ "$(json_value "$WORK/$1.out" "$2")" = "0" ]; then
        pass "$1: $2 is 0"
    else
        fail "$1: $2 is $(json_value "$WORK/$1.out" "$2"), expected 0 on loopback"
    fi
}

# ---- Command lines -------------------------------------------------------

check_usage() {
    expect_help "echo --help" "$ECHO_TOOL" --help
    expect_help "dgblast --help" "$BLAST_TOOL" --help
    for mode in send recv pingpong underload; do
        expect_help "dgblast $mode --help" "$BLAST_TOOL" "$mode" --help
    done
    expect_usage "echo port 70000" "$ECHO_TOOL" --port 70000
    expect_usage "echo port abc" "$ECHO_TOOL" --port abc
    expect_usage "echo port -1" "$ECHO_TOOL" --port -1
    expect_usage "echo unknown option" "$ECHO_TOOL" --port 0 --bogus
    expect_usage "echo missing port" "$ECHO_TOOL"
    expect_usage "echo missing value" "$ECHO_TOOL" --port
    expect_usage "echo -4 with an IPv6 address" "$ECHO_TOOL" --port 0 -4 --address ::1
    expect_usage "echo -4 and -6" "$ECHO_TOOL" -p 0 -4 -6
    expect_usage "echo count 0" "$ECHO_TOOL" --port 0 --count 0
    expect_usage "echo count with threads" "$ECHO_TOOL" --port 0 --count 1 --threads 2
    expect_usage "dgblast no mode" "$BLAST_TOOL"
    expect_usage "dgblast unknown mode" "$BLAST_TOOL" flood
    expect_usage "send port 70000" "$BLAST_TOOL" send --host 127.0.0.1 --port 70000 \
        --size 64 --duration 1
    expect_usage "send port 0" "$BLAST_TOOL" send --host 127.0.0.1 --port 0 --size 64 --duration 1
    expect_usage "send size 65508" "$BLAST_TOOL" send --host 127.0.0.1 --port 9 \
        --size 65508 --duration 1
    expect_usage "send duration abc" "$BLAST_TOOL" send --host 127.0.0.1 --port 9 --size 1 \
        --duration abc
    expect_usage "send rate 0" "$BLAST_TOOL" send --host 127.0.0.1 --port 9 --size 1 \
        --duration 1 --rate 0
    expect_usage "send missing port" "$BLAST_TOOL" send -c 127.0.0.1
    expect_usage "send --rate and --bitrate" "$BLAST_TOOL" send -c 127.0.0.1 -p 9 -r 10 -b 1M
    expect_usage "send bitrate 0" "$BLAST_TOOL" send -c 127.0.0.1 -p 9 -b 0
    expect_usage "send rate 5x" "$BLAST_TOOL" send -c 127.0.0.1 -p 9 -r 5x
    expect_usage "send bad host" "$BLAST_TOOL" send --host 'no host!' --port 9 --size 1 \
        --duration 1
    expect_usage "send -4 with an IPv6 host" "$BLAST_TOOL" send -4 --host ::1 --port 9 --size 1 \
        --duration 1
    expect_usage "send bad pattern" "$BLAST_TOOL" send --host 127.0.0.1 --port 9 --size 1 \
        --duration 1 --pattern ones
    expect_usage "send with --sockperf" "$BLAST_TOOL" send --host 127.0.0.1 --port 9 --size 1 \
        --duration 1 --sockperf
    expect_usage "recv with --rate" "$BLAST_TOOL" recv --port 0 --rate 5
    expect_usage "recv count 0" "$BLAST_TOOL" recv --port 0 --count 0
    expect_usage "recv pattern random" "$BLAST_TOOL" recv --port 0 --pattern random
    expect_usage "pingpong size 8" "$BLAST_TOOL" pingpong --host 127.0.0.1 --port 9 \
        --duration 1 --size 8
    expect_usage "pingpong sockperf size 13" "$BLAST_TOOL" pingpong --host 127.0.0.1 \
        --port 9 --duration 1 --size 13 --sockperf
    expect_usage "pingpong stray argument" "$BLAST_TOOL" pingpong --host 127.0.0.1 --port 9 \
        --duration 1 extra
    expect_usage "underload reply-every 0" "$BLAST_TOOL" underload --host 127.0.0.1 --port 9 \
        --duration 1 --reply-every 0
    expect_usage "underload with --count" "$BLAST_TOOL" underload --host 127.0.0.1 --port 9 \
        --duration 1 --count 5
}

# A host name that does not resolve: one line naming it, exit 1. The DNS
# server is a closed port on 127.0.0.1, so the machine's DNS is never asked.
check_unknown_host() {
    dns_port=$(closed_port "$CAT_TOOL")
    if [ -z "$dns_port" ]; then
        fail "unknown host: no closed port for a fake DNS server"
        return 1
    fi
    DGRING_DNS_SERVERS="127.0.0.1:$dns_port"
    export DGRING_DNS_SERVERS
    for mode in send pingpong underload; do
        size=""
        [ "$mode" = send ] && size="--size 16"
        # shellcheck disable=SC2086 # $size is split on purpose
        expect_status "$mode unknown host" 1 \
            "$BLAST_TOOL" "$mode" --host no-such-host.invalid --port 9 --duration 5 $size
        grep -q "no-such-host.invalid" "$WORK/usage.err" ||
            fail "$mode unknown host: the message does not name the host"
    done
    expect_status "echo unknown bind host" 1 "$ECHO_TOOL" --port 0 --address no-such-host.invalid
    unset DGRING_DNS_SERVERS
}

# ---- Echo, pingpong and underload -------------------------------------------

# start_echo NAME ADDRESS [ARGS...]: starts dgring-echo on ADDRESS port 0;
# sets ECHO_PID and ECHO_PORT, or fails.
start_echo() {
    name=$1
    address=$2
    shift 2
    start "$name" "$ECHO_TOOL" --port 0 --address "$address" "$@"
    ECHO_PID=$LAST_PID
    if ! ECHO_PORT=$(wait_for_port "$name" "$ECHO_PID"); then
        fail "$name: no listening line"
        show "$WORK/$name.out" "$WORK/$name.err"
        return 1
    fi
    pass "$name: $(head -n 1 "$WORK/$name.out")"
}

# check_round_trip NAME MODE HOST PORT [ARGS...]: a round-trip mode with
# --json must succeed without loss.
check_round_trip() {
    name=$1
    mode=$2
    host=$3
    port=$4
    shift 4
    run "$name" "$BLAST_TOOL" "$mode" --host "$host" --port "$port" --duration 1 --json "$@"
    if [ "$STATUS" -ne 0 ]; then
        fail "$name: exit $STATUS"
        show "$WORK/$name.out" "$WORK/$name.err"
        return 1
    fi
    if [ "$mode" = pingpong ]; then
        check_json "$name" "$mode" loss rtt_p50_us rtt_p90_us rtt_p99_us rtt_p999_us \
            rtt_max_us kernel_drops || return 1
        expect_zero "$name" loss
    else
        check_json "$name" "$mode" replies expected lost rtt_samples rtt_p50_us rtt_max_us \
            kernel_drops || return 1
        expect_zero "$name" lost
    fi
}

# stop_echo NAME: SIGINT must end dgring-echo with status 0 and a summary.
stop_echo() {
    kill -INT "$ECHO_PID"
    wait_bounded "$ECHO_PID" 30
    if [ "$STATUS" -ne 0 ]; then
        fail "$1: exit $STATUS after SIGINT"
        show "$WORK/$1.out" "$WORK/$1.err"
    elif ! grep -q '^received [0-9]* datagrams ([0-9]* bytes), sent [0-9]* datagrams' \
        "$WORK/$1.out" && ! grep -q '^{"mode":"echo' "$WORK/$1.out"; then
        fail "$1: no summary after SIGINT"
        show "$WORK/$1.out"
    elif ! grep -q '^socket: rx_datagrams [0-9]* rx_bytes [0-9]* .* tx_gso_sends [0-9]* rx_discarded_at_close [0-9]*$' \
        "$WORK/$1.out" && ! grep -q '^{"mode":"echo.*"rx_datagrams":' "$WORK/$1.out"; then
        fail "$1: no socket statistics after SIGINT"
        show "$WORK/$1.out"
    else
        pass "$1 after SIGINT: $(grep -v '^socket:\|^loop:' "$WORK/$1.out" | tail -n 1)"
        pass "$1 socket statistics: $(grep '^socket:' "$WORK/$1.out" | tail -n 1)"
    fi
}

# --count 3: three datagrams from dgcat are echoed, then dgring-echo ends
# by itself with status 0, its summary and socket statistics that count
# exactly those three.
check_echo_count() {
    start_echo echo_count 127.0.0.1 --count 3 || return 1
    printf 'one\ntwo\nthree\n' >"$WORK/count.in"
    run_input count_send "$WORK/count.in" "$CAT_TOOL" --wait 5 --count 3 127.0.0.1 "$ECHO_PORT"
    [ "$STATUS" -eq 0 ] || fail "echo --count: dgcat exit $STATUS"
    wait_bounded "$ECHO_PID" 30
    if [ "$STATUS" -eq 0 ] &&
        grep -q '^received 3 datagrams (11 bytes), sent 3 datagrams' "$WORK/echo_count.out" &&
        grep -q '^socket: rx_datagrams 3 rx_bytes 11 .* tx_datagrams 3 tx_bytes 11 tx_errors 0 ' \
            "$WORK/echo_count.out"; then
        pass "echo --count 3: $(tail -n 1 "$WORK/echo_count.out")"
    else
        fail "echo --count 3: exit $STATUS"
        show "$WORK/echo_count.out" "$WORK/echo_count.err" "$WORK/count_send.out"
    fi
}

check_echo_ipv4() {
    start_echo echo4 127.0.0.1 --stats || return 1
    check_round_trip pingpong4 pingpong 127.0.0.1 "$ECHO_PORT" --pattern seq
    check_round_trip underload4 underload localhost "$ECHO_PORT" --rate 2000 --reply-every 10 \
        --pattern random
    run pingpong_human "$BLAST_TOOL" pingpong --host localhost --port "$ECHO_PORT" \
        --duration 0.3 --size 100
    if [ "$STATUS" -eq 0 ] && grep -q '^pingpong: ' "$WORK/pingpong_human.out" &&
        grep -q '^  round trip us ([0-9]* samples):  p50 .* p99.9 ' "$WORK/pingpong_human.out"; then
        pass "pingpong human summary"
    else
        fail "pingpong human summary: exit $STATUS"
        show "$WORK/pingpong_human.out" "$WORK/pingpong_human.err"
    fi
    run echo_busy "$ECHO_TOOL" --port "$ECHO_PORT" --address 127.0.0.1
    if [ "$STATUS" -eq 1 ] && grep -q '^dgring-echo: bind ' "$WORK/echo_busy.err"; then
        pass "echo on a taken port: $(cat "$WORK/echo_busy.err")"
    else
        fail "echo on a taken port: exit $STATUS"
        show "$WORK/echo_busy.out" "$WORK/echo_busy.err"
    fi
    # --stats prints a line a second; the round trips above took > 2 s.
    if grep -q '^\[ *[0-9]*\.[0-9]s\] rx [0-9]* pkt/s' "$WORK/echo4.err"; then
        pass "echo --stats: $(head -n 1 "$WORK/echo4.err")"
    else
        fail "echo --stats: no per-second line on stderr"
        show "$WORK/echo4.err"
    fi
    stop_echo echo4
    # and the loop's counters (dg_loop_get_stats) after the socket's
    if grep -q '^loop: turns [0-9]* submissions [0-9]* enters [0-9]* completions [1-9][0-9]* ' \
        "$WORK/echo4.out"; then
        pass "echo4 loop statistics: $(grep '^loop:' "$WORK/echo4.out")"
    else
        fail "echo4: no loop statistics after SIGINT"
        show "$WORK/echo4.out"
    fi
}

# --stats --json: the per-second lines are JSON too, and so is the summary.
check_echo_json_stats() {
    start_echo echo_json 127.0.0.1 --stats --json || return 1
    if wait_for_line "$WORK/echo_json.err" '^{"mode":"echo-stats","second":1,' "$ECHO_PID"; then
        pass "echo --stats --json: $(head -n 1 "$WORK/echo_json.err")"
    else
        fail "echo --stats --json: no JSON statistics line"
        show "$WORK/echo_json.err"
    fi
    stop_echo echo_json
    grep -q '^{"mode":"echo","backend":' "$WORK/echo_json.out" ||
        fail "echo --json: no JSON summary"
}

check_echo_ipv6() {
    if ! have_ipv6_loopback; then
        skip "IPv6 echo: no ::1 on this machine"
        return 0
    fi
    start_echo echo6 ::1 --udp6 || return 1
    check_round_trip pingpong6 pingpong ::1 "$ECHO_PORT" --udp6
    check_round_trip underload6 underload ::1 "$ECHO_PORT" --udp6 --rate 1000
    stop_echo echo6
}

# ---- Send and receive -----------------------------------------------------

# check_send_recv NAME RECV_ARGS SEND_ARGS: runs a receiver on
# 127.0.0.1 port 0 and a sender at it; both must report packets.
check_send_recv() {
    name=$1
    recv_args=$2
    send_args=$3
    # shellcheck disable=SC2086 # the argument lists are split on purpose
    start "${name}_recv" "$BLAST_TOOL" recv --address 127.0.0.1 --port 0 --json $recv_args
    recv_pid=$LAST_PID
    if ! port=$(wait_for_port "${name}_recv" "$recv_pid"); then
        fail "${name}_recv: no listening line"
        show "$WORK/${name}_recv.out" "$WORK/${name}_recv.err"
        return 1
    fi
    # shellcheck disable=SC2086
    run "${name}_send" "$BLAST_TOOL" send --host 127.0.0.1 --port "$port" --json $send_args
    if [ "$STATUS" -ne 0 ]; then
        fail "${name}_send: exit $STATUS"
        show "$WORK/${name}_send.out" "$WORK/${name}_send.err"
    else
        check_json "${name}_send" send errors
    fi
    wait_bounded "$recv_pid" 30
    if [ "$STATUS" -ne 0 ]; then
        fail "${name}_recv: exit $STATUS"
        show "$WORK/${name}_recv.out" "$WORK/${name}_recv.err"
        return 1
    fi
    check_json "${name}_recv" recv lost reordered senders foreign kernel_drops rcvbuf || return 1
    for side in send recv; do
        if json_lines "$WORK/${name}_$side.out"; then
            pass "${name}_$side: stdout is JSON lines only"
        elif [ $? -eq 2 ]; then
            skip "${name}_$side: jq is not installed, JSON lines not parsed"
        else
            fail "${name}_$side: stdout is not JSON lines only"
            show "$WORK/${name}_$side.out" "$WORK/jq.err"
        fi
    done
}

# recv must end on SIGINT with status 0 and a summary, even with nothing
# received.
check_recv_interrupt() {
    start recv_int "$BLAST_TOOL" recv --address 127.0.0.1 --port 0
    recv_pid=$LAST_PID
    if ! wait_for_port recv_int "$recv_pid" >/dev/null; then
        fail "recv_int: no listening line"
        show "$WORK/recv_int.out" "$WORK/recv_int.err"
        return 1
    fi
    kill -INT "$recv_pid"
    wait_bounded "$recv_pid" 30
    if [ "$STATUS" -eq 0 ] && grep -q '^recv: 0 packets' "$WORK/recv_int.out"; then
        pass "recv after SIGINT: $(grep '^recv:' "$WORK/recv_int.out")"
    else
        fail "recv after SIGINT: exit $STATUS"
        show "$WORK/recv_int.out" "$WORK/recv_int.err"
    fi
}

# --threads 2: a reuse-port group answers pingpong from several flows (one
# dgblast per flow, each with its own source port); the summary has a line
# per thread, and the per-thread counts add up to the total.
check_echo_threads() {
    start_echo echo_threads 127.0.0.1 --threads 2 || return 1
    for flow in 1 2 3 4; do
        check_round_trip "threads_flow$flow" pingpong 127.0.0.1 "$ECHO_PORT" || return 1
    done
    stop_echo echo_threads
    lines=$(grep -c '^thread [01]: received' "$WORK/echo_threads.out")
    sum=$(sed -n 's/^thread [0-9]*: received \([0-9]*\) .*/\1/p' "$WORK/echo_threads.out" |
        awk '{ s += $1 } END { print s }')
    total=$(sed -n 's/^received \([0-9]*\) datagrams.*threads\]$/\1/p' "$WORK/echo_threads.out")
    if [ "$lines" -eq 2 ] && [ -n "$total" ] && [ "$sum" -eq "$total" ] && [ "$total" -gt 0 ]; then
        pass "echo --threads 2: 2 thread lines adding up to $total"
    else
        fail "echo --threads 2: per-thread lines ($lines) and total ($total, sum $sum)"
        show "$WORK/echo_threads.out" "$WORK/echo_threads.err"
    fi
}

# --threads: 4 paced senders into a 2-thread receiver; both print a line
# per thread and a total, and the receiver gets what was sent (paced far
# below what loopback carries, so nothing is lost).
check_blast_threads() {
    start recv_threads "$BLAST_TOOL" recv --address 127.0.0.1 --port 0 --threads 2 --idle-ms 3000
    recv_pid=$LAST_PID
    if ! port=$(wait_for_port recv_threads "$recv_pid"); then
        fail "recv --threads: no listening line"
        show "$WORK/recv_threads.out" "$WORK/recv_threads.err"
        return 1
    fi
    run send_threads "$BLAST_TOOL" send --host 127.0.0.1 --port "$port" --size 64 \
        --duration 0.5 --rate 1000 --threads 4
    wait_bounded "$recv_pid" 30
    sent=$(sed -n 's/^send: \([0-9]*\) packets.*/\1/p' "$WORK/send_threads.out")
    got=$(sed -n 's/^recv: \([0-9]*\) packets.*/\1/p' "$WORK/recv_threads.out")
    slines=$(grep -c '^thread [0-3]: ' "$WORK/send_threads.out")
    rlines=$(grep -c '^thread [01]: ' "$WORK/recv_threads.out")
    if [ "$STATUS" -eq 0 ] && [ "$slines" -eq 4 ] && [ "$rlines" -eq 2 ] &&
        [ -n "$sent" ] && [ "$sent" -gt 0 ] && [ "$got" = "$sent" ]; then
        pass "send --threads 4 -> recv --threads 2: $got of $sent datagrams"
    else
        fail "send/recv --threads: sent $sent ($slines lines), received $got ($rlines lines)"
        show "$WORK/send_threads.out" "$WORK/send_threads.err" "$WORK/recv_threads.out" \
            "$WORK/recv_threads.err"
    fi
}

check_usage
check_unknown_host
check_echo_threads
check_blast_threads
check_echo_ipv4
check_echo_json_stats
check_echo_count
check_echo_ipv6
check_send_recv paced "--count 1000" "--size 64 --duration 0.5 --rate 5000"
check_send_recv flood "--idle-ms 500" "--size 32 --duration 0.3"
check_send_recv pattern "--count 500 --pattern seq" "--size 300 --duration 0.5 --rate 2000 \
--pattern seq"
expect_zero pattern_recv corrupt
check_recv_interrupt
finish
