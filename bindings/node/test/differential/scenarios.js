'use strict';
// The scenarios of the differential harness, each written once against a
// dgram module. Every socket a scenario opens it closes, and it waits for
// what it records, so a trace does not depend on timing. Traffic stays on
// 127.0.0.1 and ::1, ports come from the kernel, and every host name goes
// through a scripted lookup function or is "localhost".

const { once, turns } = require('./harness');
const allowed = require('./allowed');

const nodeMajor = Number(process.versions.node.split('.')[0]);

// Closes sockets and waits for their 'close' events, recording them.
async function closeAll(trace, ...sockets) {
  await Promise.all(sockets.map((s, i) => new Promise((resolve) => {
    s.close(() => {
      trace.add(`close ${i}`);
      resolve();
    });
  })));
}

async function bound(dgram, type, address, options = {}) {
  const s = dgram.createSocket({ type, ...options });
  s.bind(0, address);
  await once(s, 'listening');
  return s;
}

// Records every event of a socket under a name.
function watch(trace, name, s, events = ['listening', 'connect', 'error', 'close']) {
  for (const ev of events) s.on(ev, (...args) => trace.add(`${name} ${ev}`, ...args));
}

const scenarios = [];
function scenario(name, run, differs) {
  scenarios.push({ name, run, differs });
}

// ---- creation ---------------------------------------------------------------

scenario('createSocket: types and bad options', async (dgram, t) => {
  for (const type of ['udp4', 'udp6', { type: 'udp4' }, { type: 'udp6', ipv6Only: true }]) {
    const s = t.call(`create ${JSON.stringify(type)}`, () => dgram.createSocket(type) && 'ok');
    if (s) dgram.createSocket(type).close();
  }
  // Node 18's dgram (Debian 12's node) does not check buffer sizes at
  // creation; dgring checks them as Node 20 does, so they are compared only
  // where the oracle checks them too.
  const sizes = nodeMajor >= 20 ? [{ type: 'udp4', recvBufferSize: -1 },
    { type: 'udp4', sendBufferSize: 1.5 }, { type: 'udp4', recvBufferSize: 'x' }] : [];
  for (const bad of ['udp5', undefined, null, 4, { type: 'tcp' }, { type: 'udp4', lookup: 1 },
    ...sizes, { type: 'udp4', signal: {} }]) {
    t.call(`create ${JSON.stringify(bad)}`, () => dgram.createSocket(bad));
  }
  t.add('Socket is exported', typeof dgram.Socket === 'function');
  const s = new dgram.Socket('udp4', () => {});
  t.add('new Socket listeners', s.listenerCount('message'), s.type);
  await closeAll(t, s);
});

scenario('close before bind; calls after close', async (dgram, t) => {
  const s = dgram.createSocket('udp4');
  watch(t, 's', s);
  t.call('close returns this', () => s.close() === s);
  t.call('close again', () => s.close());
  t.call('bind', () => s.bind(0));
  t.call('send', () => s.send('x', 9, '127.0.0.1'));
  t.call('address', () => s.address());
  t.call('remoteAddress', () => s.remoteAddress());
  t.call('connect', () => s.connect(9));
  t.call('setMulticastInterface', () => s.setMulticastInterface('127.0.0.1'));
  t.call('addMembership', () => s.addMembership('224.0.0.114'));
  t.call('ref', () => s.ref() === s);
  t.call('unref', () => s.unref() === s);
  t.call('getRecvBufferSize', () => s.getRecvBufferSize());
  await once(s, 'close');
  await turns(2);
}, allowed.closedSetters);

// ---- bind -------------------------------------------------------------------

scenario('bind: defaults, address(), listening after bind returned', async (dgram, t) => {
  for (const type of ['udp4', 'udp6']) {
    const s = dgram.createSocket(type);
    let returned = false;
    s.on('listening', () => t.add(`${type} listening after return`, returned));
    t.call(`${type} address before bind`, () => s.address());
    t.call(`${type} bind returns this`, () => s.bind() === s);
    returned = true;
    await once(s, 'listening');
    const a = s.address();
    t.add(`${type} address`, a.address, a.family, a.port > 0);
    await closeAll(t, s);
  }
});

