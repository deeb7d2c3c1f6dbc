#!/bin/sh
# Hostile peers: one datagram from each of 100,000 distinct source
# addresses (127.1.0.0 and up, set per datagram with IP_PKTINFO by
# source_flood.c) at dggame and at dgstatsd. Per-peer state and metric
# names are capped by an option, so memory stays bounded:
#  - dggame --max-players 1000: every datagram that reached it was a HELLO
#    from a new address, so players_seen + refused = the HELLOs it handled
#    (datagrams minus the barrier's PINGs), players_seen = min(cap, HELLOs)
#    and the peak never passes the cap;
#  - dgstatsd --max-metrics 1000: every datagram is one line naming a new
#    counter, so after the flushes account for every datagram that reached
#    it (sent minus the kernel's drops in /proc/net/udp), the metrics kept
#    = min(cap, lines) and the values refused = lines - kept;
#  - each server's RSS (VmRSS of /proc/PID/status) grows by less than a
#    fixed allowance plus the cap times a per-entry allowance: a few times
#    what one player (its reliable channel and what the library holds for
#    its sends) or one metric (a 150-character name) costs, measured here
#    at about 14 KiB and 0.3 KiB; without the cap 100,000 entries would
#    need hundreds of MiB (game) or about 25 MiB (statsd), far over it.
# The figures are printed. Nothing here depends on timing: the kernel may
# drop part of the flood, and the exact checks count only what arrived.
#
# usage: test_flood.sh PATH/TO/dggame PATH/TO/dgstatsd PATH/TO/source_flood

if [ $# -ne 3 ]; then
    echo "usage: $0 DGGAME DGSTATSD SOURCE_FLOOD" >&2
    exit 2
fi
GAME=$1
STATSD=$2
FLOOD=$3
# shellcheck source=tests/tools/test_lib.sh
. "$(dirname "$0")/../test_lib.sh"

SOURCES=100000
CAP=1000
GAME_FIXED_KIB=16384
GAME_PER_PLAYER_KIB=32
STATSD_FIXED_KIB=8192
STATSD_PER_METRIC_KIB=1

rss_kib() {
    awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"
}


# expect_le DESCRIPTION GOT LIMIT
expect_le() {
    if [ -n "$2" ] && [ "$2" -le "$3" ]; then
        pass "$1: $2 <= $3"
    else
        fail "$1: '$2', expected <= $3"
    fi
}

# key FILE KEY: KEY's number in the one JSON line of FILE.
key() {
    sed -n "s/.*\"$2\":\([0-9]*\).*/\1/p" "$1" | tail -n 1
}

min() {
    if [ "$1" -lt "$2" ]; then echo "$1"; else echo "$2"; fi
}

flood_game() {
    start game "$GAME" --address 127.0.0.1 --port 0 --json --max-players "$CAP" \
        --timeout-ms 3600000
    pid=$LAST_PID
    if ! port=$(wait_for_port game "$pid"); then
        fail "dggame: no listening line"
        show "$WORK/game.err"
        return
    fi
    before=$(rss_kib "$pid")
    run flood_game "$FLOOD" "$port" "$SOURCES" game
    [ "$STATUS" -eq 0 ] || fail "source_flood game: exit $STATUS"
    show "$WORK/flood_game.out" "$WORK/flood_game.err"
    after=$(rss_kib "$pid")
    kill -INT "$pid"
    wait_bounded "$pid" 30
    [ "$STATUS" -eq 0 ] || fail "dggame: exit $STATUS after SIGINT"
    out=$WORK/game.out
    grep '^{' "$out" >"$WORK/game.json"
    echo "dggame: RSS ${before} KiB before, ${after} KiB after the flood"
    show "$WORK/game.json"
    pings=$(sed -n 's/^pings //p' "$WORK/flood_game.out")
    hellos=$(($(key "$WORK/game.json" datagrams) - ${pings:-0}))
    seen=$(key "$WORK/game.json" players_seen)
    refused=$(key "$WORK/game.json" refused)
    expect_equal "dggame: players_seen + refused = HELLOs handled" "$((seen + refused))" "$hellos"
    expect_equal "dggame: players_seen = min(cap, HELLOs)" "$seen" "$(min "$CAP" "$hellos")"
    expect_le "dggame: players_peak" "$(key "$WORK/game.json" players_peak)" "$CAP"
    expect_equal "dggame: strangers" "$(key "$WORK/game.json" strangers)" 0
    [ "$hellos" -gt "$CAP" ] || fail "dggame: only $hellos HELLOs arrived, the cap was not reached"
    expect_le "dggame: RSS growth (KiB)" "$((after - before))" \
        "$((GAME_FIXED_KIB + CAP * GAME_PER_PLAYER_KIB))"
}

flood_statsd() {
    json=$WORK/statsd.json
    start statsd "$STATSD" --address 127.0.0.1 --port 0 --interval 100 --output "$json" \
        --max-metrics "$CAP" --rcvbuf 8388608
    pid=$LAST_PID
    if ! port=$(listening_port "$WORK/statsd.err" "$pid"); then
        fail "dgstatsd: no listening line"
        show "$WORK/statsd.err"
        return
    fi
    before=$(rss_kib "$pid")
    run flood_statsd "$FLOOD" "$port" "$SOURCES" statsd
    [ "$STATUS" -eq 0 ] || fail "source_flood statsd: exit $STATUS"
    # Until the flushes account for every datagram that arrived (30 s).
    tries=0
    while :; do
        arrived=$((SOURCES - $(proc_udp_drops "$port")))
        [ "$(json_sum "$json" datagrams)" -eq "$arrived" ] && break
        tries=$((tries + 1))
        if [ $tries -ge 300 ]; then
            fail "dgstatsd: flushes count $(json_sum "$json" datagrams) datagrams, $arrived arrived"
            break
        fi
        sleep 0.1
    done
    after=$(rss_kib "$pid")
    kill -INT "$pid"
    wait_bounded "$pid" 30
    [ "$STATUS" -eq 0 ] || fail "dgstatsd: exit $STATUS after SIGINT"
    echo "dgstatsd: RSS ${before} KiB before, ${after} KiB after the flood"
    show "$WORK/statsd.err"
    lines=$(json_sum "$json" lines)
    kept=$(key "$json" metrics)
    expect_equal "dgstatsd: lines = datagrams" "$lines" "$(json_sum "$json" datagrams)"
    expect_equal "dgstatsd: metrics kept = min(cap, lines)" "$kept" "$(min "$CAP" "$lines")"
    expect_equal "dgstatsd: dropped (flushes) = lines - kept" "$(json_sum "$json" dropped)" \
        "$((lines - kept))"
    expect_equal "dgstatsd: exit report" \
        "$(grep 'metrics kept' "$WORK/statsd.err")" \
        "dgstatsd: $kept metrics kept (--max-metrics $CAP), $((lines - kept)) values refused"
    [ "$lines" -gt "$CAP" ] || fail "dgstatsd: only $lines lines arrived, the cap was not reached"
    expect_le "dgstatsd: RSS growth (KiB)" "$((after - before))" \
        "$((STATSD_FIXED_KIB + CAP * STATSD_PER_METRIC_KIB))"
}

flood_game
flood_statsd
finish
