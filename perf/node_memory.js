'use strict';
// perf/node_memory.js: memory of the Node module, against node:dgram.
//
//   node node_memory.js [--dgring DIR] [--sockets N] [--inflight N]
//
// Measures, in one process each: the resident set (RSS) and the JS heap
// after N bound sockets (127.0.0.1, ports from the kernel), divided by N
// (per socket); and the growth while N datagrams of 64 bytes are in
// flight (sent, callbacks not yet run), divided by N (per datagram in
// flight). Prints one JSON line. Like every perf/ program it runs by hand,
// never in the tests; DIR is bindings/node ($DGRING_NODE_ADDON may name
// the built addon).

const path = require('node:path');

function parse(argv) {
  const o = { sockets: 10000, inflight: 10000 };
  for (let i = 0; i < argv.length; i += 2) {
    if (argv[i] === '--dgring') o.dgring = argv[i + 1];
    else if (argv[i] === '--sockets') o.sockets = Number(argv[i + 1]);
    else if (argv[i] === '--inflight') o.inflight = Number(argv[i + 1]);
    else throw new Error(`unknown option ${argv[i]}`);
  }
  return o;
}

const o = parse(process.argv.slice(2));
const dgram = o.dgring ? require(path.resolve(o.dgring)) : require('node:dgram');

function usage() {
  global.gc?.();
  const m = process.memoryUsage();
  return { rss: m.rss, heap: m.heapUsed, external: m.external + m.arrayBuffers };
}

async function bindAll(n) {
  const sockets = [];
  for (let i = 0; i < n; i++) {
    const s = dgram.createSocket('udp4');
    sockets.push(new Promise((resolve) => s.bind(0, '127.0.0.1', () => resolve(s))));
  }
  return Promise.all(sockets);
}

async function main() {
  // One socket first, so the loop (and its buffer ring) exist in the baseline.
  const [first] = await bindAll(1);
  const base = usage();
  const sockets = await bindAll(o.sockets);
  const withSockets = usage();
  // Datagrams in flight: sent in one turn to a port that drops them; the
  // callbacks have not run when we measure.
  const sink = first.address().port;
  const payload = Buffer.alloc(64);
  let done = 0;
  const finished = new Promise((resolve) => {
    for (let i = 0; i < o.inflight; i++) {
      first.send(payload, sink, '127.0.0.1', () => { if (++done === o.inflight) resolve(); });
    }
  });
  const inFlight = usage();
  await finished;
  const per = (a, b, n) => ({ rss: Math.round((b.rss - a.rss) / n),
    heap: Math.round((b.heap - a.heap) / n), external: Math.round((b.external - a.external) / n) });
  process.stdout.write(`${JSON.stringify({
    peer: o.dgring ? 'node-dgring' : 'node', node: process.version, sockets: o.sockets,
    inflight: o.inflight, base, per_socket: per(base, withSockets, o.sockets),
    per_inflight_datagram: per(withSockets, inFlight, o.inflight),
  })}\n`);
  await Promise.all([first, ...sockets].map((s) => new Promise((r) => s.close(r))));
}

main();
