#!/bin/sh
# dggame and dgbots on loopback: a server and 50 bots for 2 seconds, with
# 5% of the datagrams dropped on receipt at both ends (a seeded,
# repeatable choice) so the reliable channel has to retransmit. Every bot
# must connect, get state, and see every reliable message delivered in
# order; the server must see every chat in order.
#
# usage: test_game.sh PATH/TO/dggame PATH/TO/dgbots
#
# See ../test_lib.sh for the rules (loopback only, ports read back, no
# timing assertions).

if [ $# -ne 2 ]; then
    echo "usage: $0 DGGAME DGBOTS" >&2
    exit 2
fi
GAME=$1
BOTS=$2
# shellcheck source=tests/tools/test_lib.sh
. "$(dirname "$0")/../test_lib.sh"

# json_true FILE KEY: KEY is true in FILE's JSON line.
json_true() {
    grep -q "\"$2\":true" "$1"
}

# expect_value NAME FILE KEY WANT: KEY of FILE's JSON line is WANT.
expect_value() {
    got=$(json_value "$2" "$3")
    if [ "$got" = "$4" ]; then
        pass "$1: $3 $got"
    else
        fail "$1: $3 is '${got}', expected $4"
    fi
}

# play NAME ADDRESS BOTS DURATION_MS [ARGS...]: a server on ADDRESS and a
# fleet against it; checks both reports.
play() {
    name=$1
    address=$2
    bots=$3
    duration=$4
    shift 4
    start "${name}_server" "$GAME" --address "$address" --port 0 --loss 5 --json "$@"
    server_pid=$LAST_PID
    if ! port=$(wait_for_port "${name}_server" "$server_pid"); then
        fail "$name: the server printed no listening line"
        show "$WORK/${name}_server.out" "$WORK/${name}_server.err"
        return 1
    fi
    run "${name}_bots" "$BOTS" --host "$address" --port "$port" --bind "$address" \
        --bots "$bots" --duration "$duration" --loss 5 --json "$@"
    report="$WORK/${name}_bots.out"
    if [ "$STATUS" -ne 0 ]; then
        fail "$name: dgbots exit $STATUS"
        show "$report" "$WORK/${name}_bots.err"
    else
        pass "$name: $(cat "$report")"
    fi
    expect_value "$name" "$report" connected "$bots"
    expect_value "$name" "$report" with_state "$bots"
    expect_value "$name" "$report" finished "$bots"
    json_true "$report" in_order || fail "$name: not every reliable message arrived in order"
    [ "$(json_value "$report" chats_sent)" = "$(json_value "$report" chats_confirmed)" ] ||
        fail "$name: the server confirmed a different number of chats"
    [ "$(json_value "$report" events_received)" = "$(json_value "$report" events_confirmed)" ] ||
        fail "$name: the bots received a different number of events"
    [ "$(json_value "$report" retransmits)" -gt 0 ] ||
        fail "$name: no retransmission despite the simulated loss"
    [ "$(json_value "$report" rtt_samples)" -gt 0 ] || fail "$name: no round trips measured"
    kill -INT "$server_pid"
    wait_bounded "$server_pid" 10
    totals="$WORK/${name}_server.out"
    if [ "$STATUS" -ne 0 ]; then
        fail "$name: dggame exit $STATUS after SIGINT"
        show "$totals" "$WORK/${name}_server.err"
        return 1
    fi
    pass "$name server: $(grep '^{' "$totals")"
    expect_value "$name server" "$totals" players_seen "$bots"
    expect_value "$name server" "$totals" chat_order_errors 0
    expect_value "$name server" "$totals" chat_mismatches 0
}

expect_help "dggame --help" "$GAME" --help
expect_help "dgbots --help" "$BOTS" --help
expect_usage "dgbots without --host" "$BOTS" --port 1
expect_usage "dggame bad port" "$GAME" --port 70000
expect_usage "dggame loss 90" "$GAME" --loss 90
play game4 127.0.0.1 50 2000
if have_ipv6_loopback; then
    play game6 ::1 10 1000 --udp6
else
    skip "IPv6 game: no ::1 on this machine"
fi
finish
