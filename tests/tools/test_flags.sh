#!/bin/sh
# The tools' newer flags end to end on loopback (issue 14): short options
# and defaults, the family from the address, --rcvbuf/--sndbuf against the
# kernel's own figure (ss -m), --dns-server, --cpu, --warmup, --interval,
# --full-log, --plot (a real PNG), --bitrate, --json (stdout is JSON lines
# only, each parsed by jq), DGRING_BACKEND named when bad, and the honest
# failures: pingpong and underload with no reply, dgcat to a closed port.
#
# usage: test_flags.sh PATH/TO/dgblast PATH/TO/dgring-echo PATH/TO/dgcat
#
# See test_lib.sh for the rules (loopback only, ports read back, counts
# and exit statuses, never a rate or a latency). Checks that need a
# program the machine lacks (jq, gnuplot, ss, dnsmasq) are skipped,
# visibly.

if [ $# -ne 3 ]; then
    echo "usage: $0 DGBLAST DGRING_ECHO DGCAT" >&2
    exit 2
fi
BLAST_TOOL=$1
ECHO_TOOL=$2
CAT_TOOL=$3
# shellcheck source=tests/tools/test_lib.sh
. "$(dirname "$0")/test_lib.sh"

# expect_json_lines NAME: NAME's stdout is JSON objects only.
expect_json_lines() {
    json_lines "$WORK/$1.out"
    case $? in
    0) pass "$1: stdout is JSON lines only ($(wc -l <"$WORK/$1.out") lines)" ;;
    2) skip "$1: jq is not installed, JSON lines not parsed" ;;
    *)
        fail "$1: stdout is not JSON lines only"
        show "$WORK/$1.out" "$WORK/jq.err"
        ;;
    esac
}

# expect_ok NAME: the last run exited 0.
expect_ok() {
    if [ "$STATUS" -eq 0 ]; then
        return 0
    fi
    fail "$1: exit $STATUS"
    show "$WORK/$1.out" "$WORK/$1.err"
    return 1
}

# expect_key NAME KEY WANT: KEY of NAME's JSON summary is WANT.
expect_key() {
    got=$(json_value "$WORK/$1.out" "$2")
    if [ "$got" = "$3" ]; then
        pass "$1: $2 $got"
    else
        fail "$1: $2 is '$got', expected $3"
        show "$WORK/$1.out"
    fi
}

# start_echo NAME ARGS...: dgring-echo on port 0; sets ECHO_PID, ECHO_PORT.
start_echo() {
    echo_name=$1
    shift
    start "$echo_name" "$ECHO_TOOL" -p 0 "$@"
    ECHO_PID=$LAST_PID
    if ! ECHO_PORT=$(wait_for_port "$echo_name" "$ECHO_PID"); then
        fail "$echo_name: no listening line"
        show "$WORK/$echo_name.out" "$WORK/$echo_name.err"
        return 1
    fi
}

stop_echo() {
    kill -INT "$ECHO_PID"
    wait_bounded "$ECHO_PID" 30
}

# ss_rb PORT: the receive buffer the kernel reports for the UDP socket on
# PORT (ss -m: skmem rb).
ss_rb() {
    ss -uamnH "sport = :$1" 2>/dev/null | sed -n 's/.*skmem:(r[0-9]*,rb\([0-9]*\),.*/\1/p' |
        head -n 1
}

# ---- Command lines ----------------------------------------------------------

