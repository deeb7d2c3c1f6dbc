'use strict';
// The module's own behaviour beyond what the differential harness
// compares with node:dgram: delivery in batches, Buffers the program owns,
// the largest datagrams, sends past dgring's queue bound, exceptions in
// handlers, async context, dgring's resolver errors in Node's shape.

const test = require('node:test');
const assert = require('node:assert');
const asyncHooks = require('node:async_hooks');
const nodeDgram = require('node:dgram');
const dgram = require('..');
const { child, closeLeftovers } = require('./common');

closeLeftovers(dgram, nodeDgram);

function bound(type = 'udp4', address = '127.0.0.1', options = {}) {
  const s = dgram.createSocket({ type, ...options });
  return new Promise((resolve) => s.bind(0, address, () => resolve(s)));
}

const close = (...sockets) => Promise.all(sockets.map((s) => new Promise((r) => s.close(r))));

test('backend() names the loop\'s backend, as DGRING_BACKEND asks', () => {
  const want = process.env.DGRING_BACKEND === 'epoll' ? 'epoll' : 'io_uring';
  assert.strictEqual(dgram.backend(), want);
});

// 64 datagrams already queued when the loop runs cross into JS in one
// call: the server's async resource (UDPWRAP) sees one 'before' for all.
test('datagrams queued together reach JS in one callback per batch', async () => {
  const server = await bound();
  const port = server.address().port;
  const ids = new Set();
  let befores = 0;
  const hook = asyncHooks.createHook({
    before(id) { if (ids.has(id)) befores++; },
  });
  let got = 0;
  const all = new Promise((resolve) => server.on('message', () => {
    ids.add(asyncHooks.executionAsyncId());
    if (++got === 64) resolve();
  }));
  // node:dgram sends inside send() (uv_udp_try_send): all 64 are in the
  // server's socket queue before this function returns to the loop.
  const sender = nodeDgram.createSocket('udp4');
  await new Promise((resolve) => sender.bind(0, '127.0.0.1', resolve));
  hook.enable();
  for (let i = 0; i < 64; i++) sender.send(Buffer.alloc(16, i), port, '127.0.0.1');
  await all;
  hook.disable();
  assert.strictEqual(ids.size, 1, 'every message in the socket\'s async context');
  assert.ok(befores <= 2, `64 datagrams took ${befores} crossings into JS`);
  await close(server, sender);
});

test('received Buffers belong to the program; large ones have their own memory', async () => {
  const server = await bound();
  const c = await bound();
  const msgs = [];
  const got = new Promise((resolve) => server.on('message', (m) => {
    msgs.push(m);
    if (msgs.length === 3) resolve();
  }));
  c.send(Buffer.alloc(10, 1), server.address().port, '127.0.0.1');
  c.send(Buffer.alloc(5000, 2), server.address().port, '127.0.0.1');
  c.send(Buffer.alloc(10, 3), server.address().port, '127.0.0.1');
  await got;
  assert.ok(msgs.every((m) => Buffer.isBuffer(m)));
  const big = msgs.find((m) => m.length === 5000);
  assert.strictEqual(big.buffer.byteLength, 5000, 'a datagram of 4 KiB or more has its own ArrayBuffer');
  msgs[0].fill(9); // the program may write its Buffers
  assert.ok(msgs.filter((m) => m.length === 10).some((m) => m[0] === 3));
  await close(server, c);
});

// Small payloads are copied into a pool that later batches keep filling
// and then replace (src/tape.c): Buffers the program keeps stay intact
// across many batches and pools, and each is its own bytes.
test('retained Buffers stay intact while later batches fill and replace the pool', async () => {
  const server = await bound();
  const c = await bound();
  const port = server.address().port;
  const kept = [];
  let want = 0;
  let wake = null;
  server.on('message', (m) => {
    kept.push(m);
    if (kept.length === want && wake) wake();
  });
  const rounds = 40;
  const per = 50; // 2000 datagrams of 100 bytes: several 64 KiB pools
  for (let r = 0; r < rounds; r++) {
    const arrived = new Promise((resolve) => { wake = resolve; });
    want += per;
    for (let i = 0; i < per; i++) {
      const n = r * per + i;
      const b = Buffer.alloc(100, n & 0xff);
      b.writeUInt32LE(n, 0);
      c.send(b, port, '127.0.0.1');
    }
    await arrived;
  }
  const pools = new Set(kept.map((m) => m.buffer));
  assert.ok(pools.size >= 3, `2000 datagrams came in ${pools.size} pools`);
  kept.sort((a, b) => a.readUInt32LE(0) - b.readUInt32LE(0));
  kept[0].fill(0xee); // a program's write touches only its own Buffer
  for (let n = 0; n < rounds * per; n++) {
    const m = kept[n];
    assert.strictEqual(m.length, 100);
    assert.strictEqual(m.byteOffset % 8, 0, 'offsets aligned as in Node\'s pool');
    if (n === 0) continue;
    assert.strictEqual(m.readUInt32LE(0), n);
    assert.ok(m.subarray(4).every((v) => v === (n & 0xff)), `datagram ${n} intact`);
  }
  await close(server, c);
});

