'use strict';
// Worker threads: each has its own Node environment, so its own dgring
// loop (one per environment, in the addon's instance data). Sockets work
// in several workers at once, a worker that ends with sockets still open
// tears its loop down, and terminate() during traffic is safe.

const test = require('node:test');
const assert = require('node:assert');
const { Worker } = require('node:worker_threads');
const dgram = require('..');
const { closeLeftovers } = require('./common');

closeLeftovers(dgram);

const echoWorker = `
  const { parentPort } = require('node:worker_threads');
  const dgram = require(${JSON.stringify(require.resolve('..'))});
  const s = dgram.createSocket('udp4');
  s.on('message', (msg, rinfo) => {
    if (msg.toString() === 'bye') { s.close(); return; }
    s.send(Buffer.concat([msg, Buffer.from(' from ' + process.pid)]), rinfo.port, rinfo.address);
  });
  s.bind(0, '127.0.0.1', () => parentPort.postMessage({ port: s.address().port, backend: dgram.backend() }));
`;

function startWorker(code) {
  const w = new Worker(code, { eval: true });
  const ready = new Promise((resolve, reject) => {
    w.once('message', resolve);
    w.once('error', reject);
  });
  const exited = new Promise((resolve) => w.once('exit', resolve));
  return { w, ready, exited };
}

test('echo servers in three workers and the main thread at once', async () => {
  const workers = [0, 1, 2].map(() => startWorker(echoWorker));
  const infos = await Promise.all(workers.map((x) => x.ready));
  const c = dgram.createSocket('udp4');
  const replies = [];
  const all = new Promise((resolve) => c.on('message', (m) => {
    replies.push(m.toString());
    if (replies.length === 30) resolve();
  }));
  for (let round = 0; round < 10; round++) {
    for (const info of infos) c.send(`ping ${round}`, info.port, '127.0.0.1');
  }
  await all;
  assert.strictEqual(replies.length, 30);
  for (const info of infos) c.send('bye', info.port, '127.0.0.1');
  const codes = await Promise.all(workers.map((x) => x.exited));
  assert.deepStrictEqual(codes, [0, 0, 0], 'each worker exits once its socket closed');
  assert.ok(infos.every((i) => i.backend === infos[0].backend));
  await new Promise((resolve) => c.close(resolve));
});

test('a worker whose program ends with a socket still open exits (unref)', async () => {
  const { exited } = startWorker(`
    const dgram = require(${JSON.stringify(require.resolve('..'))});
    const s = dgram.createSocket('udp4');
    s.bind(0, '127.0.0.1', () => { s.unref(); require('node:worker_threads').parentPort.postMessage('bound'); });
  `);
  assert.strictEqual(await exited, 0);
});

test('terminate() during traffic tears the worker\'s loop down', async () => {
  const x = startWorker(echoWorker);
  const info = await x.ready;
  const c = dgram.createSocket('udp4');
  let replies = 0;
  const some = new Promise((resolve) => c.on('message', () => { if (++replies === 20) resolve(); }));
  const blast = setInterval(() => {
    for (let i = 0; i < 20; i++) c.send('ping', info.port, '127.0.0.1');
  }, 1);
  await some;
  await x.w.terminate();
  clearInterval(blast);
  assert.strictEqual(await x.exited, 1);
  await new Promise((resolve) => c.close(resolve));
});

test('process.exit() inside a worker with open sockets', async () => {
  const { exited } = startWorker(`
    const dgram = require(${JSON.stringify(require.resolve('..'))});
    const s = dgram.createSocket('udp4');
    s.bind(0, '127.0.0.1', () => { s.send('x', s.address().port, '127.0.0.1', () => process.exit(7)); });
  `);
  assert.strictEqual(await exited, 7);
});

test("process.exit() from a worker's 'message' handler", async () => {
  const { exited } = startWorker(`
    const dgram = require(${JSON.stringify(require.resolve('..'))});
    const s = dgram.createSocket('udp4');
    s.on('message', () => process.exit(6));
    s.bind(0, '127.0.0.1', () => s.send('x', s.address().port, '127.0.0.1'));
  `);
  assert.strictEqual(await exited, 6);
});
