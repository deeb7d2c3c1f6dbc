#!/bin/sh
# dgstatsd fed by two clients nobody here wrote: the shell (printf piped
# into dgcat) and the npm package hot-shots, a widely used statsd client,
# run by node. The npm part is skipped, with the reason, where node or npm
# is missing or the package cannot be installed (offline).
#
# usage: test_statsd.sh PATH/TO/dgstatsd PATH/TO/dgcat NPM_DIR [NODE NPM]
#
# NPM_DIR (inside the build directory) keeps the installed package between
# runs. See ../test_lib.sh for the rules (loopback only, ports read back,
# no timing assertions).

if [ $# -lt 3 ]; then
    echo "usage: $0 DGSTATSD DGCAT NPM_DIR [NODE NPM]" >&2
    exit 2
fi
STATSD=$1
CAT_TOOL=$2
NPM_DIR=$3
NODE=${4:-}
NPM=${5:-}
HOT_SHOTS_VERSION=17
# shellcheck source=tests/tools/test_lib.sh
. "$(dirname "$0")/../test_lib.sh"

# start_statsd NAME ARGS...: dgstatsd on 127.0.0.1 port 0; sets
# STATSD_PID and STATSD_PORT.
start_statsd() {
    name=$1
    shift
    start "$name" "$STATSD" --address 127.0.0.1 --port 0 "$@"
    STATSD_PID=$LAST_PID
    if ! STATSD_PORT=$(listening_port "$WORK/$name.err" "$STATSD_PID"); then
        fail "$name: no listening line"
        show "$WORK/$name.out" "$WORK/$name.err"
        return 1
    fi
}

# stop_statsd NAME FILE [SIGNAL]: SIGINT (or SIGNAL) must end dgstatsd with
# status 0 after a last flush into FILE.
stop_statsd() {
    kill "-${3:-INT}" "$STATSD_PID"
    wait_bounded "$STATSD_PID" 10
    if [ "$STATUS" -ne 0 ] || ! grep -q '^{"timestamp_ms":' "$2"; then
        fail "$1: exit $STATUS, or no flush"
        show "$2" "$WORK/$1.err"
        return 1
    fi
}

# expect_json NAME FILE TEXT...: the last JSON line of FILE contains each
# TEXT.
expect_json() {
    name=$1
    file=$2
    shift 2
    last=$(grep '^{' "$file" | tail -n 1)
    for text in "$@"; do
        case "$last" in
        *"$text"*) pass "$name: $text" ;;
        *)
            fail "$name: no $text in the flush"
            echo "    $last"
            ;;
        esac
    done
}

# Lines from the shell: one datagram each, then all of them in one; on a
# group of two loops (one aggregation, one flush line).
check_shell_client() {
    start_statsd shell --interval 600000 --threads 2 || return 1
    printf 'a.count:1|c\na.count:2|c|@0.5\ng1:10|g\ng1:+5|g\nt1:10|ms\nt1:20|ms\n' \
        >"$WORK/lines.in"
    printf 't1:30|ms|#env:test\nnot statsd\nmulti:1|c:2|c\n' >>"$WORK/lines.in"
    run_input shell_lines "$WORK/lines.in" "$CAT_TOOL" 127.0.0.1 "$STATSD_PORT"
    printf 'x.batched:7|c\ny.batched:-2|g\n' >"$WORK/batch.in"
    run_input shell_batch "$WORK/batch.in" "$CAT_TOOL" --raw 4096 localhost "$STATSD_PORT"
    stop_statsd shell "$WORK/shell.out" || return 1
    expect_json shell "$WORK/shell.out" '"datagrams":10,' '"lines":10,' '"bad_lines":1,' \
        '"counters":{"a.count":5,"multi":3,"x.batched":7}' '"gauges":{"g1":15,"y.batched":-2}' \
        '"timers":{"t1":{"count":3,"min":10,"max":30,"mean":20,"p50":20,"p90":30,"p99":30}}'
}

# Stopped right after a frozen dgstatsd got 300 datagrams: however many
# it aggregated before SIGINT closed its sockets (the signal races the
# receive) and however many its queues could hold, its exit report
# accounts for all of them: datagrams + dropped by the kernel + discarded
# at close = sent. (Which of the three holds how many is not checked: it
# depends on when the signal lands.)
check_discarded_at_close() {
    start_statsd stopped --interval 600000 --threads 2 --rcvbuf 1048576 || return 1
    i=0
    : >"$WORK/many.in"
    while [ $i -lt 300 ]; do
        echo "n$i:1|c" >>"$WORK/many.in"
        i=$((i + 1))
    done
    kill -STOP "$STATSD_PID"
    run_input many_send "$WORK/many.in" "$CAT_TOOL" 127.0.0.1 "$STATSD_PORT"
    kill -CONT "$STATSD_PID"
    stop_statsd stopped "$WORK/stopped.out" || return 1
    report=$(grep 'discarded at close$' "$WORK/stopped.err")
    sum=$(echo "$report" | sed -n \
        's/.*: \([0-9]*\) datagrams, [0-9]* truncated, \([0-9]*\) dropped by the kernel, \([0-9]*\) discarded at close$/\1 + \2 + \3/p')
    expect_equal "stopped: datagrams + kernel drops + discarded at close ($report)" \
        "$((${sum:-0}))" 300
}