// A single 'message' listener is called without EventEmitter's emit()
// (lib/loop.js) only where nothing could tell: an emit the program put on
// the socket, rejections captured, a domain, each still see every message.
test('an emit() of the program\'s own sees every message', async () => {
  const server = await bound();
  const c = await bound();
  const seen = [];
  const got = new Promise((resolve) => server.on('message', (m) => { if (seen.length === 2) resolve(); }));
  const emit = server.emit;
  server.emit = function ownEmit(type, ...args) {
    if (type === 'message') seen.push(args[0].toString());
    return emit.call(this, type, ...args);
  };
  c.send('a', server.address().port, '127.0.0.1');
  c.send('b', server.address().port, '127.0.0.1');
  await got;
  assert.deepStrictEqual(seen, ['a', 'b']);
  await close(server, c);
});

test('captureRejections: a rejected async message handler becomes \'error\'', { timeout: 60000 }, async () => {
  const EventEmitter = require('node:events');
  EventEmitter.captureRejections = true;
  let server;
  try {
    server = await bound();
  } finally {
    EventEmitter.captureRejections = false;
  }
  const c = await bound();
  server.on('message', async (m) => { throw new Error(`rejected ${m}`); });
  const failed = new Promise((resolve) => server.on('error', resolve));
  c.send('x', server.address().port, '127.0.0.1');
  const err = await failed;
  assert.strictEqual(err.message, 'rejected x');
  await close(server, c);
});

test('an EventEmitter emit() replaced before dgring loads sees every message', async () => {
  const code = `const EventEmitter = require('node:events');
    const emit = EventEmitter.prototype.emit;
    let seen = 0;
    EventEmitter.prototype.emit = function traced(type, ...args) {
      if (type === 'message') seen++;
      return emit.call(this, type, ...args);
    };
    const dgram = require('.');
    const s = dgram.createSocket('udp4');
    s.on('message', () => { console.log('seen ' + seen); s.close(); });
    s.bind(0, '127.0.0.1', () => s.send('z', s.address().port, '127.0.0.1'));`;
  const r = await child(code);
  assert.strictEqual(r.stdout.trim(), 'seen 1', r.stderr);
});

for (const order of ['before', 'after']) {
  test(`a domain loaded ${order} dgring catches a message handler's exception`, async () => {
    const load = order === 'before' ? "const domain = require('node:domain'); const dgram = require('.');"
      : "const dgram = require('.'); const domain = require('node:domain');";
    const code = `${load}
      const d = domain.create();
      d.on('error', (e) => { console.log('domain ' + e.message); process.exit(0); });
      const s = dgram.createSocket('udp4');
      d.add(s);
      s.on('message', (m) => { throw new Error('boom ' + m); });
      s.bind(0, '127.0.0.1', () => s.send('y', s.address().port, '127.0.0.1'));`;
    const r = await child(code);
    assert.strictEqual(r.stdout.trim(), 'domain boom y', r.stderr);
    assert.strictEqual(r.status, 0);
  });
}

// The addon reuses the last sender's address string from one batch to the
// next (src/tape.c): senders that alternate, one datagram per batch and
// several in one, each get their own rinfo.
test('rinfo.address is each datagram\'s own when senders alternate', async () => {
  const server = await bound('udp6', '::');
  const port = server.address().port;
  const four = await bound('udp4', '127.0.0.1');
  const six = await bound('udp6', '::1');
  const want = new Map([[four.address().port, '::ffff:127.0.0.1'], [six.address().port, '::1']]);
  const seen = [];
  server.on('message', (m, rinfo) => seen.push([m.toString(), rinfo.address, rinfo.port]));
  const arrived = async (n) => { while (seen.length < n) await new Promise(setImmediate); };
  const order = [four, six, six, four, four, six];
  for (let i = 0; i < order.length; i++) {
    order[i].send(`m${i}`, port, order[i].type === 'udp4' ? '127.0.0.1' : '::1');
    await arrived(i + 1);
  }
  for (let i = 0; i < 6; i++) nodeSend(i % 2 ? '::1' : '127.0.0.1', port, `b${i}`);
  await arrived(order.length + 6);
  for (const [text, address, from] of seen) {
    if (from !== four.address().port && from !== six.address().port) {
      assert.strictEqual(address, text.slice(1) % 2 ? '::1' : '::ffff:127.0.0.1', text);
    } else {
      assert.strictEqual(address, want.get(from), text);
    }
  }
  await close(server, four, six);
  await closeNodeSenders();
});