check_usage() {
    expect_usage "cpu 5000" "$BLAST_TOOL" pingpong -c 127.0.0.1 -p 9 -A 5000
    expect_usage "rcvbuf 0" "$BLAST_TOOL" recv -p 0 --rcvbuf 0
    expect_usage "rcvbuf 3G" "$ECHO_TOOL" -p 0 --rcvbuf 3G
    expect_usage "sndbuf 12Q" "$CAT_TOOL" --sndbuf 12Q 127.0.0.1 9
    expect_usage "warmup on send" "$BLAST_TOOL" send -c 127.0.0.1 -p 9 -O 1
    expect_usage "full-log on recv" "$BLAST_TOOL" recv -p 0 --full-log x.csv
    expect_usage "max-senders 0" "$BLAST_TOOL" recv -p 0 --max-senders 0
    expect_usage "interval 0" "$BLAST_TOOL" recv -p 0 -i 0
    expect_usage "bad DNS server" "$BLAST_TOOL" send -c localhost -p 9 --dns-server 'not a server'
    expect_usage "dgcat bad DNS server" "$CAT_TOOL" --dns-server 1.2.3.4:99999 localhost 9
    expect_status "CPU the process may not use" 2 \
        "$BLAST_TOOL" pingpong -c 127.0.0.1 -p 9 -t 0.1 -A 1023
    backend_was=${DGRING_BACKEND-unset}
    DGRING_BACKEND=bogus
    export DGRING_BACKEND
    for tool in "$BLAST_TOOL pingpong -c 127.0.0.1 -p 9 -t 0.1" "$ECHO_TOOL -p 0" \
        "$ECHO_TOOL -p 0 -P 2" "$CAT_TOOL -l 0"; do
        # shellcheck disable=SC2086 # the command is split on purpose
        expect_status "DGRING_BACKEND=bogus: ${tool##*/}" 1 $tool
        grep -q "DGRING_BACKEND 'bogus'" "$WORK/usage.err" ||
            fail "DGRING_BACKEND=bogus: ${tool##*/} does not name the variable"
    done
    if [ "$backend_was" = unset ]; then
        unset DGRING_BACKEND
    else
        DGRING_BACKEND=$backend_was # the suite may run on epoll
    fi
}

# ---- Short options, defaults, family ----------------------------------------

check_short_options() {
    start_echo echo_short -B 127.0.0.1 -J || return 1
    drops_before=$(snmp_udp RcvbufErrors)
    run pp_short "$BLAST_TOOL" pingpong -c 127.0.0.1 -p "$ECHO_PORT" -t 0.3 -s 100 -J
    expect_ok pp_short && expect_loss_counted pp_short loss "$drops_before"
    expect_json_lines pp_short
    drops_before=$(snmp_udp RcvbufErrors)
    run ul_short "$BLAST_TOOL" underload -c 127.0.0.1 -p "$ECHO_PORT" -t 0.3 -r 2k \
        --reply-every 10 -J
    expect_ok ul_short && expect_loss_counted ul_short lost "$drops_before"
    expect_json_lines ul_short
    run send_default "$BLAST_TOOL" send -c 127.0.0.1 -p "$ECHO_PORT" -t 0.1 -r 1000 -J
    expect_ok send_default && expect_key send_default size 64
    expect_json_lines send_default
    stop_echo
    expect_json_lines echo_short
    if "$BLAST_TOOL" send --help | tr -s ' \n' '  ' |
        grep -q 'seconds to send for (fractions allowed; default 10)'; then
        pass "send: --duration defaults to 10 s"
    else
        fail "send --help does not give the duration's default"
    fi
}

# An IPv6 address implies -6, as dgcat does.
check_family() {
    if ! have_ipv6_loopback; then
        skip "family: no ::1 on this machine"
        return 0
    fi
    start_echo echo6 -B ::1 || return 1
    drops_before=$(snmp_udp RcvbufErrors)
    run pp6 "$BLAST_TOOL" pingpong -c ::1 -p "$ECHO_PORT" -t 0.2 -J
    expect_ok pp6 && expect_loss_counted pp6 loss "$drops_before"
    stop_echo
}

# ---- Buffers -------------------------------------------------------------------

