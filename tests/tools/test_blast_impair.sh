#!/bin/sh
# dgblast's loss, reordering and duplicate counts against dgring-impair's
# report: dgblast send -> dgring-impair (loss, reordering, duplication on
# the way up, fixed seed) -> dgblast recv. recv classifies by sequence
# number per sender (a gap: lost; seen before: duplicate; first seen
# below the highest: reordered), the proxy counts what it did with each
# datagram of each flow, and the two must agree exactly:
#   recv packets = up_forwarded, lost = every up_dropped_*,
#   reordered = up_reordered, duplicates = up_duplicated, senders = flows.
# The proxy is stopped once its socket's queue is empty: what it read
# after SIGINT would be dropped while closing, after each sender's last
# forwarded datagram, where no gap shows it (the stopped case below checks
# that such datagrams are counted).
# A drop after a sender's last datagram received would leave no gap, so
# the proxy impairs only the first --impair-count datagrams of each flow
# and the senders send more than that: every sequence ends with datagrams
# that pass untouched, and every drop is a gap. The identities need every
# datagram to cross loopback: the senders are paced, the buffers large, and
# both kernel drop counts are checked to be 0 (they are on an idle or a
# busy machine; a non-zero one is reported as what broke the comparison).
#
# usage: test_blast_impair.sh PATH/TO/dgring-impair PATH/TO/dgblast

