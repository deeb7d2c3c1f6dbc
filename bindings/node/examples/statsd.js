'use strict';
// A statsd-style metrics server, written for node:dgram: only the require
// line below names dgring. Clients send lines "name:value|type[|@rate]"
// (c counter, g gauge, ms timer, s set), several per datagram; every
// FLUSH_MS the server prints one JSON line with what it gathered and
// starts over. SIGTERM or SIGINT flushes once more and closes.
//
//   node statsd.js            listens on 8125 (STATSD_PORT, STATSD_HOST)
//   echo -n "hits:1|c" | nc -u -w0 127.0.0.1 8125

const dgram = require('dgring');

const port = Number(process.env.STATSD_PORT ?? 8125);
const host = process.env.STATSD_HOST ?? '127.0.0.1';
const flushMs = Number(process.env.FLUSH_MS ?? 10000);

let counters = new Map();
let gauges = new Map();
let timers = new Map();
let sets = new Map();
let bad = 0;
let packets = 0;

function record(line) {
  const m = /^([^:|]+):(-?[0-9.]+|[^|]+)\|(c|g|ms|s)(?:\|@([0-9.]+))?$/.exec(line);
  if (!m) {
    bad++;
    return;
  }
  const [, name, raw, type, rate] = m;
  const value = Number(raw);
  if (type !== 's' && !Number.isFinite(value)) {
    bad++;
    return;
  }
  if (type === 'c') counters.set(name, (counters.get(name) ?? 0) + value / (rate ? Number(rate) : 1));
  else if (type === 'g') gauges.set(name, /^[+-]/.test(raw) && gauges.has(name) ? gauges.get(name) + value : value);
  else if (type === 'ms') (timers.get(name) ?? timers.set(name, []).get(name)).push(value);
  else (sets.get(name) ?? sets.set(name, new Set()).get(name)).add(raw);
}

function flush() {
  const out = { packets, bad, counters: Object.fromEntries(counters), gauges: Object.fromEntries(gauges),
    timers: {}, sets: {} };
  for (const [name, list] of timers) {
    list.sort((a, b) => a - b);
    out.timers[name] = { count: list.length, min: list[0], max: list[list.length - 1],
      mean: list.reduce((a, b) => a + b, 0) / list.length };
  }
  for (const [name, set] of sets) out.sets[name] = set.size;
  process.stdout.write(`${JSON.stringify(out)}\n`);
  counters = new Map();
  timers = new Map();
  sets = new Map();
  packets = 0;
  bad = 0;
}

const server = dgram.createSocket('udp4');
server.on('message', (msg) => {
  packets++;
  for (const line of msg.toString().split('\n')) if (line) record(line);
});
server.on('error', (err) => {
  console.error(`statsd: ${err.message}`);
  server.close();
});
server.bind(port, host, () => {
  const a = server.address();
  console.error(`statsd: listening on ${a.address}:${a.port}`);
});

const timer = setInterval(flush, flushMs);
for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    clearInterval(timer);
    flush();
    server.close();
  });
}