# The flush timer writes on its own (into --output), and gauges outlive
# a flush while counters restart.
check_interval_flush() {
    out="$WORK/flushes.jsonl"
    start_statsd interval --interval 200 --output "$out" || return 1
    printf 'ticks:1|c\nlevel:3|g\n' >"$WORK/tick.in"
    run_input tick_send "$WORK/tick.in" "$CAT_TOOL" 127.0.0.1 "$STATSD_PORT"
    if wait_for_line "$out" '"counters":{"ticks":1}' "$STATSD_PID"; then
        pass "interval flush: $(grep '"ticks":1' "$out" | head -n 1)"
    else
        fail "interval flush: no flush with the counter"
        show "$out"
    fi
    stop_statsd interval "$out" || return 1
    expect_json "last flush" "$out" '"counters":{}' '"gauges":{"level":3}' '"timers":{}'
}

# The port is the group's alone: a second dgstatsd on it fails with
# EADDRINUSE (exit 1) instead of taking part of the traffic, whether the
# first runs one loop or two; SIGTERM ends the first cleanly.
check_exclusive() {
    for threads in 1 2; do
        start_statsd "excl$threads" --interval 600000 --threads "$threads" || return 1
        run "second$threads" "$STATSD" --address 127.0.0.1 --port "$STATSD_PORT" --threads 2
        if [ "$STATUS" -eq 1 ] && grep -q EADDRINUSE "$WORK/second$threads.err"; then
            pass "second dgstatsd on a port held by $threads loop(s): $(cat "$WORK/second$threads.err")"
        else
            fail "second dgstatsd on a port held by $threads loop(s): exit $STATUS"
            show "$WORK/second$threads.out" "$WORK/second$threads.err"
        fi
        stop_statsd "excl$threads" "$WORK/excl$threads.out" TERM || return 1
    done
}

# SIGHUP flushes into the current file and reopens --output: after a
# rotation (mv), what came before is in the old file and what came after
# in a new one at the configured name.
check_reload() {
    out="$WORK/reload.jsonl"
    start_statsd reload --interval 600000 --output "$out" || return 1
    printf 'before.rotation:1|c\n' >"$WORK/before.in"
    run_input reload_before "$WORK/before.in" "$CAT_TOOL" 127.0.0.1 "$STATSD_PORT"
    mv "$out" "$out.1"
    kill -HUP "$STATSD_PID"
    if ! wait_for_line "$WORK/reload.err" 'reloaded' "$STATSD_PID"; then
        fail "reload: no 'reloaded' line after SIGHUP"
        show "$WORK/reload.err"
        return 1
    fi
    printf 'after.rotation:2|c\n' >"$WORK/after.in"
    run_input reload_after "$WORK/after.in" "$CAT_TOOL" 127.0.0.1 "$STATSD_PORT"
    stop_statsd reload "$out" || return 1
    expect_json "rotated file" "$out.1" '"counters":{"before.rotation":1}'
    expect_json "new file" "$out" '"counters":{"after.rotation":2}'
    if grep -q before.rotation "$out"; then
        fail "reload: the new file has what came before the rotation"
    fi
}

# hot-shots, from the npm registry, in buffered mode (several metrics per
# datagram, newline-separated) and unbuffered mode (one per datagram).
check_npm_client() {
    if [ -z "$NODE" ] || [ -z "$NPM" ]; then
        skip "hot-shots: node or npm is not installed"
        return 0
    fi
    if [ ! -f "$NPM_DIR/node_modules/hot-shots/package.json" ]; then
        mkdir -p "$NPM_DIR"
        if ! "$NPM" install --prefix "$NPM_DIR" --no-audit --no-fund --omit=optional \
            --loglevel=error "hot-shots@$HOT_SHOTS_VERSION" >"$WORK/npm.log" 2>&1; then
            skip "hot-shots: npm install failed (offline?): $(tail -n 1 "$WORK/npm.log")"
            return 0
        fi
    fi
    start_statsd npm --interval 600000 || return 1
    cat >"$WORK/client.js" <<'JS'
const StatsD = require(process.argv[2]);
const port = Number(process.argv[3]);
const fail = (error) => { console.error(error); process.exit(1); };
const buffered = new StatsD({ host: '127.0.0.1', port, maxBufferSize: 1000,
                              bufferFlushInterval: 50, errorHandler: fail });
const single = new StatsD({ host: '127.0.0.1', port, errorHandler: fail });
buffered.increment('npm.requests', 3);
buffered.increment('npm.requests');
buffered.gauge('npm.queue', 42);
buffered.gauge('npm.queue', 40);
for (const ms of [12, 30, 18]) buffered.timing('npm.latency', ms);
buffered.histogram('npm.size', 7);
single.increment('npm.single', 2);
single.decrement('npm.single');
buffered.close((error) => error ? fail(error) :
    single.close((error) => error ? fail(error) : process.exit(0)));
JS
    run npm_client "$NODE" "$WORK/client.js" "$NPM_DIR/node_modules/hot-shots" "$STATSD_PORT"
    if [ "$STATUS" -ne 0 ]; then
        fail "hot-shots client: exit $STATUS"
        show "$WORK/npm_client.out" "$WORK/npm_client.err"
    fi
    stop_statsd npm "$WORK/npm.out" || return 1
    expect_json hot-shots "$WORK/npm.out" '"bad_lines":0,' \
        '"counters":{"npm.requests":4,"npm.single":1}' '"gauges":{"npm.queue":40}' \
        '"npm.latency":{"count":3,"min":12,"max":30,"mean":20,"p50":18,"p90":30,"p99":30}' \
        '"npm.size":{"count":1,"min":7,"max":7,'
}

expect_help "dgstatsd --help" "$STATSD" --help
expect_usage "dgstatsd bad port" "$STATSD" --port 70000
expect_usage "dgstatsd interval 0" "$STATSD" --interval 0
expect_usage "dgstatsd threads 0" "$STATSD" --threads 0
check_shell_client
check_discarded_at_close
check_interval_flush
check_exclusive
check_reload
check_npm_client
finish