// node:dgram senders, one per family, that send inside send() (so several
// datagrams are queued before the server's loop runs).
const nodeSenders = {};
function nodeSend(address, port, text) {
  const type = address === '::1' ? 'udp6' : 'udp4';
  nodeSenders[type] ??= nodeDgram.createSocket(type);
  nodeSenders[type].send(text, port, address);
}
const closeNodeSenders = () => close(...Object.values(nodeSenders));

for (const [type, address, size] of [['udp4', '127.0.0.1', 65507], ['udp6', '::1', 65527]]) {
  test(`the largest ${type} datagram (${size} bytes) arrives whole`, async () => {
    const server = await bound(type, address);
    const c = await bound(type, address);
    const payload = Buffer.alloc(size, 7);
    const got = new Promise((resolve) => server.on('message', (m, rinfo) => resolve([m, rinfo])));
    const sent = new Promise((resolve) => c.send(payload, server.address().port, address,
      (err, n) => resolve([err, n])));
    assert.deepStrictEqual(await sent, [null, size]);
    const [m, rinfo] = await got;
    assert.strictEqual(rinfo.size, size);
    assert.ok(m.equals(payload));
    await close(server, c);
  });
}

test('sends past dgring\'s queue bound wait and complete in order', async () => {
  const server = await bound();
  const c = await bound();
  const n = 40000;
  const order = [];
  let received = 0;
  server.on('message', () => { received++; });
  const done = new Promise((resolve) => {
    for (let i = 0; i < n; i++) {
      c.send('x', server.address().port, '127.0.0.1', (err) => {
        assert.ifError(err);
        order.push(i);
        if (order.length === n) resolve();
      });
    }
  });
  assert.ok(c.getSendQueueCount() === n, `queue count ${c.getSendQueueCount()}`);
  assert.strictEqual(c.getSendQueueSize(), n);
  await done;
  assert.ok(order.every((v, i) => v === i), 'callbacks in call order');
  assert.strictEqual(c.getSendQueueCount(), 0);
  assert.strictEqual(c.getSendQueueSize(), 0);
  assert.ok(received > 0);
  await close(server, c);
});

test('closing with sends still queued past the bound completes them with ECANCELED', async () => {
  const c = await bound();
  const errors = [];
  let calls = 0;
  for (let i = 0; i < 20000; i++) {
    c.send('x', 9, '127.0.0.1', (err) => {
      calls++;
      if (err) errors.push(err.code);
    });
  }
  await close(c);
  while (calls < 20000) await new Promise(setImmediate);
  assert.strictEqual(calls, 20000, 'every send completes once');
  assert.ok(errors.every((code) => code === 'ECANCELED'));
});

test('an exception in a message handler is uncaught once, and later messages still come', async () => {
  const r = await child(`
    const dgram = require('.');
    let caught = 0, seen = 0;
    process.on('uncaughtException', (e) => { caught++; });
    const s = dgram.createSocket('udp4');
    s.on('message', (m) => {
      seen++;
      if (m.toString() === 'throw') throw new Error('boom');
      if (seen === 4) { console.log('seen ' + seen + ' caught ' + caught); s.close(); c.close(); }
    });
    const c = require('node:dgram').createSocket('udp4');
    s.bind(0, '127.0.0.1', () => {
      for (const m of ['a', 'throw', 'throw', 'b']) c.send(m, s.address().port, '127.0.0.1');
    });`);
  assert.strictEqual(r.status, 0, r.stderr);
  assert.match(r.stdout, /seen 4 caught 2/);
});

test('an exception in a handler with no uncaughtException handler ends the process', async () => {
  const r = await child(`
    const dgram = require('.');
    const s = dgram.createSocket('udp4');
    s.on('listening', () => { throw new Error('from listening'); });
    s.bind(0, '127.0.0.1');`);
  assert.notStrictEqual(r.status, 0);
  assert.match(r.stderr, /from listening/);
});

