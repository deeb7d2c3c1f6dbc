#!/bin/sh
# dggame and dgbots through dgring-impair (tools/impair.h), each bot a flow
# of the proxy:
#  - 10% loss, 10% reordering and 10% duplication in both directions: every
#    bot connects, gets state, and sees every reliable message delivered
#    in order (its FAREWELL counts match), the server sees every chat in
#    order, and the proxy's report shows it really lost, reordered and
#    duplicated datagrams both ways;
#  - 25 ms of delay in each direction: each PING and its PONG are held at
#    least 25 ms by the proxy (which never lets a datagram go early), so
#    every round trip the bots measure is at least 50 ms: the smallest
#    (rtt_min_us) and so every percentile is >= 50000 us. Only this lower
#    bound is checked; it holds however loaded the machine is.
#
# usage: test_game_impair.sh PATH/TO/dggame PATH/TO/dgbots PATH/TO/dgring-impair
#
# See ../test_lib.sh for the rules (loopback only, ports read back, no
# timing assertions).

if [ $# -ne 3 ]; then
    echo "usage: $0 DGGAME DGBOTS DGRING_IMPAIR" >&2
    exit 2
fi
GAME=$1
BOTS=$2
IMPAIR=$3
# shellcheck source=tests/tools/test_lib.sh
. "$(dirname "$0")/../test_lib.sh"

# value FILE KEY: KEY of the last JSON line of FILE that has it.
value() {
    grep "\"$2\":" "$1" | tail -n 1 | sed -n "s/.*\"$2\":\([0-9.]*\).*/\1/p"
}

# at_least NAME FILE KEY MIN
at_least() {
    got=$(value "$2" "$3")
    got=${got%%.*}
    if [ -n "$got" ] && [ "$got" -ge "$4" ]; then
        pass "$1: $3 $got >= $4"
    else
        fail "$1: $3 is '${got}', expected >= $4"
    fi
}

# equal NAME FILE KEY WANT
equal() {
    got=$(value "$2" "$3")
    if [ "$got" = "$4" ]; then
        pass "$1: $3 $got"
    else
        fail "$1: $3 is '${got}', expected $4"
    fi
}

# stop NAME PID: SIGINT and a clean exit.
stop() {
    kill -INT "$2"
    wait_bounded "$2" 30
    [ "$STATUS" -eq 0 ] || fail "$1: exit $STATUS after SIGINT"
}

# play NAME BOTS DURATION_MS PROXY_ARGS...: a server, the proxy in front
# of it and a fleet through the proxy; the reports are NAME_bots.out,
# NAME_server.out and NAME.json (the proxy's).
play() {
    name=$1
    bots=$2
    duration=$3
    shift 3
    start "${name}_server" "$GAME" --address 127.0.0.1 --port 0 --json
    server_pid=$LAST_PID
    if ! game_port=$(wait_for_port "${name}_server" "$server_pid"); then
        fail "$name: the server printed no listening line"
        return 1
    fi
    start "${name}_proxy" "$IMPAIR" --address 127.0.0.1 --port 0 --target-host 127.0.0.1 \
        --target-port "$game_port" --report "$WORK/$name.json" "$@"
    proxy_pid=$LAST_PID
    if ! proxy_port=$(wait_for_port "${name}_proxy" "$proxy_pid"); then
        fail "$name: the proxy printed no listening line"
        show "$WORK/${name}_proxy.err"
        return 1
    fi
    run "${name}_bots" "$BOTS" --host 127.0.0.1 --port "$proxy_port" --bind 127.0.0.1 \
        --bots "$bots" --duration "$duration" --json
    if [ "$STATUS" -ne 0 ]; then
        fail "$name: dgbots exit $STATUS"
        show "$WORK/${name}_bots.out" "$WORK/${name}_bots.err"
    else
        pass "$name: $(cat "$WORK/${name}_bots.out")"
    fi
    stop "$name proxy" "$proxy_pid"
    stop "$name server" "$server_pid"
    pass "$name proxy: $(grep '"mode":"impair"' "$WORK/$name.json")"
}

# ---- Loss, reordering and duplication -------------------------------------------

if play hostile 20 2000 --loss 10 --reorder 10 --duplicate 10 --seed 4; then
    bots="$WORK/hostile_bots.out"
    server="$WORK/hostile_server.out"
    proxy="$WORK/hostile.json"
    equal hostile "$bots" connected 20
    equal hostile "$bots" with_state 20
    equal hostile "$bots" finished 20
    grep -q '"in_order":true' "$bots" || fail "hostile: not every reliable message in order"
    [ "$(value "$bots" chats_sent)" = "$(value "$bots" chats_confirmed)" ] ||
        fail "hostile: the server confirmed a different number of chats"
    [ "$(value "$bots" events_received)" = "$(value "$bots" events_confirmed)" ] ||
        fail "hostile: the bots received a different number of events"
    at_least hostile "$bots" retransmits 1
    at_least hostile "$bots" duplicates 1
    equal "hostile server" "$server" players_seen 20
    equal "hostile server" "$server" chat_order_errors 0
    equal "hostile server" "$server" chat_mismatches 0
    equal "hostile proxy" "$proxy" flows 20
    for direction in up down; do
        at_least "hostile proxy" "$proxy" "${direction}_dropped_loss" 1
        at_least "hostile proxy" "$proxy" "${direction}_reordered" 1
        at_least "hostile proxy" "$proxy" "${direction}_duplicated" 1
    done
fi

# ---- Delay: the round trips reflect it ------------------------------------------------

if play delayed 10 1500 --delay 25 --seed 5; then
    bots="$WORK/delayed_bots.out"
    equal delayed "$bots" finished 10
    at_least delayed "$bots" rtt_samples 1
    for key in rtt_min_us rtt_p50_us rtt_p90_us rtt_p99_us rtt_max_us; do
        at_least "delayed (2 x 25 ms)" "$bots" "$key" 50000
    done
    equal "delayed proxy" "$WORK/delayed.json" up_forwarded \
        "$(value "$WORK/delayed.json" up_received)"
fi
finish