scenario('bind: forms and callback', async (dgram, t) => {
  const forms = [
    [0, '127.0.0.1'], [{ port: 0, address: '127.0.0.1' }], [{ address: '127.0.0.1' }],
    ['0', '127.0.0.1'], [{}], [undefined, undefined], [0, 'localhost'],
  ];
  for (const args of forms) {
    const s = dgram.createSocket('udp4');
    const got = new Promise((resolve) => s.bind(...args, function() {
      t.add(`bind ${JSON.stringify(args)} callback`, this === s, arguments.length);
      resolve();
    }));
    await got;
    t.add('address', s.address().address);
    await closeAll(t, s);
  }
});

scenario('bind: twice, while binding and when bound', async (dgram, t) => {
  const s = dgram.createSocket('udp4');
  s.bind(0, '127.0.0.1');
  t.call('bind while binding', () => s.bind(0));
  await once(s, 'listening');
  t.call('bind when bound', () => s.bind(0));
  await closeAll(t, s);
});

scenario('bind: an address the machine does not have', async (dgram, t) => {
  const s = dgram.createSocket('udp4');
  watch(t, 's', s);
  s.bind(0, '192.0.2.1', () => t.add('callback (must not run)'));
  await once(s, 'error');
  t.add('error listeners after', s.listenerCount('error'), s.listenerCount('listening'));
  await closeAll(t, s);
});

scenario('bind: port in use, then bind again', async (dgram, t) => {
  const a = await bound(dgram, 'udp4', '127.0.0.1');
  const b = dgram.createSocket('udp4');
  watch(t, 'b', b);
  b.bind(a.address().port, '127.0.0.1');
  await once(b, 'error');
  b.bind(0, '127.0.0.1');
  await once(b, 'listening');
  await closeAll(t, a, b);
});

scenario('bind: reuseAddr shares a port', async (dgram, t) => {
  const a = await bound(dgram, 'udp4', '127.0.0.1', { reuseAddr: true });
  const b = dgram.createSocket({ type: 'udp4', reuseAddr: true });
  watch(t, 'b', b);
  b.bind(a.address().port, '127.0.0.1');
  await once(b, 'listening', 'error');
  t.add('same port', a.address().port === b.address().port);
  await closeAll(t, a, b);
});

scenario('bind: port out of range', async (dgram, t) => {
  const s = dgram.createSocket('udp4');
  watch(t, 's', s);
  t.call('bind 65536', () => s.bind(65536, '127.0.0.1'));
  await turns(3);
  await closeAll(t, s);
}, allowed.bindPortRange);

scenario('bind: udp4 to an IPv6 literal, a name that does not resolve', async (dgram, t) => {
  const s = dgram.createSocket('udp4');
  watch(t, 's', s);
  s.bind(0, '::1');
  await once(s, 'error');
  const lookup = (host, family, cb) => cb(Object.assign(new Error('scripted'), { code: 'ENOTFOUND' }));
  const r = dgram.createSocket({ type: 'udp4', lookup });
  watch(t, 'r', r);
  const failed = once(r, 'error'); // Node emits it inside bind() here
  r.bind(0, 'nowhere.invalid');
  await failed;
  await closeAll(t, s, r);
});

// ---- send and receive ------------------------------------------------------------

// Sends each form from a client to a server and records what arrives.
async function sendForms(dgram, t, type, loopback, forms) {
  const server = await bound(dgram, type, loopback);
  const port = server.address().port;
  const client = dgram.createSocket(type);
  watch(t, 'client', client);
  for (const [label, send] of forms) {
    const got = once(server, 'message');
    const sent = new Promise((resolve) => {
      t.call(label, () => send(client, port, (err, n) => {
        t.add(`${label} callback`, err, n);
        resolve();
      }));
    });
    await sent;
    const [, msg, rinfo] = await got;
    t.add(`${label} received`, msg, rinfo.address, rinfo.family, rinfo.size,
      rinfo.port === client.address().port, Object.keys(rinfo));
  }
  await closeAll(t, server, client);
}