// Node runs the ticks a 'message' handler queued before the next message;
// dgring runs them after the batch the message came in (docs/node.md).
test('process.nextTick callbacks queued by handlers all run, in order', async () => {
  const server = await bound();
  const c = await bound();
  const order = [];
  const done = new Promise((resolve) => server.on('message', (m) => {
    order.push(`message ${m}`);
    process.nextTick(() => order.push(`tick ${m}`));
    if (String(m) === '2') setImmediate(resolve);
  }));
  c.send('1', server.address().port, '127.0.0.1');
  c.send('2', server.address().port, '127.0.0.1');
  await done;
  assert.deepStrictEqual(order.filter((e) => e.startsWith('tick')), ['tick 1', 'tick 2']);
  await close(server, c);
});

// Events run in the socket's context (UDPWRAP, from createSocket), a send
// callback in the context send() was called in (SENDWRAP), as in Node.
test('AsyncLocalStorage: events in the socket\'s context, send callbacks in send()\'s', async () => {
  const als = new asyncHooks.AsyncLocalStorage();
  const server = await als.run('server', () => bound());
  const c = await als.run('client', () => bound());
  const seen = {};
  const got = new Promise((resolve) => server.on('message', () => {
    seen.message = als.getStore();
    resolve();
  }));
  const sent = als.run('send', () => new Promise((resolve) => c.send('x', server.address().port,
    '127.0.0.1', () => {
      seen.send = als.getStore();
      resolve();
    })));
  await Promise.all([got, sent]);
  assert.deepStrictEqual(seen, { message: 'server', send: 'send' });
  await close(server, c);
});

test('dgring\'s resolver errors read as getaddrinfo errors', async () => {
  // tests/meson.build points DGRING_DNS_SERVERS at a loopback port where
  // nothing answers: a name that is not in the hosts file cannot resolve.
  const s = dgram.createSocket('udp4');
  const err = await new Promise((resolve) => s.send('x', 9, 'no-such-host.invalid', resolve));
  assert.strictEqual(err.syscall, 'getaddrinfo');
  assert.strictEqual(err.hostname, 'no-such-host.invalid');
  assert.ok(['ENOTFOUND', 'EAI_AGAIN'].includes(err.code), err.code);
  assert.match(err.message, /^getaddrinfo (ENOTFOUND|EAI_AGAIN) no-such-host\.invalid$/);
  assert.strictEqual(typeof err.errno, 'number');
  await close(s);
});

test('a lookup function that throws: the exception comes out of the call', async () => {
  const lookup = () => { throw new Error('lookup threw'); };
  const s = dgram.createSocket({ type: 'udp4', lookup });
  let errors = 0;
  s.on('error', () => { errors++; });
  assert.throws(() => s.bind(0, 'example.invalid'), /lookup threw/);
  await new Promise(setImmediate);
  assert.strictEqual(errors, 0, 'and no error event follows it');
  await close(s);
});

test('a lookup function answering later, and twice', async () => {
  const server = await bound();
  const calls = [];
  const lookup = (host, family, cb) => {
    calls.push([host, family]);
    setTimeout(() => { cb(null, '127.0.0.1', 4); cb(null, '10.0.0.1', 4); }, 5);
  };
  const c = dgram.createSocket({ type: 'udp4', lookup });
  const got = new Promise((resolve) => server.on('message', (m) => resolve(m.toString())));
  const sent = new Promise((resolve) => c.send('late', server.address().port, 'server.test',
    (err, n) => resolve([err, n])));
  assert.deepStrictEqual(await sent, [null, 4]);
  assert.strictEqual(await got, 'late');
  // (Their order is pinned by the differential harness: allowed.js.)
  assert.deepStrictEqual(calls.sort(), [['0.0.0.0', 4], ['server.test', 4]]);
  await close(server, c);
});

test('connected sockets: ECONNREFUSED from a closed port reaches the callback or error', async () => {
  const gone = await bound();
  const port = gone.address().port;
  await close(gone);
  const c = dgram.createSocket('udp4');
  await new Promise((resolve) => c.connect(port, '127.0.0.1', resolve));
  const errors = [];
  c.on('error', (e) => errors.push(`${e.syscall} ${e.code}`));
  for (let i = 0; i < 3; i++) {
    await new Promise((resolve) => c.send('x', (err) => {
      if (err) errors.push(`${err.syscall} ${err.code}`);
      resolve();
    }));
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  assert.ok(errors.length > 0 && errors.every((e) => /ECONNREFUSED/.test(e)), errors.join());
  await close(c);
});
