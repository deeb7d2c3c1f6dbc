'use strict';
// perf/node_bench.js: the Node.js dgram peers (Node 20, as installed).
//
//   node node_bench.js recv [--port P] [--count N] [--idle-ms MS]
//   node node_bench.js send --port P --size B --duration S [--window W] [--count N]
//   node node_bench.js echo [--port P]       answers sockperf's ping-pong protocol
//   node node_bench.js relay [--port P] [--count N]
//                                            sends every datagram back to its sender
//                                            (the echo scenario); prints its JSON line
//                                            on SIGTERM or after N echoes
//
// --dgring DIR runs the same program on dgring's Node module (DIR is
// bindings/node; $DGRING_NODE_ADDON may name the built addon) instead of
// node:dgram: the node-dgring peer. Only the module differs.
//
// Same contract as the C peers (see common.h): "ready PORT PID" once bound,
// one JSON line at the end. Time stamps at the first datagram and every
// 64th, never per datagram.
const fs = require('node:fs');

function parse(argv) {
  const o = { mode: argv[0], port: 0, size: 64, duration: 1, count: 0, idleMs: 300, window: 64 };
  for (let i = 1; i < argv.length; i++) {
    const k = argv[i];
    const v = argv[i + 1];
    switch (k) {
      case '--port': o.port = Number(v); i++; break;
      case '--size': o.size = Number(v); i++; break;
      case '--duration': o.duration = Number(v); i++; break;
      case '--count': o.count = Number(v); i++; break;
      case '--idle-ms': o.idleMs = Number(v); i++; break;
      case '--window': o.window = Number(v); i++; break;
      case '--dgring': o.dgring = v; i++; break;
      case '--rcvbuf': case '--batch': i++; break; // accepted, unused
      default:
        process.stderr.write(`unknown option ${k}\n`);
        process.exit(2);
    }
  }
  return o;
}

const nowNs = () => process.hrtime.bigint();
const cpuSeconds = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

// The drops column of /proc/net/udp for 127.0.0.1:port.
function procDrops(port) {
  try {
    const want = '0100007F:' + port.toString(16).toUpperCase().padStart(4, '0');
    for (const line of fs.readFileSync('/proc/net/udp', 'utf8').split('\n')) {
      const f = line.trim().split(/\s+/);
      if (f[1] === want) return Number(f[f.length - 1]);
    }
  } catch (e) { /* fall through */ }
  return -1;
}

function seqOf(msg) {
  return msg.length >= 8 ? msg.readUInt32LE(0) + msg.readUInt32LE(4) * 4294967296 : 0;
}

function recv(o) {
  const sock = dgram.createSocket('udp4');
  let packets = 0, bytes = 0, firstNs = 0n, stampNs = 0n, stampPackets = 0, firstCpu = 0;
  let seqFirst = 0, seqMax = 0, done = false, port = 0, warmup = 0, maxGapNs = 0n;
  const finish = () => {
    if (done) return;
    done = true;
    clearInterval(timer);
    const drops = procDrops(port);
    const seconds = Number(stampNs - firstNs) / 1e9;
    const counted = stampPackets - 1;
    const cpu = cpuSeconds() - firstCpu;
    const out = {
      peer: PEER, packets, bytes, seconds, pps: seconds > 0 ? counted / seconds : 0,
      drops, drops_from: '/proc/net/udp', seq_gaps: packets ? seqMax - seqFirst + 1 - packets : -1,
      cpu_seconds: cpu, cpu_ns_per_dgram: counted ? cpu * 1e9 / counted : 0, warmup,
      max_gap_ms: Number(maxGapNs) / 1e6,
      node: process.version,
    };
    process.stdout.write(JSON.stringify(out) + '\n');
    sock.close();
  };
  sock.on('message', (msg) => {
    if (msg.length >= 8 && msg.readUInt32LE(0) === 0xffffffff && msg.readUInt32LE(4) === 0xffffffff) {
      warmup++; // a warm-up datagram (see common.h): not counted
      return;
    }
    const seq = seqOf(msg);
    if (packets === 0) seqFirst = seq;
    if (seq > seqMax) seqMax = seq;
    packets++;
    bytes += msg.length;
    if (packets === 1) {
      firstNs = stampNs = nowNs();
      stampPackets = 1;
      firstCpu = cpuSeconds();
    } else if ((packets & 63) === 0) {
      const now = nowNs();
      if (now - stampNs > maxGapNs) maxGapNs = now - stampNs;
      stampNs = now;
      stampPackets = packets;
    }
    if (o.count && packets >= o.count) finish();
  });
  // Idle end: two checks in a row without progress (timers run before the
  // poll phase, so after the process was not scheduled for a while the
  // first check could see datagrams that are still queued), see common.h.
  let idleSeen = 0, idleTicks = 0;
  const timer = setInterval(() => {
    const progress = packets !== idleSeen;
    idleSeen = packets;
    if (progress || packets === 0) { idleTicks = 0; return; }
    if (Number(nowNs() - stampNs) / 1e6 >= o.idleMs && ++idleTicks >= 2) finish();
  }, 50);
  sock.bind({ port: o.port, address: '127.0.0.1' }, () => {
    port = sock.address().port;
    process.stdout.write(`ready ${port} ${process.pid}\n`);
  });
}