const buf = Buffer.from('hello');
scenario('send: every form, udp4', (dgram, t) => sendForms(dgram, t, 'udp4', '127.0.0.1', [
  ['buffer', (c, p, cb) => c.send(buf, p, '127.0.0.1', cb)],
  ['buffer no address', (c, p, cb) => c.send(buf, p, cb)],
  ['buffer empty address', (c, p, cb) => c.send(buf, p, '', cb)],
  ['slice', (c, p, cb) => c.send(buf, 1, 3, p, '127.0.0.1', cb)],
  ['slice no address', (c, p, cb) => c.send(buf, 1, 3, p, cb)],
  ['string', (c, p, cb) => c.send('text', p, '127.0.0.1', cb)],
  ['list', (c, p, cb) => c.send([buf, 'x', new Uint8Array([1, 2])], p, '127.0.0.1', cb)],
  ['empty list', (c, p, cb) => c.send([], p, '127.0.0.1', cb)],
  ['empty buffer', (c, p, cb) => c.send(Buffer.alloc(0), p, '127.0.0.1', cb)],
  ['Uint16Array', (c, p, cb) => c.send(new Uint16Array([1, 2]), p, '127.0.0.1', cb)],
  ['DataView', (c, p, cb) => c.send(new DataView(new ArrayBuffer(3)), p, '127.0.0.1', cb)],
  ['string port', (c, p, cb) => c.send(buf, String(p), '127.0.0.1', cb)],
  ['localhost', (c, p, cb) => c.send(buf, p, 'localhost', cb)],
  ['sendto', (c, p, cb) => c.sendto(buf, 0, 2, p, '127.0.0.1', cb)],
]));

scenario('send: udp6', (dgram, t) => sendForms(dgram, t, 'udp6', '::1', [
  ['buffer', (c, p, cb) => c.send(buf, p, '::1', cb)],
  ['no address', (c, p, cb) => c.send(buf, p, cb)],
]));

scenario('send: bad arguments', async (dgram, t) => {
  const s = dgram.createSocket('udp4');
  watch(t, 's', s);
  const bad = [
    ['port 0', () => s.send(buf, 0, '127.0.0.1')],
    ['port -1', () => s.send(buf, -1, '127.0.0.1')],
    ['port 65536', () => s.send(buf, 65536, '127.0.0.1')],
    ['port string', () => s.send(buf, 'x', '127.0.0.1')],
    ['no port', () => s.send(buf)],
    ['number buffer', () => s.send(5, 9, '127.0.0.1')],
    ['object buffer', () => s.send({}, 9, '127.0.0.1')],
    ['list of numbers', () => s.send([1], 9, '127.0.0.1')],
    ['offset past end', () => s.send(buf, 6, 0, 9, '127.0.0.1')],
    ['length past end', () => s.send(buf, 2, 4, 9, '127.0.0.1')],
    ['address number', () => s.send(buf, 9, 5)],
    ['sendto no address', () => s.sendto(buf, 0, 1, 9)],
  ];
  for (const [label, fn] of bad) t.call(label, fn);
  await turns(3);
  t.call('address (never bound)', () => s.address());
  await closeAll(t, s);
});

scenario('send: implicit bind, listening before the callbacks', async (dgram, t) => {
  const server = await bound(dgram, 'udp4', '127.0.0.1');
  const port = server.address().port;
  const c = dgram.createSocket('udp4');
  watch(t, 'c', c);
  let n = 0;
  const done = new Promise((resolve) => {
    for (let i = 0; i < 3; i++) {
      c.send(`m${i}`, port, '127.0.0.1', (err, bytes) => {
        t.add(`send ${i} callback`, err, bytes);
        if (++n === 3) resolve();
      });
    }
  });
  const got = [];
  server.on('message', (m) => got.push(m.toString()));
  await done;
  while (got.length < 3) await turns(1);
  t.add('received in order', got);
  t.add('bound to', c.address().address);
  t.call('bind after implicit bind', () => c.bind(0));
  await closeAll(t, server, c);
});

scenario('send: oversized datagrams', async (dgram, t) => {
  const s = dgram.createSocket('udp4');
  watch(t, 's', s);
  for (const size of [65507, 65508, 70000]) {
    await new Promise((resolve) => {
      s.send(Buffer.alloc(size), 9, '127.0.0.1', (err, n) => {
        t.add(`send ${size}`, err, n);
        resolve();
      });
    });
  }
  await closeAll(t, s);
});