# --rcvbuf: the size printed is the kernel's own (ss -m), twice what was
# asked; asking more than net.core.rmem_max is said to be capped, with the
# sysctl that raises it.
check_buffers() {
    rmem_max=$(cat /proc/sys/net/core/rmem_max)
    start buf_recv "$BLAST_TOOL" recv -B 127.0.0.1 -p 0 --rcvbuf 100K -J --count 1
    buf_pid=$LAST_PID
    port=$(wait_for_port buf_recv "$buf_pid") || return 1
    if ! command -v ss >/dev/null 2>&1; then
        skip "buffers: ss is not installed"
    elif [ "$(ss_rb "$port")" = 204800 ]; then
        pass "recv --rcvbuf 100K: the kernel reports rb 204800"
    else
        fail "recv --rcvbuf 100K: ss reports rb '$(ss_rb "$port")'"
    fi
    printf 'x\n' >"$WORK/x.in"
    run_input buf_cat "$WORK/x.in" "$CAT_TOOL" 127.0.0.1 "$port"
    wait_bounded "$buf_pid" 30
    expect_key buf_recv rcvbuf 204800
    expect_key buf_recv rcvbuf_asked 102400
    expect_key buf_recv rcvbuf_capped false
    grep -q '^receive buffer 204800 bytes (asked 102400; Linux doubles what is asked)$' \
        "$WORK/buf_recv.err" || fail "recv --rcvbuf: no buffer line on stderr"

    asked=$((rmem_max + 4096))
    start_echo echo_capped -B 127.0.0.1 --rcvbuf "$asked" || return 1
    stop_echo
    if grep -q "^receive buffer $((rmem_max * 2)) bytes (asked $asked; net.core.rmem_max=$rmem_max capped it: as root, sysctl -w net.core.rmem_max=$asked raises it)$" \
        "$WORK/echo_capped.out"; then
        pass "echo: the cap said: $(grep '^receive buffer' "$WORK/echo_capped.out")"
    else
        fail "echo --rcvbuf past rmem_max: no capped line"
        show "$WORK/echo_capped.out"
    fi

    start_echo echo_sndbuf -B 127.0.0.1 -J || return 1
    run send_buf "$BLAST_TOOL" send -c 127.0.0.1 -p "$ECHO_PORT" -t 0.1 -r 100 --sndbuf 64K -J
    expect_ok send_buf && expect_key send_buf sndbuf 131072 && expect_key send_buf sndbuf_asked 65536
    stop_echo
    expect_key echo_sndbuf rcvbuf_asked 33554432

    start cat_buf "$CAT_TOOL" -l 127.0.0.1 0 --rcvbuf 100K --count 1
    cat_pid=$LAST_PID
    port=$(listening_port "$WORK/cat_buf.err" "$cat_pid") || return 1
    if command -v ss >/dev/null 2>&1; then
        expect_equal_rb=$(ss_rb "$port")
        if [ "$expect_equal_rb" = 204800 ]; then
            pass "dgcat --rcvbuf 100K: the kernel reports rb 204800"
        else
            fail "dgcat --rcvbuf 100K: ss reports rb '$expect_equal_rb'"
        fi
    fi
    run_input cat_buf_send "$WORK/x.in" "$CAT_TOOL" --sndbuf 64K 127.0.0.1 "$port"
    wait_bounded "$cat_pid" 30
}

# ---- --dns-server ------------------------------------------------------------

# A server that does not answer: the host does not resolve (exit 1, the
# host named). A dnsmasq that knows one name: dgcat reaches it by name.
check_dns_server() {
    dns_port=$(closed_port "$CAT_TOOL")
    expect_status "dgblast --dns-server (no server there)" 1 \
        "$BLAST_TOOL" send -c no-such-host.invalid -p 9 -t 0.2 --dns-server "127.0.0.1:$dns_port"
    grep -q "no-such-host.invalid" "$WORK/usage.err" ||
        fail "dgblast --dns-server: the message does not name the host"
    printf 'x\n' >"$WORK/x.in"
    run_input cat_dns "$WORK/x.in" "$CAT_TOOL" --dns-server "127.0.0.1:$dns_port" \
        no-such-host.invalid 9
    if [ "$STATUS" -eq 1 ] && grep -q "no-such-host.invalid" "$WORK/cat_dns.err"; then
        pass "dgcat --dns-server (no server there): $(cat "$WORK/cat_dns.err")"
    else
        fail "dgcat --dns-server: exit $STATUS"
        show "$WORK/cat_dns.err"
    fi
    if ! command -v dnsmasq >/dev/null 2>&1; then
        skip "--dns-server against dnsmasq: dnsmasq is not installed"
        return 0
    fi
    dns_port=$(closed_port "$CAT_TOOL")
    start dnsmasq dnsmasq --no-daemon --port="$dns_port" --listen-address=127.0.0.1 \
        --bind-interfaces --no-resolv --no-hosts --conf-file=/dev/null \
        --address=/dgring-flags.test/127.0.0.1
    dns_pid=$LAST_PID
    start named_listen "$CAT_TOOL" -l 127.0.0.1 0 --count 1 -w 10
    named_pid=$LAST_PID
    port=$(listening_port "$WORK/named_listen.err" "$named_pid") || return 1
    printf 'by name\n' >"$WORK/name.in"
    tries=0
    while [ $tries -lt 50 ] && ! grep -q 'by name' "$WORK/named_listen.out"; do
        run_input named_send "$WORK/name.in" "$CAT_TOOL" --dns-server "127.0.0.1:$dns_port" \
            dgring-flags.test "$port"
        [ "$STATUS" -eq 0 ] && break
        sleep 0.1 # dnsmasq may still be starting
        tries=$((tries + 1))
    done
    wait_bounded "$named_pid" 20
    kill "$dns_pid" 2>/dev/null
    wait_bounded "$dns_pid" 10
    if grep -q '(7 bytes): by name' "$WORK/named_listen.out"; then
        pass "dgcat --dns-server: dgring-flags.test resolved by our dnsmasq"
    else
        fail "dgcat --dns-server against dnsmasq"
        show "$WORK/named_send.err" "$WORK/named_listen.out" "$WORK/dnsmasq.err"
    fi
}

