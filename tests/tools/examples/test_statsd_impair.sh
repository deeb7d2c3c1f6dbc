#!/bin/sh
# dgstatsd's totals through dgring-impair: dgcat sends N datagrams, each
# the line "impaired.total:1|c:2|c" (3 for the counter), through the proxy
# with loss, duplication and reordering (fixed seed) to dgstatsd. Summed
# over every flush, the counter is 3 x what the proxy forwarded, and
# dgstatsd counted one datagram and one line per datagram forwarded; the
# proxy's own books say forwarded = sent - dropped + duplicated. The
# proxy is stopped first, once it has read every datagram dgcat sent (its
# socket's queue is empty; held datagrams leave on time), then
# dgstatsd (it handles what reached its socket before the last flush), so
# nothing is in flight when the totals are read; large buffers and the
# kernel drop counts checked to be 0 make sure nothing is lost on
# loopback either.
#
# usage: test_statsd_impair.sh PATH/TO/dgstatsd PATH/TO/dgcat PATH/TO/dgring-impair

if [ $# -ne 3 ]; then
    echo "usage: $0 DGSTATSD DGCAT DGRING_IMPAIR" >&2
    exit 2
fi
STATSD=$1
CAT_TOOL=$2
IMPAIR=$3
# shellcheck source=tests/tools/test_lib.sh
. "$(dirname "$0")/../test_lib.sh"

N=2000


json=$WORK/statsd.json
start statsd "$STATSD" --address 127.0.0.1 --port 0 --interval 200 --output "$json" \
    --rcvbuf 4194304
statsd_pid=$LAST_PID
statsd_port=$(listening_port "$WORK/statsd.err" "$statsd_pid") || {
    fail "dgstatsd: no listening line"
    finish
}
start proxy "$IMPAIR" --address 127.0.0.1 --port 0 --target-host 127.0.0.1 \
    --target-port "$statsd_port" --direction up --rcvbuf 4194304 --seed 11 \
    --loss 10 --duplicate 10 --reorder 10 --report "$WORK/proxy.json"
proxy_pid=$LAST_PID
proxy_port=$(wait_for_port proxy "$proxy_pid") || {
    fail "dgring-impair: no listening line"
    finish
}
awk -v n="$N" 'BEGIN { for (i = 0; i < n; i++) print "impaired.total:1|c:2|c" }' \
    >"$WORK/lines.in"
run_input cat "$WORK/lines.in" "$CAT_TOOL" 127.0.0.1 "$proxy_port"
[ "$STATUS" -eq 0 ] || fail "dgcat: exit $STATUS"
wait_udp_read "$proxy_port" || fail "dgring-impair left datagrams unread"
kill -INT "$proxy_pid"
wait_bounded "$proxy_pid" 30
[ "$STATUS" -eq 0 ] || fail "dgring-impair: exit $STATUS after SIGINT"
kill -INT "$statsd_pid"
wait_bounded "$statsd_pid" 30
[ "$STATUS" -eq 0 ] || fail "dgstatsd: exit $STATUS after SIGINT"
show "$WORK/proxy.json" "$WORK/statsd.err"

report=$WORK/proxy.json
forwarded=$(impair_total "$report" up_forwarded)
dropped=$(impair_up_dropped "$report")
duplicated=$(impair_total "$report" up_duplicated)
expect_equal "proxy: received = sent" "$(impair_total "$report" up_received)" "$N"
expect_equal "proxy: forwarded = sent - dropped + duplicated" "$forwarded" \
    "$((N - dropped + duplicated))"
expect_equal "proxy kernel drops" "$(impair_total "$report" up_kernel_drops)" 0
expect_equal "dgstatsd kernel drops" \
    "$(sed -n 's/.* \([0-9]*\) dropped by the kernel, .*/\1/p' "$WORK/statsd.err")" 0
expect_equal "dgstatsd discarded at close" \
    "$(sed -n 's/.* \([0-9]*\) discarded at close$/\1/p' "$WORK/statsd.err")" 0
expect_equal "dgstatsd: datagrams = forwarded" "$(json_sum "$json" datagrams)" "$forwarded"
expect_equal "dgstatsd: lines = forwarded" "$(json_sum "$json" lines)" "$forwarded"
expect_equal "dgstatsd: counter total = 3 x forwarded" \
    "$(json_sum "$json" impaired.total)" "$((3 * forwarded))"
[ "$dropped" -gt 0 ] || fail "proxy: nothing dropped"
[ "$duplicated" -gt 0 ] || fail "proxy: nothing duplicated"
[ "$(impair_total "$report" up_reordered)" -gt 0 ] || fail "proxy: nothing reordered"
finish