scenario('send: lookup failure, with and without a callback', async (dgram, t) => {
  const lookup = (host, family, cb) => {
    t.add('lookup', host, family);
    if (host === 'bad.invalid') cb(Object.assign(new Error('scripted failure'), { code: 'ENOTFOUND' }));
    else cb(null, '127.0.0.1', 4);
  };
  const s = dgram.createSocket({ type: 'udp4', lookup });
  watch(t, 's', s);
  await new Promise((resolve) => s.send('x', 9, 'bad.invalid', (err) => {
    t.add('callback', err);
    resolve();
  }));
  s.send('x', 9, 'bad.invalid');
  await once(s, 'error');
  await closeAll(t, s);
});

scenario('send: queue size and count', async (dgram, t) => {
  const s = dgram.createSocket('udp4');
  t.add('new', s.getSendQueueSize(), s.getSendQueueCount());
  const server = await bound(dgram, 'udp4', '127.0.0.1');
  s.connect(server.address().port, '127.0.0.1');
  await once(s, 'connect');
  let n = 0;
  const done = new Promise((resolve) => {
    for (let i = 0; i < 2; i++) s.send('12345', () => { if (++n === 2) resolve(); });
  });
  t.add('after two sends', s.getSendQueueSize(), s.getSendQueueCount());
  await done;
  t.add('after callbacks', s.getSendQueueSize(), s.getSendQueueCount());
  await closeAll(t, server, s);
}, allowed.sendQueueAfterSend);

// ---- connect ---------------------------------------------------------------------

scenario('connect: the state machine', async (dgram, t) => {
  const server = await bound(dgram, 'udp4', '127.0.0.1');
  const port = server.address().port;
  const s = dgram.createSocket('udp4');
  watch(t, 's', s);
  t.call('connect port 0', () => s.connect(0));
  t.call('connect port 65536', () => s.connect(65536));
  t.call('connect address number', () => s.connect(port, 5));
  t.call('disconnect unconnected', () => s.disconnect());
  t.call('remoteAddress unconnected', () => s.remoteAddress());
  t.call('connect', () => s.connect(port, () => t.add('connect callback')));
  t.call('connect while connecting', () => s.connect(port));
  t.call('disconnect while connecting', () => s.disconnect());
  await once(s, 'connect');
  await turns(1);
  t.call('remoteAddress', () => s.remoteAddress());
  t.call('connect when connected', () => s.connect(port));
  t.call('send with port', () => s.send('x', port));
  t.call('send with address', () => s.send('x', port, '127.0.0.1'));
  const got = once(server, 'message');
  await new Promise((resolve) => s.send('hi', (err, n) => { t.add('send', err, n); resolve(); }));
  t.add('server got', (await got)[1]);
  await new Promise((resolve) => s.send(buf, 1, 2, (err, n) => { t.add('slice', err, n); resolve(); }));
  t.call('disconnect', () => s.disconnect());
  t.call('disconnect again', () => s.disconnect());
  t.call('remoteAddress after', () => s.remoteAddress());
  s.connect(port, '127.0.0.1');
  await once(s, 'connect');
  await closeAll(t, server, s);
});

scenario('connect: lookup failure, then connect again', async (dgram, t) => {
  const lookup = (host, family, cb) => {
    if (host === 'bad.invalid') cb(Object.assign(new Error('scripted failure'), { code: 'EAI_FAIL' }));
    else cb(null, '127.0.0.1', 4);
  };
  const s = dgram.createSocket({ type: 'udp4', lookup });
  watch(t, 's', s);
  s.connect(9, 'bad.invalid', (err) => t.add('callback', err));
  await turns(5);
  s.connect(9, 'bad.invalid');
  await once(s, 'error');
  s.connect(9, 'good.invalid');
  await once(s, 'connect');
  t.call('remoteAddress', () => s.remoteAddress());
  await closeAll(t, s);
});

// ---- what waits for 'listening' ---------------------------------------------------

// A scripted lookup that records each call and answers on the next turn.
function laterLookup(t, fail = () => false) {
  return (host, family, cb) => {
    t.add('lookup', host);
    setImmediate(() => {
      if (fail(host)) cb(Object.assign(new Error(`scripted failure ${host}`), { code: 'EAI_FAIL' }));
      else cb(null, host === 'peer.test' || host === 'first.test' ? '127.0.0.1' : host, 4);
    });
  };
}