if [ $# -ne 2 ]; then
    echo "usage: $0 DGRING_IMPAIR DGBLAST" >&2
    exit 2
fi
IMPAIR=$1
BLAST=$2
# shellcheck source=tests/tools/test_lib.sh
. "$(dirname "$0")/test_lib.sh"


# through NAME SENDERS PROXY_ARGS...: one run; the reports are NAME_recv.out
# (dgblast recv, JSON), NAME_send.out and NAME.json (the proxy's).
through() {
    name=$1
    senders=$2
    shift 2
    start "${name}_recv" "$BLAST" recv -B 127.0.0.1 -p 0 --idle-ms 1000 -J
    recv_pid=$LAST_PID
    recv_port=$(wait_for_port "${name}_recv" "$recv_pid") || { fail "$name: recv"; return 1; }
    start "${name}_proxy" "$IMPAIR" --address 127.0.0.1 --port 0 --target-host 127.0.0.1 \
        --target-port "$recv_port" --direction up --rcvbuf 4194304 --impair-count 1500 \
        --report "$WORK/$name.json" "$@"
    proxy_pid=$LAST_PID
    proxy_port=$(wait_for_port "${name}_proxy" "$proxy_pid") || { fail "$name: proxy"; return 1; }
    # 2000 datagrams a sender: more than --impair-count.
    run "${name}_send" "$BLAST" send -c 127.0.0.1 -p "$proxy_port" -P "$senders" \
        -r $((senders * 4000)) -t 0.5 -s 64 -J
    [ "$STATUS" -eq 0 ] || fail "$name: dgblast send exit $STATUS"
    wait_udp_read "$proxy_port" || fail "$name: the proxy left datagrams unread"
    kill -INT "$proxy_pid" # held copies still leave on their time
    wait_bounded "$proxy_pid" 30
    [ "$STATUS" -eq 0 ] || fail "$name: proxy exit $STATUS"
    wait_bounded "$recv_pid" 30
    [ "$STATUS" -eq 0 ] || fail "$name: recv exit $STATUS"
    recv=$WORK/${name}_recv.out
    report=$WORK/$name.json
    show "$recv" "$report"
    expect_equal "$name: recv kernel drops" "$(json_value "$recv" kernel_drops)" 0
    expect_equal "$name: proxy kernel drops" "$(impair_total "$report" up_kernel_drops)" 0
    expect_equal "$name: proxy send errors" "$(impair_total "$report" up_send_errors)" 0
    sent=$(json_value "$WORK/${name}_send.out" packets)
    expect_equal "$name: proxy received = sent" "$(impair_total "$report" up_received)" "$sent"
    expect_equal "$name: packets = forwarded" "$(json_value "$recv" packets)" \
        "$(impair_total "$report" up_forwarded)"
    expect_equal "$name: lost = dropped" "$(json_value "$recv" lost)" "$(impair_up_dropped "$report")"
    expect_equal "$name: reordered" "$(json_value "$recv" reordered)" \
        "$(impair_total "$report" up_reordered)"
    expect_equal "$name: duplicates = duplicated" "$(json_value "$recv" duplicates)" \
        "$(impair_total "$report" up_duplicated)"
    expect_equal "$name: senders = flows" "$(json_value "$recv" senders)" \
        "$(impair_total "$report" flows)"
}

# stopped: a SIGINT that finds datagrams still queued for the proxy. The
# proxy is stopped (SIGSTOP) while 2000 datagrams queue up in its socket,
# then gets SIGINT and SIGCONT: it reads and counts what was queued before
# it closes, so received = sent (all of them dropped while closing, or
# forwarded if read first), with no kernel drop.
stopped() {
    start stopped_recv "$BLAST" recv -B 127.0.0.1 -p 0 --idle-ms 1000 -J
    recv_pid=$LAST_PID
    recv_port=$(wait_for_port stopped_recv "$recv_pid") || { fail "stopped: recv"; return 1; }
    start stopped_proxy "$IMPAIR" --address 127.0.0.1 --port 0 --target-host 127.0.0.1 \
        --target-port "$recv_port" --rcvbuf 4194304 --report "$WORK/stopped.json"
    proxy_pid=$LAST_PID
    proxy_port=$(wait_for_port stopped_proxy "$proxy_pid") || { fail "stopped: proxy"; return 1; }
    kill -STOP "$proxy_pid"
    run stopped_send "$BLAST" send -c 127.0.0.1 -p "$proxy_port" -r 4000 -t 0.5 -s 64 -J
    kill -INT "$proxy_pid"
    kill -CONT "$proxy_pid"
    wait_bounded "$proxy_pid" 30
    [ "$STATUS" -eq 0 ] || fail "stopped: proxy exit $STATUS"
    kill -INT "$recv_pid"
    wait_bounded "$recv_pid" 30
    report=$WORK/stopped.json
    show "$report"
    expect_equal "stopped: proxy kernel drops" "$(impair_total "$report" up_kernel_drops)" 0
    expect_equal "stopped: received = sent, queued ones included" \
        "$(impair_total "$report" up_received)" "$(json_value "$WORK/stopped_send.out" packets)"
    expect_equal "stopped: received = forwarded + dropped" "$(impair_total "$report" up_received)" \
        "$(($(impair_total "$report" up_forwarded) + $(impair_up_dropped "$report")))"
}
stopped

# --impair-count itself: 100% loss drops exactly the first 1500 of each
# flow, and the rest arrive; 0 is no count.
through count 1 --loss 100 --seed 5
expect_equal "count: dropped = --impair-count" "$(impair_up_dropped "$WORK/count.json")" 1500
expect_usage "dgring-impair --impair-count 0" "$IMPAIR" --target-host 127.0.0.1 \
    --target-port 9 --impair-count 0
# Each impairment alone, then all of them at once, with two senders.
through loss 1 --loss 10 --seed 1
through reorder 1 --reorder 10 --seed 2
through duplicate 1 --duplicate 10 --seed 3
through all 2 --loss 10 --reorder 10 --reorder-depth 3 --duplicate 10 --seed 4
# The impairments really happened (the seeds make them certain).
for run in loss all; do
    [ "$(impair_up_dropped "$WORK/$run.json")" -gt 0 ] || fail "$run: nothing dropped"
done
[ "$(impair_total "$WORK/all.json" up_reordered)" -gt 0 ] || fail "all: nothing reordered"
[ "$(impair_total "$WORK/all.json" up_duplicated)" -gt 0 ] || fail "all: nothing duplicated"
finish