# ---- Measurement options -------------------------------------------------------

check_measurement() {
    start_echo echo_measure -B 127.0.0.1 -A 0 || return 1
    run warm "$BLAST_TOOL" pingpong -c 127.0.0.1 -p "$ECHO_PORT" -t 0.3 -O 0.2 -A 0 -J \
        --full-log "$WORK/rtt.csv"
    if expect_ok warm; then
        warmup=$(json_value "$WORK/warm.out" warmup)
        samples=$(json_value "$WORK/warm.out" rtt_samples)
        packets=$(json_value "$WORK/warm.out" packets)
        if [ "${warmup:-0}" -gt 0 ] && [ "$samples" = "$packets" ]; then
            pass "--warmup: $warmup round trips left out, $samples measured"
        else
            fail "--warmup: warmup '$warmup', samples '$samples', packets '$packets'"
        fi
        lines=$(wc -l <"$WORK/rtt.csv")
        if [ "$(head -n 1 "$WORK/rtt.csv")" = "seq,tx_s,rx_s,rtt_us" ] &&
            [ "$lines" -eq $((samples + 1)) ] &&
            tail -n 1 "$WORK/rtt.csv" | grep -q '^[0-9]*,[0-9]*\.[0-9]\{9\},[0-9]*\.[0-9]\{9\},[0-9.]*$'
        then
            pass "--full-log: a header and $samples samples"
        else
            fail "--full-log: $lines lines for $samples samples"
            head -n 3 "$WORK/rtt.csv"
        fi
    fi
    run ul_log "$BLAST_TOOL" underload -c 127.0.0.1 -p "$ECHO_PORT" -t 0.3 -r 2000 \
        --reply-every 20 -J --full-log "$WORK/ul.csv"
    expect_ok ul_log &&
        expect_key ul_log rtt_samples $(($(wc -l <"$WORK/ul.csv") - 1))
    run bits "$BLAST_TOOL" send -c 127.0.0.1 -p "$ECHO_PORT" -s 64 -b 512k -t 0.3 -J
    if expect_ok bits; then
        packets=$(json_value "$WORK/bits.out" packets)
        seconds=$(json_value "$WORK/bits.out" seconds)
        # 512 kbit/s of 64-byte payloads is 1000 datagrams/s: the pacing
        # never sends more than the rate allows by the time it sends
        if awk -v p="$packets" -v s="$seconds" 'BEGIN { exit !(p > 0 && p <= 1000 * s + 2) }'; then
            pass "--bitrate 512k, 64 bytes: $packets datagrams in $seconds s"
        else
            fail "--bitrate 512k: $packets datagrams in $seconds s, more than 1000/s"
        fi
    fi
    stop_echo
}

