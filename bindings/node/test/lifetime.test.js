'use strict';
// What keeps a Node process alive, as with node:dgram: a bound referenced
// socket does, an unref'd or never-bound one does not, a send in flight
// does, a closing socket does until 'close'. Each case runs in a child
// process. "Stays alive" is checked by the child still running when the
// parent tells it to close (a wrong exit would have come at once), never
// by a time limit that could fail on a slow machine.

const test = require('node:test');
const assert = require('node:assert');
const dgram = require('node:dgram');
const { child, sleep } = require('./common');

const prelude = "const dgram = require('.');";

// A child that binds, says "ready PORT", and closes when a datagram comes.
test('a bound socket keeps the process alive until it is closed', async () => {
  let exitedEarly = true;
  const r = await child(`${prelude}
    const s = dgram.createSocket('udp4');
    s.on('message', () => { console.log('closing'); s.close(); });
    s.bind(0, '127.0.0.1', () => console.log('ready ' + s.address().port));`, {
    onLine: async (line) => {
      if (!line.startsWith('ready ')) return;
      await sleep(300);
      exitedEarly = false; // still running after 300 ms: now stop it
      const c = dgram.createSocket('udp4');
      c.send('stop', Number(line.split(' ')[1]), '127.0.0.1', () => c.close());
    },
  });
  assert.strictEqual(r.status, 0, r.stderr);
  assert.strictEqual(exitedEarly, false, 'the child exited while its socket was bound');
  assert.match(r.stdout, /closing/);
});

test('an unref\'d bound socket lets the process exit', async () => {
  const r = await child(`${prelude}
    const s = dgram.createSocket('udp4');
    s.bind(0, '127.0.0.1', () => { console.log('bound'); s.unref(); });`);
  assert.strictEqual(r.status, 0, r.stderr);
  assert.match(r.stdout, /bound/);
});

test('unref() before bind holds after the bind', async () => {
  const r = await child(`${prelude}
    const s = dgram.createSocket('udp4');
    s.unref();
    s.bind(0, '127.0.0.1', () => console.log('bound ' + (s.ref() === s) + ' ' + (s.unref() === s)));`);
  assert.strictEqual(r.status, 0, r.stderr);
  assert.match(r.stdout, /bound true true/);
});

test('a socket that was never bound does not keep the process alive', async () => {
  const r = await child(`${prelude} dgram.createSocket('udp4'); dgram.createSocket('udp6');
    console.log('created');`);
  assert.strictEqual(r.status, 0, r.stderr);
  assert.match(r.stdout, /created/);
});

test('a send in flight keeps an unref\'d socket\'s process alive until its callback', async () => {
  const r = await child(`${prelude}
    const s = dgram.createSocket('udp4');
    s.unref();
    s.send('x', 9, '127.0.0.1', (err, n) => console.log('sent ' + err + ' ' + n));`);
  assert.strictEqual(r.status, 0, r.stderr);
  assert.match(r.stdout, /sent null 1/);
});

test("close() keeps the process alive until 'close'; ref/unref after close do nothing", async () => {
  const r = await child(`${prelude}
    const s = dgram.createSocket('udp4');
    s.bind(0, '127.0.0.1', () => {
      s.close(() => console.log('closed'));
      console.log('ref ' + (s.ref() === s) + ' unref ' + (s.unref() === s));
    });`);
  assert.strictEqual(r.status, 0, r.stderr);
  assert.match(r.stdout, /ref true unref true\nclosed/);
});

test('a socket closed by an AbortSignal lets the process exit', async () => {
  const r = await child(`${prelude}
    const ac = new AbortController();
    const s = dgram.createSocket({ type: 'udp4', signal: ac.signal });
    s.on('close', () => console.log('closed'));
    s.bind(0, '127.0.0.1', () => ac.abort());`);
  assert.strictEqual(r.status, 0, r.stderr);
  assert.match(r.stdout, /closed/);
});

test('the process exits at the end of the program with sockets left open but unref\'d', async () => {
  const r = await child(`${prelude}
    for (let i = 0; i < 50; i++) dgram.createSocket('udp4').bind(0, '127.0.0.1').unref();
    setTimeout(() => console.log('done'), 50);`);
  assert.strictEqual(r.status, 0, r.stderr);
  assert.match(r.stdout, /done/);
});

test('process.exit() with open sockets exits cleanly', async () => {
  const r = await child(`${prelude}
    const s = dgram.createSocket('udp4');
    s.bind(0, '127.0.0.1', () => { console.log('bound'); process.exit(3); });`);
  assert.strictEqual(r.status, 3, r.stderr);
});

test("process.exit() from a 'message' handler (inside the loop's run)", async () => {
  const r = await child(`${prelude}
    const s = dgram.createSocket('udp4');
    s.on('message', () => process.exit(5));
    s.bind(0, '127.0.0.1', () => s.send('x', s.address().port, '127.0.0.1'));`);
  assert.strictEqual(r.status, 5, r.stderr);
});