scenario("queue: sends and a connect behind the implicit bind, looked up after 'listening'",
  async (dgram, t) => {
    const server = await bound(dgram, 'udp4', '127.0.0.1');
    const port = server.address().port;
    const s = dgram.createSocket({ type: 'udp4', lookup: laterLookup(t) });
    watch(t, 's', s, ['listening', 'error', 'close']);
    // The callbacks' relative order is the loop's (see sendQueueAfterSend);
    // what each got is recorded once both ran.
    const got = {};
    const sent = new Promise((resolve) => s.send('one', port, 'first.test', (err, n) => {
      got.send = [err, n];
      resolve();
    }));
    const connected = new Promise((resolve) => s.connect(port, 'peer.test', (err) => {
      got.connect = err;
      resolve();
    }));
    await Promise.all([sent, connected]);
    t.add('send callback', ...got.send);
    t.add('connect callback', got.connect);
    t.call('remoteAddress', () => s.remoteAddress());
    await closeAll(t, server, s);
  });

scenario('queue: the implicit bind fails (E3)', async (dgram, t) => {
  const s = dgram.createSocket({ type: 'udp4', lookup: laterLookup(t, (h) => h === '0.0.0.0') });
  watch(t, 's', s);
  s.send('a', 9, '127.0.0.1', (err) => t.add('send a callback', err));
  s.send('b', 9, '127.0.0.1');
  s.connect(9, '127.0.0.1', (err) => t.add('connect callback', err));
  await once(s, 'error');
  await turns(3);
  await closeAll(t, s);
}, allowed.implicitBindFails);

scenario('queue: close() while a send waits for the bind (E4)', async (dgram, t) => {
  const server = await bound(dgram, 'udp4', '127.0.0.1');
  const s = dgram.createSocket('udp4');
  watch(t, 's', s);
  s.send('x', server.address().port, '127.0.0.1', (err, n) => t.add('send callback', err, n));
  s.close(() => t.add('close callback'));
  await once(s, 'close');
  await turns(3);
  await closeAll(t, server);
}, allowed.closeBeforeListening);

scenario('membership on an unbound socket, then bind() (E6)', async (dgram, t) => {
  const s = dgram.createSocket({ type: 'udp4', reuseAddr: true });
  watch(t, 's', s);
  t.call('addMembership', () => s.addMembership('224.0.0.114', '127.0.0.1'));
  t.call('bind', () => s.bind(0) === s);
  await turns(5);
  await closeAll(t, s);
}, allowed.membershipBinds);

scenario('a lookup function that answers inside the call', async (dgram, t) => {
  const lookup = (host, family, cb) => cb(null, '127.0.0.1', 4);
  const s = dgram.createSocket({ type: 'udp4', lookup });
  watch(t, 's', s);
  t.call('bind', () => s.bind(0, 'sync.test') === s);
  t.add('bind returned');
  await turns(3);
  await closeAll(t, s);
}, allowed.lookupAnswersInside);

scenario('a lookup function that throws: out of bind(), send() and connect()', async (dgram, t) => {
  const lookup = (host, family, cb) => {
    if (host === 'boom.test') throw new Error('lookup threw');
    cb(null, '127.0.0.1', 4);
  };
  const s = dgram.createSocket({ type: 'udp4', lookup });
  watch(t, 's', s);
  t.call('bind', () => s.bind(0, 'boom.test'));
  t.call('bind again', () => s.bind(0));
  const r = dgram.createSocket({ type: 'udp4', lookup });
  watch(t, 'r', r);
  await new Promise((resolve) => r.bind(0, '127.0.0.1', resolve));
  t.call('send', () => r.send('x', 9, 'boom.test', (err) => t.add('send callback', err)));
  t.call('connect', () => r.connect(9, 'boom.test', (err) => t.add('connect callback', err)));
  t.call('connect again', () => r.connect(9, '127.0.0.1'));
  await turns(5);
  await closeAll(t, s, r);
});

// ---- options -----------------------------------------------------------------------