# --interval: JSON lines on stdout, then the summary; text lines too.
check_intervals() {
    start iv_recv "$BLAST_TOOL" recv -B 127.0.0.1 -p 0 -i 0.1 -J --idle-ms 500
    iv_pid=$LAST_PID
    port=$(wait_for_port iv_recv "$iv_pid") || return 1
    run iv_send "$BLAST_TOOL" send -c 127.0.0.1 -p "$port" -t 0.4 -r 500 -i 0.1
    wait_bounded "$iv_pid" 30
    if grep -q '^{"interval":1,"mode":"recv","start":0.000,"end":' "$WORK/iv_recv.out" &&
        grep -q '^{"mode":"recv",' "$WORK/iv_recv.out"; then
        pass "recv -i 0.1 -J: $(grep -c '^{"interval"' "$WORK/iv_recv.out") interval lines"
    else
        fail "recv -i 0.1 -J: no interval lines"
        show "$WORK/iv_recv.out"
    fi
    expect_json_lines iv_recv
    if grep -q '^\[ *0.00- *0.1[0-9] s\] [0-9]* packets' "$WORK/iv_send.out"; then
        pass "send -i 0.1: $(head -n 1 "$WORK/iv_send.out")"
    else
        fail "send -i 0.1: no interval lines"
        show "$WORK/iv_send.out"
    fi
}

# dgring-echo -i 0.2: its statistics every 0.2 s (--stats implied), and
# its --sndbuf.
check_echo_interval() {
    start_echo echo_iv -B 127.0.0.1 -i 0.2 --sndbuf 64K -J || return 1
    run pp_iv "$BLAST_TOOL" pingpong -c 127.0.0.1 -p "$ECHO_PORT" -t 0.5
    stop_echo
    if grep -q '^{"mode":"echo-stats","second":1,"elapsed":0.200,' "$WORK/echo_iv.err" &&
        grep -q '^send buffer 131072 bytes (asked 65536; ' "$WORK/echo_iv.err"; then
        pass "echo -i 0.2 --sndbuf 64K: $(grep -c '^{"mode":"echo-stats"' "$WORK/echo_iv.err") lines"
    else
        fail "echo -i 0.2 --sndbuf 64K: no statistics every 0.2 s or no send buffer line"
        show "$WORK/echo_iv.err"
    fi
}

