#!/bin/sh
# dgring-impair, checked by a peer that shares no code with it
# (impair_peer.c, plain sockets): numbered datagrams go from the peer's
# clients through the proxy to the peer's receiver (and back with
# --echo), and what the receiver counts must equal, exactly, what the
# proxy reports it did: forwarded, duplicated, reordered, corrupted,
# dropped by cause, flows and evictions. Same seed, same decisions; the
# one time check is a lower bound (no datagram arrives before its delay).
#
# usage: test_impair.sh PATH/TO/dgring-impair PATH/TO/impair_peer
#
# See test_lib.sh for the rules (loopback only, ports read back, no
# timing assertions).

if [ $# -ne 2 ]; then
    echo "usage: $0 DGRING_IMPAIR IMPAIR_PEER" >&2
    exit 2
fi
IMPAIR=$1
PEER=$2
# shellcheck source=tests/tools/test_lib.sh
. "$(dirname "$0")/test_lib.sh"
trap '' PIPE # a peer that died must fail a check, not kill the script

# wait_long FILE PATTERN PID SECONDS: as wait_for_line, for longer runs.
wait_long() {
    tries=$(($4 * 10))
    while [ "$tries" -gt 0 ]; do
        grep -q "$2" "$1" 2>/dev/null && return 0
        kill -0 "$3" 2>/dev/null || { grep -q "$2" "$1" 2>/dev/null; return $?; }
        sleep 0.1
        tries=$((tries - 1))
    done
    return 1
}

# total FILE KEY: KEY of the proxy's totals line in its report FILE.
total() {
    grep '"mode":"impair"' "$1" | sed -n "s/.*\"$2\":\([0-9]*\).*/\1/p"
}

# peer KEY: KEY of the peer's report (its JSON line) in this run.
peer() {
    grep '^{' "$WORK/${RUN}_peer.out" | sed -n "s/.*\"$1\":\"*\([0-9a-f]*\).*/\1/p"
}

# through NAME ADDRESS PEER_ARGS... -- PROXY_ARGS...: one run. The peer
# sends, the proxy is stopped (SIGINT: held datagrams still leave on
# time), the peer is told what the proxy forwarded and waits for exactly
# that. Sets RUN=NAME; the proxy's report is $WORK/NAME.json. Returns 1
# (after a failure) if a step went wrong.
through() {
    RUN=$1
    address=$2
    shift 2
    peer_args=""
    while [ "$1" != "--" ]; do
        peer_args="$peer_args $1"
        shift
    done
    shift
    rm -f "$WORK/$RUN.in"
    mkfifo "$WORK/$RUN.in"
    # shellcheck disable=SC2086 # peer_args are words
    start_input "${RUN}_peer" "$WORK/$RUN.in" "$PEER" $peer_args
    peer_pid=$LAST_PID
    exec 3>"$WORK/$RUN.in"
    through_steps "$address" "$@"
    ok=$?
    exec 3>&-
    wait_bounded "$peer_pid" 60
    if [ "$ok" -ne 0 ]; then
        show "$WORK/${RUN}_peer.out" "$WORK/${RUN}_peer.err" "$WORK/${RUN}_proxy.out" \
            "$WORK/${RUN}_proxy.err"
        return 1
    fi
    if [ "$STATUS" -ne 0 ]; then
        fail "$RUN: the peer did not get what the proxy forwarded (exit $STATUS)"
        show "$WORK/${RUN}_peer.out" "$WORK/${RUN}_peer.err" "$WORK/$RUN.json"
        return 1
    fi
    pass "$RUN: peer $(grep '^{' "$WORK/${RUN}_peer.out")"
}

through_steps() {
    address=$1
    shift
    if ! target=$(wait_for_port "${RUN}_peer" "$peer_pid"); then
        fail "$RUN: the peer printed no listening line"
        return 1
    fi
    start "${RUN}_proxy" "$IMPAIR" --address "$address" --port 0 --target-host "$address" \
        --target-port "$target" --report "$WORK/$RUN.json" "$@"
    proxy_pid=$LAST_PID
    if ! port=$(wait_for_port "${RUN}_proxy" "$proxy_pid"); then
        fail "$RUN: the proxy printed no listening line"
        return 1
    fi
    echo "$port" >&3
    if ! wait_long "$WORK/${RUN}_peer.out" '^sent ' "$peer_pid" 60; then
        fail "$RUN: the peer did not finish sending"
        return 1
    fi
    kill -INT "$proxy_pid"
    wait_bounded "$proxy_pid" 30
    if [ "$STATUS" -ne 0 ] || ! grep -q '"mode":"impair"' "$WORK/$RUN.json"; then
        fail "$RUN: dgring-impair exit $STATUS, no totals"
        return 1
    fi
    echo "$(total "$WORK/$RUN.json" up_forwarded) $(total "$WORK/$RUN.json" down_forwarded)" >&3
}

# same DESCRIPTION GOT WANT: an exact count.
same() {
    if [ -n "$2" ] && [ "$2" = "$3" ]; then
        pass "$RUN: $1 $2"
    else
        fail "$RUN: $1 is '$2', expected '$3'"
    fi
}

# conserved DIRECTION: received + duplicated == forwarded + send_errors
# + every drop, in the totals of this run.
conserved() {
    f="$WORK/$RUN.json"
    in=$(($(total "$f" "$1_received") + $(total "$f" "$1_duplicated")))
    out=$(total "$f" "$1_forwarded")
    for key in send_errors dropped_size dropped_loss dropped_burst dropped_queue \
        dropped_evicted dropped_closing; do
        out=$((out + $(total "$f" "$1_$key")))
    done
    same "$1: received + duplicated vs forwarded + errors + drops" "$in" "$out"
}

# between DESCRIPTION VALUE LOW HIGH: a count from a fixed seed, in range.
between() {
    if [ -n "$2" ] && [ "$2" -ge "$3" ] && [ "$2" -le "$4" ]; then
        pass "$RUN: $1 $2"
    else
        fail "$RUN: $1 is '$2', expected $3..$4"
    fi
}

# ---- Command line ------------------------------------------------------------

expect_help "dgring-impair --help" "$IMPAIR" --help
expect_usage "no target" "$IMPAIR" --port 0
expect_usage "no port" "$IMPAIR" --target-host 127.0.0.1 --target-port 9
expect_usage "loss over 100" "$IMPAIR" --port 0 --target-host 127.0.0.1 --target-port 9 \
    --loss 100.5
expect_usage "negative loss" "$IMPAIR" --port 0 --target-host 127.0.0.1 --target-port 9 \
    --loss -1
expect_usage "burst-exit without burst-enter" "$IMPAIR" --port 0 --target-host 127.0.0.1 \
    --target-port 9 --burst-exit 10
expect_usage "reorder-depth without reorder" "$IMPAIR" --port 0 --target-host 127.0.0.1 \
    --target-port 9 --reorder-depth 3
expect_usage "udp6 with an IPv4 target" "$IMPAIR" --port 0 --udp6 --target-host 127.0.0.1 \
    --target-port 9
expect_usage "bad direction" "$IMPAIR" --port 0 --target-host 127.0.0.1 --target-port 9 \
    --direction sideways
expect_usage "target port 0" "$IMPAIR" --port 0 --target-host 127.0.0.1 --target-port 0

# ---- Runs ---------------------------------------------------------------------

# Nothing impaired, three clients, replies: every datagram both ways.
if through clean 127.0.0.1 --count 3000 --flows 3 --echo -- --seed 1 --rcvbuf 262144; then
    same "received" "$(peer received)" 3000
    same "returned" "$(peer returned)" 3000
    same "flows" "$(total "$WORK/clean.json" flows)" 3
    same "flow records" "$(grep -c '"end":"exit"' "$WORK/clean.json")" 3
    same "reordered" "$(peer reordered)" 0
    same "down received" "$(total "$WORK/clean.json" down_received)" 3000
    conserved up
    conserved down
    if grep -q '^  down received 3000 ' "$WORK/clean_proxy.out"; then
        pass "clean: the text totals"
    else
        fail "clean: no text totals on stdout"
        show "$WORK/clean_proxy.out"
    fi
fi

# 10% loss, seeded: the receiver gets exactly what the proxy forwarded.
if through loss 127.0.0.1 --count 10000 -- --loss 10 --seed 7; then
    f="$WORK/loss.json"
    same "received vs forwarded" "$(peer received)" "$(total "$f" up_forwarded)"
    same "duplicates" "$(peer duplicates)" 0
    between "dropped (loss)" "$(total "$f" up_dropped_loss)" 800 1200
    conserved up
    loss_digest=$(peer digest)
    loss_dropped=$(total "$f" up_dropped_loss)
fi
# The same seed again: the same datagrams lost; another seed: others.
if through loss_again 127.0.0.1 --count 10000 -- --loss 10 --seed 7; then
    same "dropped, as with the same seed before" "$(total "$WORK/loss_again.json" \
        up_dropped_loss)" "${loss_dropped:-}"
    same "digest of what arrived, as before" "$(peer digest)" "${loss_digest:-}"
fi
if through loss_other 127.0.0.1 --count 10000 -- --loss 10 --seed 8; then
    if [ "$(peer digest)" != "${loss_digest:-}" ]; then
        pass "loss_other: another seed, other datagrams lost"
    else
        fail "loss_other: seed 8 lost the same datagrams as seed 7"
    fi
fi

# Duplicates and reordering, two flows: the receiver's counts are the
# proxy's.
if through dupreorder 127.0.0.1 --count 6000 --flows 2 -- --duplicate 10 --reorder 10 \
    --reorder-depth 2 --seed 3; then
    f="$WORK/dupreorder.json"
    same "received vs forwarded" "$(peer received)" "$(total "$f" up_forwarded)"
    same "duplicates" "$(peer duplicates)" "$(total "$f" up_duplicated)"
    same "reordered" "$(peer reordered)" "$(total "$f" up_reordered)"
    between "duplicated" "$(total "$f" up_duplicated)" 400 800
    between "reordered" "$(total "$f" up_reordered)" 400 800
    conserved up
fi

# Loss bursts (Gilbert-Elliott) with independent loss on top.
if through bursts 127.0.0.1 --count 5000 -- --loss 1 --burst-enter 2 --burst-exit 25 \
    --seed 11; then
    f="$WORK/bursts.json"
    same "received vs forwarded" "$(peer received)" "$(total "$f" up_forwarded)"
    between "dropped in bursts" "$(total "$f" up_dropped_burst)" 200 600
    conserved up
fi

# Bit flips: the receiver's checksum finds every one the proxy made.
if through corrupt 127.0.0.1 --count 5000 -- --corrupt 5 --seed 5; then
    f="$WORK/corrupt.json"
    same "received vs forwarded" "$(peer received)" "$(total "$f" up_forwarded)"
    same "corrupt" "$(peer corrupt)" "$(total "$f" up_corrupted)"
    between "corrupted" "$(total "$f" up_corrupted)" 150 350
fi

# A small MTU: every datagram over --max-size is dropped, and only those.
if through size 127.0.0.1 --count 1000 --big-every 10 --big-size 1400 -- --max-size 1000 \
    --json; then
    f="$WORK/size.json"
    same "dropped (size)" "$(total "$f" up_dropped_size)" 100
    same "--json on stdout, as in the report" "$(total "$WORK/size_proxy.out" up_dropped_size)" 100
    same "received" "$(peer received)" 900
    same "big ones received" "$(peer big)" 0
fi

# Delay and jitter: none arrives before 30 - 10 ms (a lower bound holds on
# a loaded machine); the first SIGINT lets the held ones leave on time.
if through delay 127.0.0.1 --count 600 -- --delay 30 --jitter 10 --seed 9; then
    f="$WORK/delay.json"
    same "forwarded" "$(total "$f" up_forwarded)" 600
    same "delayed" "$(total "$f" up_delayed)" 600
    same "reordered (by jitter)" "$(peer reordered)" "$(total "$f" up_reordered)"
    min=$(peer min_delay_us)
    if [ -n "$min" ] && [ "$min" -ge 20000 ]; then
        pass "delay: the quickest datagram took $min us (>= 20000)"
    else
        fail "delay: a datagram arrived after ${min:-?} us, before the 20 ms minimum"
    fi
fi

# A slow link with a short queue: a burst overflows it (tail drops), and
# still every count adds up.
if through rate 127.0.0.1 --count 400 --size 1000 --window 400 -- --rate 400 --queue 20; then
    f="$WORK/rate.json"
    same "received vs forwarded" "$(peer received)" "$(total "$f" up_forwarded)"
    between "dropped (queue)" "$(total "$f" up_dropped_queue)" 1 400
    conserved up
fi

# --max-flows 2 and three clients taking turns, one datagram in flight at
# a time: the third evicts the first, the first (back) the second.
if through flows 127.0.0.1 --count 80 --flows 3 --block 20 --window 1 -- --max-flows 2; then
    f="$WORK/flows.json"
    same "evictions" "$(total "$f" evictions)" 2
    same "flows" "$(total "$f" flows)" 4
    same "evicted records" "$(grep -c '"end":"evicted"' "$f")" 2
    same "received" "$(peer received)" 80
fi

# Only the replies impaired: all go up, none comes back.
if through direction 127.0.0.1 --count 500 --echo -- --direction down --loss 100; then
    f="$WORK/direction.json"
    same "received" "$(peer received)" 500
    same "returned" "$(peer returned)" 0
    same "down dropped (loss)" "$(total "$f" down_dropped_loss)" 500
fi

# Two signals: what is still held is dropped, counted as closing.
RUN=closing
rm -f "$WORK/closing.in"
mkfifo "$WORK/closing.in"
start_input closing_peer "$WORK/closing.in" "$PEER" --count 10
peer_pid=$LAST_PID
exec 3>"$WORK/closing.in"
if target=$(wait_for_port closing_peer "$peer_pid"); then
    start closing_proxy "$IMPAIR" --address 127.0.0.1 --port 0 --target-host 127.0.0.1 \
        --target-port "$target" --delay 60000 --report "$WORK/closing.json"
    proxy_pid=$LAST_PID
    port=$(wait_for_port closing_proxy "$proxy_pid")
    echo "$port" >&3
    wait_long "$WORK/closing_peer.out" '^sent ' "$peer_pid" 20
    # The first signal starts the drain, any later one closes: signal
    # until it is gone (two signals in a row may be seen as one).
    tries=0
    while kill -INT "$proxy_pid" 2>/dev/null && [ "$tries" -lt 60 ]; do
        sleep 0.5
        tries=$((tries + 1))
    done
    wait_bounded "$proxy_pid" 30
    same "exit status" "$STATUS" 0
    same "dropped at close" "$(total "$WORK/closing.json" up_dropped_closing)" \
        "$(total "$WORK/closing.json" up_received)"
    same "forwarded" "$(total "$WORK/closing.json" up_forwarded)" 0
    echo "0 0" >&3
else
    fail "closing: the peer printed no listening line"
fi
exec 3>&-
wait_bounded "$peer_pid" 30

if have_ipv6_loopback; then
    if through loss6 ::1 --udp6 --count 2000 --echo -- --udp6 --loss 5 --seed 2; then
        f="$WORK/loss6.json"
        same "received vs forwarded" "$(peer received)" "$(total "$f" up_forwarded)"
        same "returned vs forwarded" "$(peer returned)" "$(total "$f" down_forwarded)"
        conserved up
        conserved down
    fi
else
    skip "IPv6: no ::1 on this machine"
fi
finish