scenario('options: unbound socket', async (dgram, t) => {
  const s = dgram.createSocket('udp4');
  t.call('setTTL', () => s.setTTL(5));
  t.call('setMulticastTTL', () => s.setMulticastTTL(5));
  t.call('setBroadcast', () => s.setBroadcast(true));
  t.call('setMulticastLoopback', () => s.setMulticastLoopback(true));
  t.call('getRecvBufferSize', () => s.getRecvBufferSize());
  t.call('setSendBufferSize', () => s.setSendBufferSize(8192));
  await closeAll(t, s);
});

scenario('options: bound socket', async (dgram, t) => {
  const s = await bound(dgram, 'udp4', '127.0.0.1');
  t.call('setTTL 1', () => s.setTTL(1));
  t.call('setTTL 255', () => s.setTTL(255));
  t.call('setTTL 0', () => s.setTTL(0));
  t.call('setTTL 256', () => s.setTTL(256));
  t.call('setTTL string', () => s.setTTL('5'));
  t.call('setMulticastTTL 0', () => s.setMulticastTTL(0));
  t.call('setMulticastTTL 256', () => s.setMulticastTTL(256));
  t.call('setMulticastTTL null', () => s.setMulticastTTL(null));
  t.call('setBroadcast', () => s.setBroadcast(1));
  t.call('setMulticastLoopback', () => s.setMulticastLoopback('yes'));
  t.call('setMulticastInterface', () => s.setMulticastInterface('127.0.0.1'));
  t.call('setMulticastInterface ::1', () => s.setMulticastInterface('::1'));
  t.call('setMulticastInterface bad', () => s.setMulticastInterface('not an address'));
  t.call('setMulticastInterface number', () => s.setMulticastInterface(1));
  t.call('setRecvBufferSize', () => s.setRecvBufferSize(65536));
  t.call('getRecvBufferSize', () => s.getRecvBufferSize());
  t.call('setSendBufferSize -1', () => s.setSendBufferSize(-1));
  t.call('setSendBufferSize 1.5', () => s.setSendBufferSize(1.5));
  t.call('setSendBufferSize 2**31', () => s.setSendBufferSize(2 ** 31));
  await closeAll(t, s);
});

scenario('options: buffer sizes at creation', async (dgram, t) => {
  const s = await bound(dgram, 'udp4', '127.0.0.1', { recvBufferSize: 20000, sendBufferSize: 30000 });
  t.add('sizes', s.getRecvBufferSize(), s.getSendBufferSize());
  await closeAll(t, s);
});

scenario('membership', async (dgram, t) => {
  const s = dgram.createSocket({ type: 'udp4', reuseAddr: true });
  t.call('add no group', () => s.addMembership());
  t.call('drop no group', () => s.dropMembership(''));
  t.call('add bad group', () => s.addMembership('256.256.256.256'));
  t.call('drop never joined', () => s.dropMembership('224.0.0.114', '127.0.0.1'));
  t.call('add', () => s.addMembership('224.0.0.114', '127.0.0.1'));
  t.call('drop', () => s.dropMembership('224.0.0.114', '127.0.0.1'));
  t.call('ssm source number', () => s.addSourceSpecificMembership(1, '232.1.1.1'));
  t.call('ssm group number', () => s.addSourceSpecificMembership('127.0.0.1', 1));
  t.call('ssm bad source', () => s.addSourceSpecificMembership('x', '232.1.1.1', '127.0.0.1'));
  t.call('ssm add', () => s.addSourceSpecificMembership('127.0.0.1', '232.1.1.1', '127.0.0.1'));
  t.call('ssm drop', () => s.dropSourceSpecificMembership('127.0.0.1', '232.1.1.1', '127.0.0.1'));
  t.call('ssm drop never joined', () => s.dropSourceSpecificMembership('127.0.0.1', '232.1.1.2',
    '127.0.0.1'));
  await closeAll(t, s);
});

