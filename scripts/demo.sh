#!/bin/sh
# The main job: builds dgring and runs the loopback demo. Starts
# dgring-echo on a random port, measures round trips against it with
# dgblast pingpong, then the packet rate of dgblast send -> dgblast recv,
# whose summary counts loss per sender and the kernel's drops for its
# socket (and says why when there are any). Everything stays on 127.0.0.1.
# Installs the Debian packages it needs.
set -eu
cd "$(dirname "$0")/.."

scripts/deps.sh build
if [ ! -f build/build.ninja ]; then
    meson setup build -Dtests=false >/dev/null
fi
ninja -C build >/dev/null

tmp=$(mktemp -d)
cleanup() {
    [ -n "${echo_pid:-}" ] && kill "$echo_pid" 2>/dev/null || true
    [ -n "${recv_pid:-}" ] && kill "$recv_pid" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

wait_port() { # file -> prints the port of its "listening ADDRESS:PORT" line
    i=0
    while [ $i -lt 100 ]; do
        line=$(grep -m1 '^listening ' "$1" 2>/dev/null || true)
        if [ -n "$line" ]; then
            echo "${line##*:}"
            return 0
        fi
        sleep 0.05
        i=$((i + 1))
    done
    echo "demo.sh: server did not start" >&2
    return 1
}

echo "== dgring $(git describe --always 2>/dev/null || echo) loopback demo =="
build/tools/dgring-echo --port 0 --address 127.0.0.1 >"$tmp/echo.out" &
echo_pid=$!
port=$(wait_port "$tmp/echo.out")
echo "-- latency: dgblast pingpong against dgring-echo on 127.0.0.1:$port (3 s)"
echo "   (round trips: sockperf would print half of each, its one-way 'latency')"
build/tools/dgblast pingpong --host 127.0.0.1 --port "$port" --duration 3

build/tools/dgblast recv --port 0 --address 127.0.0.1 --idle-ms 1000 >"$tmp/recv.out" &
recv_pid=$!
rport=$(wait_port "$tmp/recv.out")
echo "-- rate: dgblast send (64-byte datagrams, 200k/s offered, 3 s) to dgblast recv on 127.0.0.1:$rport"
build/tools/dgblast send --host 127.0.0.1 --port "$rport" --size 64 --duration 3 --rate 200000
wait "$recv_pid" || true
recv_pid=""
# recv's own lines: the buffer it was granted, then its summary (loss per
# sender; the kernel's drops for the socket, explained when not 0)
grep -v '^listening ' "$tmp/recv.out"
kill -INT "$echo_pid"
wait "$echo_pid" || true
echo_pid=""
