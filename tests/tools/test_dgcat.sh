#!/bin/sh
# End-to-end test of dgcat on loopback: sending lines and raw chunks,
# listening in every output format, replies, -w, --count, IPv6, host names
# (localhost only), broadcast and multicast on the loopback interface, and
# the errors a user meets first.
#
# usage: test_dgcat.sh PATH/TO/dgcat PATH/TO/dgring-echo
#
# See test_lib.sh for the rules (loopback only, ports read back, no
# timing assertions).

if [ $# -ne 2 ]; then
    echo "usage: $0 DGCAT DGRING_ECHO" >&2
    exit 2
fi
CAT_TOOL=$1
ECHO_TOOL=$2
# shellcheck source=tests/tools/test_lib.sh
. "$(dirname "$0")/test_lib.sh"

# start_listener NAME ADDRESS ARGS...: dgcat -l ADDRESS 0 ARGS in the
# background; sets LISTEN_PID and LISTEN_PORT, or fails.
start_listener() {
    name=$1
    address=$2
    shift 2
    start "$name" "$CAT_TOOL" -l "$@" "$address" 0
    LISTEN_PID=$LAST_PID
    if ! LISTEN_PORT=$(listening_port "$WORK/$name.err" "$LISTEN_PID"); then
        fail "$name: no listening line"
        show "$WORK/$name.out" "$WORK/$name.err"
        return 1
    fi
}

# end_listener NAME: the listener must end by itself (--count or -w) with
# status 0.
end_listener() {
    wait_bounded "$LISTEN_PID" 20
    if [ "$STATUS" -ne 0 ]; then
        fail "$1: listener exit $STATUS"
        show "$WORK/$1.out" "$WORK/$1.err"
        return 1
    fi
}

# expect_output NAME EXPECTED_FILE: NAME.out, with the sender's port
# replaced by PORT, must equal EXPECTED_FILE.
expect_output() {
    sed 's/:[0-9][0-9]* (/:PORT (/; s/"port":[0-9]*/"port":PORT/' "$WORK/$1.out" \
        >"$WORK/$1.norm"
    if cmp -s "$WORK/$1.norm" "$2"; then
        pass "$1: output as expected"
    else
        fail "$1: unexpected output"
        show "$WORK/$1.norm" "$2"
    fi
}

# send_input NAME INPUT ARGS...: dgcat ARGS with stdin from INPUT must
# exit 0.
send_input() {
    name=$1
    input=$2
    shift 2
    run_input "$name" "$input" "$CAT_TOOL" "$@"
    if [ "$STATUS" -ne 0 ]; then
        fail "$name: exit $STATUS"
        show "$WORK/$name.out" "$WORK/$name.err"
        return 1
    fi
}

check_usage() {
    expect_help "dgcat --help" "$CAT_TOOL" --help
    expect_usage "bad port" "$CAT_TOOL" 127.0.0.1 abc
    expect_usage "port 0 to send to" "$CAT_TOOL" 127.0.0.1 0
    expect_usage "listen port 70000" "$CAT_TOOL" -l 70000
    expect_usage "unknown option" "$CAT_TOOL" --bogus 127.0.0.1 9
    expect_usage "no arguments" "$CAT_TOOL"
    expect_usage "listen without port" "$CAT_TOOL" -l
    expect_usage "-4 with an IPv6 host" "$CAT_TOOL" -4 ::1 9
    expect_usage "-4 and -6" "$CAT_TOOL" -4 -6 localhost 9
    expect_usage "bad host" "$CAT_TOOL" 'no host' 9
    expect_usage "bad format" "$CAT_TOOL" -l 0 --format xml
    expect_usage "--join without -l" "$CAT_TOOL" --join 239.1.2.3 127.0.0.1 9
    expect_usage "unicast group" "$CAT_TOOL" -l 0 --join 127.0.0.1
    expect_usage "raw size 0" "$CAT_TOOL" --raw 0 127.0.0.1 9
    expect_usage "wait abc" "$CAT_TOOL" -w abc 127.0.0.1 9
    expect_usage "--raw with -l" "$CAT_TOOL" -l 0 --raw 10
}

# A host name that does not resolve: one line naming it, exit 1. The DNS
# server is a closed port on 127.0.0.1, so the machine's DNS is never asked.
check_unknown_host() {
    dns_port=$(closed_port "$CAT_TOOL")
    printf 'x\n' >"$WORK/x.in"
    DGRING_DNS_SERVERS="127.0.0.1:$dns_port"
    export DGRING_DNS_SERVERS
    run_input unknown "$WORK/x.in" "$CAT_TOOL" no-such-host.invalid 9
    unset DGRING_DNS_SERVERS
    if [ "$STATUS" -eq 1 ] && [ "$(wc -l <"$WORK/unknown.err")" -eq 1 ] &&
        grep -q "no-such-host.invalid" "$WORK/unknown.err"; then
        pass "unknown host: $(cat "$WORK/unknown.err")"
    else
        fail "unknown host: exit $STATUS"
        show "$WORK/unknown.err"
    fi
}

# Lines to a listener, through localhost; every format.
check_formats() {
    printf 'hello\nwor\tld\n\n\377\001end' >"$WORK/lines.in"
    for format in text json hex raw; do
        start_listener "listen_$format" 127.0.0.1 --count 4 --format "$format" || continue
        send_input "send_$format" "$WORK/lines.in" localhost "$LISTEN_PORT" || continue
        end_listener "listen_$format" || continue
    done
    cat >"$WORK/text.want" <<'EOF'
127.0.0.1:PORT (5 bytes): hello
127.0.0.1:PORT (6 bytes): wor\tld
127.0.0.1:PORT (0 bytes): 
127.0.0.1:PORT (5 bytes): \xff\x01end
EOF
    cat >"$WORK/json.want" <<'EOF'
{"from":"127.0.0.1","port":PORT,"size":5,"data":"hello"}
{"from":"127.0.0.1","port":PORT,"size":6,"data":"wor\tld"}
{"from":"127.0.0.1","port":PORT,"size":0,"data":""}
{"from":"127.0.0.1","port":PORT,"size":5,"data":"ff01656e64","encoding":"hex"}
EOF
    cat >"$WORK/hex.want" <<'EOF'
127.0.0.1:PORT (5 bytes)
  0000  68 65 6c 6c 6f                                    |hello|
127.0.0.1:PORT (6 bytes)
  0000  77 6f 72 09 6c 64                                 |wor.ld|
127.0.0.1:PORT (0 bytes)
127.0.0.1:PORT (5 bytes)
  0000  ff 01 65 6e 64                                    |..end|
EOF
    printf 'hellowor\tld\377\001end' >"$WORK/raw.want"
    expect_output listen_text "$WORK/text.want"
    expect_output listen_json "$WORK/json.want"
    expect_output listen_hex "$WORK/hex.want"
    expect_output listen_raw "$WORK/raw.want"
}

# --raw chunks, --keep-newline, and a line longer than a datagram.
check_chunking() {
    printf '0123456789abcdefghijKLMNO' >"$WORK/raw25.in"
    start_listener chunks 127.0.0.1 --count 3 || return 1
    send_input raw_send "$WORK/raw25.in" --raw 10 127.0.0.1 "$LISTEN_PORT"
    end_listener chunks
    printf '127.0.0.1:PORT (10 bytes): 0123456789\n127.0.0.1:PORT (10 bytes): abcdefghij\n127.0.0.1:PORT (5 bytes): KLMNO\n' \
        >"$WORK/chunks.want"
    expect_output chunks "$WORK/chunks.want"

    printf 'a\nb\n' >"$WORK/ab.in"
    start_listener newline 127.0.0.1 --count 2 || return 1
    send_input newline_send "$WORK/ab.in" --keep-newline 127.0.0.1 "$LISTEN_PORT"
    end_listener newline
    printf '127.0.0.1:PORT (2 bytes): a\\n\n127.0.0.1:PORT (2 bytes): b\\n\n' >"$WORK/newline.want"
    expect_output newline "$WORK/newline.want"

    head -c 70000 /dev/zero | tr '\0' 'a' >"$WORK/long.in"
    start_listener long 127.0.0.1 --count 2 --format json || return 1
    send_input long_send "$WORK/long.in" 127.0.0.1 "$LISTEN_PORT"
    end_listener long
    if [ "$(grep -o '"size":[0-9]*' "$WORK/long.out" | tr '\n' ' ')" = '"size":65507 "size":4493 ' ]; then
        pass "a 70000-byte line goes as 65507 + 4493 bytes"
    else
        fail "long line: sizes $(grep -o '"size":[0-9]*' "$WORK/long.out" | tr '\n' ' ')"
    fi
}

# Replies are printed; -w waits for them, --count stops at the first.
check_replies() {
    start echo "$ECHO_TOOL" --port 0 --address 127.0.0.1
    echo_pid=$LAST_PID
    if ! echo_port=$(wait_for_port echo "$echo_pid"); then
        fail "echo: no listening line"
        return 1
    fi
    printf 'ping\npong\n' >"$WORK/pp.in"
    send_input replies "$WORK/pp.in" -w 1 --format raw 127.0.0.1 "$echo_port" &&
        if [ "$(cat "$WORK/replies.out")" = "pingpong" ]; then
            pass "replies printed with -w"
        else
            fail "replies: got '$(cat "$WORK/replies.out")'"
        fi
    send_input count_one "$WORK/pp.in" --count 1 --format json localhost "$echo_port" &&
        if [ "$(grep -c '"data":"ping"' "$WORK/count_one.out")" -eq 1 ] &&
            [ "$(wc -l <"$WORK/count_one.out")" -eq 1 ]; then
            pass "--count 1 stops after one reply"
        else
            fail "--count 1: $(cat "$WORK/count_one.out")"
        fi
    run_input busy /dev/null "$CAT_TOOL" -l 127.0.0.1 "$echo_port"
    if [ "$STATUS" -eq 1 ] && grep -q '^dgcat: bind EADDRINUSE' "$WORK/busy.err"; then
        pass "listen on a taken port: $(cat "$WORK/busy.err")"
    else
        fail "listen on a taken port: exit $STATUS"
        show "$WORK/busy.err"
    fi
    kill -INT "$echo_pid"
    wait_bounded "$echo_pid" 10
}

# Ending: an empty stdin sends nothing; -w ends an idle listener; SIGINT
# ends one with status 0.
check_endings() {
    send_input empty /dev/null 127.0.0.1 9 && pass "empty stdin: exit 0"
    start_listener idle 127.0.0.1 -w 0.3 || return 1
    end_listener idle && pass "-w ends an idle listener"
    start_listener interrupted 127.0.0.1 || return 1
    kill -INT "$LISTEN_PID"
    end_listener interrupted && pass "SIGINT ends a listener with status 0"
}

check_ipv6() {
    if ! have_ipv6_loopback; then
        skip "IPv6: no ::1 on this machine"
        return 0
    fi
    printf 'six\n' >"$WORK/six.in"
    start_listener listen6 ::1 --count 1 --format json || return 1
    send_input send6 "$WORK/six.in" ::1 "$LISTEN_PORT"
    end_listener listen6
    if grep -q '^{"from":"::1","port":[0-9]*,"size":3,"data":"six"}$' "$WORK/listen6.out"; then
        pass "IPv6: $(cat "$WORK/listen6.out")"
    else
        fail "IPv6: $(cat "$WORK/listen6.out")"
    fi
}

# Broadcast on the loopback network: refused without -b, delivered with.
check_broadcast() {
    printf 'all\n' >"$WORK/all.in"
    start_listener bcast 127.255.255.255 --count 1 -w 5 || return 1
    run_input no_b "$WORK/all.in" "$CAT_TOOL" 127.255.255.255 "$LISTEN_PORT"
    if [ "$STATUS" -eq 1 ] && grep -q 'EACCES' "$WORK/no_b.err"; then
        pass "broadcast without -b: $(cat "$WORK/no_b.err")"
    else
        fail "broadcast without -b: exit $STATUS"
        show "$WORK/no_b.err"
    fi
    send_input with_b "$WORK/all.in" -b 127.255.255.255 "$LISTEN_PORT"
    end_listener bcast
    if grep -q '(3 bytes): all' "$WORK/bcast.out"; then
        pass "broadcast with -b received"
    else
        fail "broadcast with -b: nothing received"
        show "$WORK/bcast.out" "$WORK/bcast.err"
    fi
}

# Multicast on the loopback interface; skipped where lo cannot carry it.
check_multicast() {
    group=239.255.77.77
    printf 'many\n' >"$WORK/many.in"
    start_listener mcast "$group" --join "$group" --iface 127.0.0.1 --count 1 -w 5 || return 1
    run_input mcast_send "$WORK/many.in" "$CAT_TOOL" --iface 127.0.0.1 "$group" "$LISTEN_PORT"
    wait_bounded "$LISTEN_PID" 20
    if grep -q '(4 bytes): many' "$WORK/mcast.out"; then
        pass "multicast $group on lo received"
    elif [ "$STATUS" -eq 0 ] || grep -q 'ENETUNREACH\|ENODEV' "$WORK/mcast_send.err"; then
        skip "multicast: the loopback interface does not deliver $group here"
        show "$WORK/mcast_send.err"
    else
        fail "multicast: listener exit $STATUS"
        show "$WORK/mcast.err" "$WORK/mcast_send.err"
    fi
}

check_usage
check_unknown_host
check_formats
check_chunking
check_replies
check_endings
check_ipv6
check_broadcast
check_multicast
finish