scenario('multicast and broadcast delivery on loopback', async (dgram, t) => {
  const r = dgram.createSocket({ type: 'udp4', reuseAddr: true });
  await new Promise((resolve) => r.bind(0, '0.0.0.0', resolve));
  const port = r.address().port;
  r.addMembership('224.0.0.114', '127.0.0.1');
  const s = await bound(dgram, 'udp4', '127.0.0.1');
  s.setMulticastInterface('127.0.0.1');
  s.setMulticastLoopback(true);
  s.setMulticastTTL(1);
  let got = once(r, 'message');
  s.send('group', port, '224.0.0.114');
  t.add('multicast', (await got)[1]);
  await new Promise((resolve) => s.send('no broadcast flag', port, '127.255.255.255', (err) => {
    t.add('broadcast without the flag', err);
    resolve();
  }));
  s.setBroadcast(true);
  got = once(r, 'message');
  s.send('broadcast', port, '127.255.255.255');
  t.add('broadcast', (await got)[1]);
  await closeAll(t, r, s);
});

// ---- lifetime --------------------------------------------------------------------------

scenario('signal: abort closes, an aborted signal closes at once', async (dgram, t) => {
  const ac = new AbortController();
  const s = dgram.createSocket({ type: 'udp4', signal: ac.signal });
  watch(t, 's', s);
  s.bind(0, '127.0.0.1');
  await once(s, 'listening');
  ac.abort();
  await once(s, 'close');
  t.call('address after abort', () => s.address());
  const r = dgram.createSocket({ type: 'udp4', signal: AbortSignal.abort() });
  watch(t, 'r', r);
  await once(r, 'close');
  t.call('close after abort', () => r.close());
  await turns(2);
});

scenario('asyncDispose', async (dgram, t) => {
  const s = await bound(dgram, 'udp4', '127.0.0.1');
  watch(t, 's', s);
  t.add('returns a promise', s[Symbol.asyncDispose]() instanceof Promise);
  await once(s, 'close');
  t.add('second dispose', await s[Symbol.asyncDispose]());
  t.call('address', () => s.address());
});

scenario('close during traffic', async (dgram, t) => {
  const server = await bound(dgram, 'udp4', '127.0.0.1');
  const port = server.address().port;
  const c = await bound(dgram, 'udp4', '127.0.0.1');
  let received = 0;
  server.on('message', () => {
    if (++received === 5) server.close(() => t.add('server closed'));
  });
  let sent = 0;
  await new Promise((resolve) => {
    for (let i = 0; i < 200; i++) {
      c.send('x', port, '127.0.0.1', (err) => {
        if (err) t.add('send error', err);
        if (++sent === 200) resolve();
      });
    }
  });
  while (received < 5) await turns(1);
  await turns(5);
  t.add('messages after close', received);
  await closeAll(t, c);
});

scenario('bind({fd}): descriptors that are not UDP sockets', async (dgram, t) => {
  const fs = require('node:fs');
  const fd = fs.openSync(__filename, 'r');
  const s = dgram.createSocket('udp4');
  watch(t, 's', s);
  t.call('a file', () => s.bind({ fd }));
  const ok = t.call('then an ordinary bind', () => s.bind({ port: 0, address: '127.0.0.1' }) === s);
  if (ok) await once(s, 'listening');
  fs.closeSync(fd);
  await closeAll(t, s);
});

scenario('udp6: dual stack and ipv6Only', async (dgram, t) => {
  for (const ipv6Only of [false, true]) {
    const six = dgram.createSocket({ type: 'udp6', ipv6Only });
    await new Promise((resolve) => six.bind(0, '::', resolve));
    const four = dgram.createSocket('udp4');
    watch(t, `four (ipv6Only ${ipv6Only})`, four);
    four.bind(six.address().port, '0.0.0.0');
    await once(four, 'listening', 'error');
    if (!ipv6Only) {
      const got = once(six, 'message');
      four.send('v4', six.address().port, '127.0.0.1');
      const [, msg, rinfo] = await got;
      t.add('dual stack received', msg, rinfo.address, rinfo.family);
    }
    await closeAll(t, six, four);
  }
});

scenario('diagnostics_channel udp.socket', async (dgram, t) => {
  const dc = require('node:diagnostics_channel');
  const seen = [];
  const listener = (msg) => seen.push(msg.socket);
  dc.subscribe('udp.socket', listener);
  const s = dgram.createSocket('udp4');
  dc.unsubscribe('udp.socket', listener);
  t.add('published the new socket', seen.length === 1 && seen[0] === s);
  await closeAll(t, s);
});