# --threads with --json: interval lines from the main thread, the summary,
# then a line per thread; every line JSON (dgring-echo's too).
check_threads_json() {
    start_echo echo_threads -B 127.0.0.1 -P 2 -J || return 1
    run pp_threads "$BLAST_TOOL" pingpong -c 127.0.0.1 -p "$ECHO_PORT" -t 0.2 -J
    stop_echo
    expect_json_lines echo_threads
    [ "$(grep -c '^{"mode":"echo-thread"' "$WORK/echo_threads.out")" -eq 2 ] ||
        fail "echo -P 2 -J: not two echo-thread lines"
    start th_recv "$BLAST_TOOL" recv -B 127.0.0.1 -p 0 -P 2 -i 0.1 -J --idle-ms 500
    th_pid=$LAST_PID
    port=$(wait_for_port th_recv "$th_pid") || return 1
    run th_send "$BLAST_TOOL" send -c 127.0.0.1 -p "$port" -P 2 -t 0.3 -r 500 -i 0.1 -J
    wait_bounded "$th_pid" 30
    for side in send recv; do
        expect_json_lines "th_$side"
        if grep -q '^{"interval":1,' "$WORK/th_$side.out" &&
            [ "$(grep -c "^{\"mode\":\"$side-thread\"" "$WORK/th_$side.out")" -eq 2 ]; then
            pass "$side -P 2 -i 0.1 -J: interval lines and 2 thread lines"
        else
            fail "$side -P 2 -i 0.1 -J: interval or thread lines missing"
            show "$WORK/th_$side.out"
        fi
    done
}

# ---- --plot ------------------------------------------------------------------

# expect_png NAME FILE: FILE starts with the PNG signature and an IHDR
# chunk whose width and height are not 0.
expect_png() {
    magic=$(od -An -tx1 -N8 "$2" 2>/dev/null | tr -d ' \n')
    ihdr=$(od -An -c -j12 -N4 "$2" 2>/dev/null | tr -d ' \n')
    width=$(od -An -tu1 -j16 -N4 "$2" 2>/dev/null | awk '{ print $1 * 16777216 + $2 * 65536 + $3 * 256 + $4 }')
    height=$(od -An -tu1 -j20 -N4 "$2" 2>/dev/null | awk '{ print $1 * 16777216 + $2 * 65536 + $3 * 256 + $4 }')
    if [ "$magic" = 89504e470d0a1a0a ] && [ "$ihdr" = IHDR ] && [ "${width:-0}" -gt 0 ] &&
        [ "${height:-0}" -gt 0 ]; then
        pass "$1: a PNG of ${width}x$height"
    else
        fail "$1: not a PNG (signature $magic, chunk $ihdr, ${width}x$height)"
    fi
}

check_plot() {
    run no_gnuplot env PATH=/nonexistent "$BLAST_TOOL" pingpong -c 127.0.0.1 -p 9 -t 0.1 \
        --plot "$WORK/none.png"
    if [ "$STATUS" -eq 1 ] && grep -q 'needs gnuplot' "$WORK/no_gnuplot.err" &&
        [ ! -e "$WORK/none.png" ]; then
        pass "--plot without gnuplot: $(cat "$WORK/no_gnuplot.err")"
    else
        fail "--plot without gnuplot: exit $STATUS"
        show "$WORK/no_gnuplot.err"
    fi
    if ! command -v gnuplot >/dev/null 2>&1; then
        skip "--plot: gnuplot is not installed (apt-get install gnuplot-nox)"
        return 0
    fi
    start_echo echo_plot -B 127.0.0.1 || return 1
    run pp_plot "$BLAST_TOOL" pingpong -c 127.0.0.1 -p "$ECHO_PORT" -t 0.3 -J \
        --plot "$WORK/rtt.png"
    expect_ok pp_plot && expect_png "pingpong --plot" "$WORK/rtt.png"
    expect_json_lines pp_plot
    run ul_plot "$BLAST_TOOL" underload -c 127.0.0.1 -p "$ECHO_PORT" -t 0.3 -r 1000 \
        --reply-every 5 --plot "$WORK/ul.png"
    expect_ok ul_plot && expect_png "underload --plot" "$WORK/ul.png"
    stop_echo
    start rate_plot "$BLAST_TOOL" recv -B 127.0.0.1 -p 0 -i 0.1 --plot "$WORK/rate.png" \
        --idle-ms 500
    plot_pid=$LAST_PID
    port=$(wait_for_port rate_plot "$plot_pid") || return 1
    run rate_send "$BLAST_TOOL" send -c 127.0.0.1 -p "$port" -t 0.4 -r 500
    wait_bounded "$plot_pid" 30
    expect_ok rate_plot && expect_png "recv --plot" "$WORK/rate.png"
}

# ---- Honest failures -----------------------------------------------------------

check_failures() {
    dead=$(closed_port "$CAT_TOOL")
    for mode in pingpong underload; do
        run "dead_$mode" "$BLAST_TOOL" "$mode" -c 127.0.0.1 -p "$dead" -t 0.3 --timeout-ms 100
        if [ "$STATUS" -eq 1 ] && grep -q "^dgblast: no replies from 127.0.0.1 port $dead" \
            "$WORK/dead_$mode.err"; then
            pass "$mode to a dead port: $(cat "$WORK/dead_$mode.err")"
        else
            fail "$mode to a dead port: exit $STATUS"
            show "$WORK/dead_$mode.out" "$WORK/dead_$mode.err"
        fi
    done
    grep -q '^  round trip: no samples$' "$WORK/dead_pingpong.out" ||
        fail "pingpong to a dead port: zeros instead of 'no samples'"
    printf 'one\ntwo\n' >"$WORK/two.in"
    for wait in "" "-w 1"; do
        # shellcheck disable=SC2086 # $wait is split on purpose
        run_input refused "$WORK/two.in" "$CAT_TOOL" $wait 127.0.0.1 "$dead"
        if [ "$STATUS" -eq 1 ] && [ "$(wc -l <"$WORK/refused.err")" -eq 1 ] &&
            grep -q "^dgcat: 127.0.0.1 port $dead: recvmsg ECONNREFUSED" "$WORK/refused.err"; then
            pass "dgcat ${wait:+$wait }to a closed port: $(cat "$WORK/refused.err")"
        else
            fail "dgcat ${wait:+$wait }to a closed port: exit $STATUS"
            show "$WORK/refused.err"
        fi
    done
}

check_usage
check_short_options
check_family
check_buffers
check_dns_server
check_measurement
check_intervals
check_echo_interval
check_threads_json
check_plot
check_failures
finish
