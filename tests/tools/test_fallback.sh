#!/bin/sh
# The tools where io_uring is denied (Docker's default seccomp profile):
# run under deny-io-uring, dgring-echo and dgblast must fall back to the
# epoll backend, say so, and still carry every datagram.
#
# usage: test_fallback.sh PATH/TO/dgring-echo PATH/TO/dgblast PATH/TO/deny-io-uring

if [ $# -ne 3 ]; then
    echo "usage: $0 DGRING_ECHO DGBLAST DENY_IO_URING" >&2
    exit 2
fi
ECHO_TOOL=$1
BLAST_TOOL=$2
DENY=$3
# shellcheck source=tests/tools/test_lib.sh
. "$(dirname "$0")/test_lib.sh"

unset DGRING_BACKEND # the choice under test is the automatic one

start echo_denied "$DENY" "$ECHO_TOOL" --port 0 --address 127.0.0.1 --json
ECHO_PID=$LAST_PID
if ! ECHO_PORT=$(wait_for_port echo_denied "$ECHO_PID"); then
    fail "echo under seccomp: no listening line"
    show "$WORK/echo_denied.out" "$WORK/echo_denied.err"
    finish
fi
pass "echo under seccomp: $(head -n 1 "$WORK/echo_denied.out")"

run pingpong_denied "$DENY" "$BLAST_TOOL" pingpong --host 127.0.0.1 --port "$ECHO_PORT" \
    --duration 1 --json --pattern seq
if [ "$STATUS" -ne 0 ]; then
    fail "pingpong under seccomp: exit $STATUS"
    show "$WORK/pingpong_denied.out" "$WORK/pingpong_denied.err"
elif ! grep -q '"backend":"epoll"' "$WORK/pingpong_denied.out"; then
    fail "pingpong under seccomp: backend is not epoll"
    show "$WORK/pingpong_denied.out"
elif [ "$(json_value "$WORK/pingpong_denied.out" loss)" != 0 ] ||
    [ "$(json_value "$WORK/pingpong_denied.out" packets)" -le 0 ]; then
    fail "pingpong under seccomp: lost datagrams or none sent"
    show "$WORK/pingpong_denied.out"
else
    pass "pingpong under seccomp: $(head -n 1 "$WORK/pingpong_denied.out")"
fi

kill -INT "$ECHO_PID"
wait_bounded "$ECHO_PID" 30
if [ "$STATUS" -ne 0 ]; then
    fail "echo under seccomp: exit $STATUS after SIGINT"
    show "$WORK/echo_denied.out" "$WORK/echo_denied.err"
elif ! grep -q '^{"mode":"echo","backend":"epoll"' "$WORK/echo_denied.out"; then
    fail "echo under seccomp: summary does not name the epoll backend"
    show "$WORK/echo_denied.out"
else
    pass "echo under seccomp: $(tail -n 1 "$WORK/echo_denied.out")"
fi
finish
