'use strict';
// The examples are Node dgram programs whose only dgring-specific line is
// require('dgring'). Each runs twice, as written and with that line made
// require('node:dgram'), fed the same traffic; what they report must be
// the same.

const test = require('node:test');
const assert = require('node:assert');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const dgram = require('node:dgram');
const { moduleDir, closeLeftovers } = require('./common');

closeLeftovers(dgram);

// A copy of the example in a temporary directory where require('dgring')
// finds this package; with useNode, the require line names node:dgram.
function prepare(example, useNode) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dgring-example-'));
  fs.mkdirSync(path.join(dir, 'node_modules'));
  fs.symlinkSync(moduleDir, path.join(dir, 'node_modules', 'dgring'), 'dir');
  let src = fs.readFileSync(path.join(moduleDir, 'examples', example), 'utf8');
  const line = "require('dgring')";
  assert.strictEqual(src.split(line).length, 2, `${example} names dgring once`);
  if (useNode) src = src.replace(line, "require('node:dgram')");
  fs.writeFileSync(path.join(dir, example), src);
  return dir;
}

// Starts the example; resolves with the child and the port it printed.
function start(dir, example, env) {
  const child = spawn(process.execPath, [path.join(dir, example)], {
    cwd: dir, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.out = '';
  child.stdout.on('data', (d) => { child.out += d; });
  child.exited = new Promise((resolve) => child.on('exit', resolve));
  return new Promise((resolve, reject) => {
    let err = '';
    child.stderr.on('data', (d) => {
      err += d;
      const m = /listening on [^ ]+:(\d+)/.exec(err);
      if (m) resolve({ child, port: Number(m[1]) });
    });
    child.on('exit', (code) => reject(new Error(`${example} exited ${code}: ${err}`)));
  });
}

const variants = [['dgring', false], ['node:dgram', true]];

// The flushes a run printed, merged into one report.
function merge(reports) {
  const out = { packets: 0, bad: 0, counters: {}, gauges: {}, timers: {}, sets: {} };
  for (const r of reports) {
    out.packets += r.packets;
    out.bad += r.bad;
    for (const [k, v] of Object.entries(r.counters)) out.counters[k] = (out.counters[k] ?? 0) + v;
    Object.assign(out.gauges, r.gauges);
    for (const [k, v] of Object.entries(r.sets)) out.sets[k] = (out.sets[k] ?? 0) + v;
    for (const [k, v] of Object.entries(r.timers)) {
      const t = out.timers[k] ?? { count: 0, min: Infinity, max: -Infinity };
      out.timers[k] = { count: t.count + v.count, min: Math.min(t.min, v.min), max: Math.max(t.max, v.max) };
    }
  }
  return out;
}

// Sends 203 datagrams, then waits for flushes (every 20 ms) that account
// for all of them before stopping the server.
async function runStatsd(useNode) {
  const dir = prepare('statsd.js', useNode);
  const { child, port } = await start(dir, 'statsd.js', { STATSD_PORT: '0', FLUSH_MS: '20' });
  const c = dgram.createSocket('udp4');
  const lines = [];
  for (let i = 0; i < 200; i++) lines.push(`hits:1|c\nlatency:${i % 50}|ms`);
  lines.push('users:u1|s\nusers:u2|s\nusers:u1|s', 'temp:20|g\ntemp:+5|g\nhalf:1|c|@0.5',
    'garbage\nbad:x|c');
  for (const l of lines) {
    await new Promise((resolve) => c.send(l, port, '127.0.0.1', resolve));
  }
  c.close();
  const flushes = () => child.out.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
  while (merge(flushes()).packets < lines.length) await new Promise((r) => setTimeout(r, 10));
  child.kill('SIGTERM');
  const code = await child.exited;
  fs.rmSync(dir, { recursive: true, force: true });
  return { code, report: merge(flushes()) };
}

test('statsd.js: the same report on dgring and on node:dgram', async () => {
  const reports = [];
  for (const [, useNode] of variants) reports.push(await runStatsd(useNode));
  for (const r of reports) assert.strictEqual(r.code, 0);
  assert.deepStrictEqual(reports[0].report, reports[1].report);
  assert.deepStrictEqual(reports[0].report, {
    packets: 203, bad: 2, counters: { hits: 200, half: 2 }, gauges: { temp: 25 },
    timers: { latency: { count: 200, min: 0, max: 49 } }, sets: { users: 2 },
  });
});

// Three players join, ping, move, wait for a tick's state that shows all
// of them, leave. Returns what each saw, without the tick numbers.
async function runGame(useNode) {
  const dir = prepare('game-echo.js', useNode);
  const { child, port } = await start(dir, 'game-echo.js', { GAME_PORT: '0', TICK_MS: '20' });
  const names = ['ann', 'bob', 'cy'];
  const players = names.map(() => dgram.createSocket('udp4'));
  const seen = names.map(() => []);
  const waiters = names.map(() => []);
  players.forEach((p, i) => p.on('message', (m) => {
    const text = m.toString();
    seen[i].push(text);
    waiters[i] = waiters[i].filter((w) => !w(text));
  }));
  const waitFor = (i, pred) => new Promise((resolve) => waiters[i].push((t) => pred(t) && (resolve(t), true)));
  const say = (i, text) => players[i].send(text, port, '127.0.0.1');
  for (let i = 0; i < 3; i++) {
    const w = waitFor(i, (t) => t.startsWith('welcome'));
    say(i, `join ${names[i]}`);
    await w;
  }
  for (let i = 0; i < 3; i++) {
    for (let n = 0; n < 5; n++) {
      const w = waitFor(i, (t) => t === `pong ${n}`);
      say(i, `ping ${n}`);
      await w;
    }
    say(i, `move ${i + 1} ${i * 2}`);
  }
  const full = 'ann:1,0 bob:2,2 cy:3,4';
  await Promise.all(names.map((_, i) => waitFor(i, (t) => t.endsWith(full))));
  for (let i = 0; i < 3; i++) {
    const w = waitFor(i, (t) => t.startsWith('bye'));
    say(i, 'leave');
    await w;
  }
  const w = waitFor(0, (t) => t.startsWith('error'));
  say(0, 'dance');
  await w;
  players.forEach((p) => p.close());
  child.kill('SIGTERM');
  const code = await child.exited;
  fs.rmSync(dir, { recursive: true, force: true });
  return { code, replies: seen.map((s) => s.filter((t) => !t.startsWith('state'))) };
}

test('game-echo.js: the same replies on dgring and on node:dgram', async () => {
  const runs = [];
  for (const [, useNode] of variants) runs.push(await runGame(useNode));
  for (const r of runs) assert.strictEqual(r.code, 0);
  assert.deepStrictEqual(runs[0].replies, runs[1].replies);
  assert.deepStrictEqual(runs[0].replies[0], ['welcome ann 1', 'pong 0', 'pong 1', 'pong 2',
    'pong 3', 'pong 4', 'bye ann', 'error unknown command']);
});