scenario('options: udp6 multicast interface and TTLs', async (dgram, t) => {
  const s = await bound(dgram, 'udp6', '::1');
  t.call('setMulticastInterface ::%lo', () => s.setMulticastInterface('::%lo'));
  t.call('setMulticastInterface 127.0.0.1', () => s.setMulticastInterface('127.0.0.1'));
  t.call('setMulticastInterface ::1', () => s.setMulticastInterface('::1'));
  t.call('setTTL 64', () => s.setTTL(64));
  t.call('setMulticastTTL 8', () => s.setMulticastTTL(8));
  t.call('setMulticastLoopback false', () => s.setMulticastLoopback(false));
  await closeAll(t, s);
});

// ---- Node parity items (docs/conformance.md P1-P7) ---------------------------

scenario('P1: close() frees the port before it returns', async (dgram, t) => {
  const a = await bound(dgram, 'udp4', '127.0.0.1');
  const port = a.address().port;
  a.close();
  const b = dgram.createSocket('udp4');
  watch(t, 'b', b);
  b.bind(port, '127.0.0.1');
  await once(b, 'listening', 'error');
  await closeAll(t, b);
});

scenario("P2: 'listening' before the first send's callback, sent from a timer", async (dgram, t) => {
  const server = await bound(dgram, 'udp4', '127.0.0.1');
  const c = dgram.createSocket('udp4');
  watch(t, 'c', c);
  await new Promise((resolve) => setTimeout(() => c.send('x', server.address().port, '127.0.0.1',
    (err, n) => {
      t.add('send callback', err, n);
      resolve();
    }), 1));
  await closeAll(t, server, c);
});

scenario('P4: udp6 datagrams of 65527 and 65528 bytes', async (dgram, t) => {
  const server = await bound(dgram, 'udp6', '::1');
  const c = dgram.createSocket('udp6');
  for (const size of [65527, 65528]) {
    const got = size === 65527 ? once(server, 'message') : null;
    await new Promise((resolve) => c.send(Buffer.alloc(size, 1), server.address().port, '::1',
      (err, n) => {
        t.add(`send ${size}`, err, n);
        resolve();
      }));
    if (got) t.add('received size', (await got)[2].size);
  }
  await closeAll(t, server, c);
});

scenario('P6: IPv4 shorthand literals', async (dgram, t) => {
  const server = await bound(dgram, 'udp4', '127.0.0.1');
  const c = dgram.createSocket('udp4');
  const got = [];
  server.on('message', (m) => got.push(m.toString()));
  for (const address of ['127.1', '0x7f000001', '2130706433']) {
    await new Promise((resolve) => c.send(address, server.address().port, address, (err, n) => {
      t.add(`send to ${address}`, err, n);
      resolve();
    }));
  }
  c.send('end', server.address().port, '127.0.0.1');
  while (!got.includes('end')) await turns(1);
  t.add('received', got);
  await closeAll(t, server, c);
});

scenario('P7: a send with a destination while connecting', async (dgram, t) => {
  const server = await bound(dgram, 'udp4', '127.0.0.1');
  const port = server.address().port;
  const c = dgram.createSocket('udp4');
  watch(t, 'c', c);
  c.connect(port, '127.0.0.1');
  await new Promise((resolve) => c.send('x', port, '127.0.0.1', (err, n) => {
    t.add('send while connecting', err, n);
    resolve();
  }));
  await closeAll(t, server, c);
});

scenario('async context: AsyncLocalStorage in events and send callbacks', async (dgram, t) => {
  const { AsyncLocalStorage } = require('node:async_hooks');
  const als = new AsyncLocalStorage();
  const server = await als.run('created', () => bound(dgram, 'udp4', '127.0.0.1'));
  server.on('message', () => t.add('message store', als.getStore()));
  const got = once(server, 'message');
  await als.run('sending', () => new Promise((resolve) => {
    server.send('x', server.address().port, '127.0.0.1', () => {
      t.add('send callback store', als.getStore());
      resolve();
    });
  }));
  await got;
  await als.run('closing', () => new Promise((resolve) => server.close(() => {
    t.add('close store', als.getStore());
    resolve();
  })));
});

module.exports = scenarios;