function send(o) {
  const sock = dgram.createSocket('udp4');
  let issued = 0, completed = 0, errors = 0, inflight = 0, done = false;
  let startNs = 0n, endNs = 0n, deadlineNs = 0n, cpu0 = 0;
  const finish = () => {
    endNs = nowNs();
    const seconds = Number(endNs - startNs) / 1e9;
    const cpu = cpuSeconds() - cpu0;
    process.stdout.write(JSON.stringify({
      peer: PEER, packets: completed, errors, seconds, pps: completed / seconds,
      cpu_seconds: cpu, cpu_ns_per_dgram: completed ? cpu * 1e9 / completed : 0,
      window: o.window, size: o.size, node: process.version,
    }) + '\n');
    sock.close();
  };
  const onSent = (err) => {
    inflight--;
    if (err) errors++; else completed++;
    if (!done) {
      if (o.count) { if (issued >= o.count) done = true; }
      else if ((completed & 63) === 0 && nowNs() >= deadlineNs) done = true;
    }
    if (!done) one();
    else if (inflight === 0 && endNs === 0n) finish();
  };
  const one = () => {
    const buf = Buffer.allocUnsafe(o.size);
    if (o.size >= 8) {
      buf.writeUInt32LE(issued % 4294967296, 0);
      buf.writeUInt32LE(Math.floor(issued / 4294967296), 4);
    }
    issued++;
    inflight++;
    sock.send(buf, o.port, '127.0.0.1', onSent);
  };
  sock.bind({ port: 0, address: '127.0.0.1' }, () => {
    startNs = nowNs();
    cpu0 = cpuSeconds();
    deadlineNs = startNs + BigInt(Math.round(o.duration * 1e9));
    for (let i = 0; i < o.window; i++) one();
  });
}

// sockperf's header: u64 sequence, u16 flags at 8, u32 length at 10, all
// big endian; answer CLIENT|PONG_REQUEST messages that are not WARMUP with
// the CLIENT flag cleared.
function echo(o) {
  const sock = dgram.createSocket('udp4');
  sock.on('message', (msg, rinfo) => {
    if (msg.length < 14) return;
    const flags = msg.readUInt16BE(8);
    if (!(flags & 1) || (flags & 4) || !(flags & 2)) return;
    msg.writeUInt16BE(flags & ~1, 8);
    sock.send(msg, rinfo.port, rinfo.address);
  });
  sock.bind({ port: o.port, address: '127.0.0.1' }, () => {
    process.stdout.write(`ready ${sock.address().port} ${process.pid}\n`);
  });
}

// The echo scenario's Node peer: what a Node user writes for an echo.
function relay(o) {
  const sock = dgram.createSocket('udp4');
  let echoed = 0, failed = 0, done = false, port = 0;
  const onSent = (err) => { if (err) failed++; };
  const finish = () => {
    if (done) return;
    done = true;
    process.stdout.write(JSON.stringify({
      peer: 'node', echoed, send_errors: failed, drops: procDrops(port), node: process.version,
    }) + '\n');
    sock.close();
  };
  sock.on('message', (msg, rinfo) => {
    sock.send(msg, rinfo.port, rinfo.address, onSent);
    echoed++;
    if (o.count && echoed >= o.count) finish();
  });
  process.on('SIGTERM', finish);
  sock.bind({ port: o.port, address: '127.0.0.1' }, () => {
    port = sock.address().port;
    process.stdout.write(`ready ${port} ${process.pid}\n`);
  });
}

const o = parse(process.argv.slice(2));
const dgram = o.dgring ? require(require('node:path').resolve(o.dgring)) : require('node:dgram');
const PEER = o.dgring ? 'node-dgring' : 'node';
if (o.mode === 'recv') recv(o);
else if (o.mode === 'send') send(o);
else if (o.mode === 'echo') echo(o);
else if (o.mode === 'relay') relay(o);
else { process.stderr.write('usage: node node_bench.js recv|send|echo|relay ...\n'); process.exit(2); }
