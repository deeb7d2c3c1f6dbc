'use strict';
// The differential harness: each scenario is written once, as a function
// of a dgram module, and run against require('node:dgram') and against
// dgring in the same process; the traces of what each observed (events,
// callbacks, returns, thrown errors) are compared. Node is the oracle.
//
// A trace is normalized before comparing: ports the kernel picked become
// P1, P2... in order of appearance (in messages and addresses too), and an
// Error becomes its class name, enumerable keys, code, errno, syscall,
// address, port and message.

const assert = require('node:assert');
const util = require('node:util');

class Trace {
  constructor() {
    this.events = [];
    this.ports = new Map();
  }

  port(p) {
    if (typeof p !== 'number' || p === 0) return p;
    if (!this.ports.has(p)) this.ports.set(p, `P${this.ports.size + 1}`);
    return this.ports.get(p);
  }

  // Ports named in a message ("send EMSGSIZE 127.0.0.1:41234").
  text(s) {
    return s.replace(/:(\d{4,5})\b/g, (m, p) => `:${this.port(Number(p))}`);
  }

  value(v) {
    if (v instanceof Error) return this.error(v);
    if (Buffer.isBuffer(v)) return `Buffer(${v.toString('hex')})`;
    if (v === null || typeof v !== 'object') return v;
    if (Array.isArray(v)) return v.map((x) => this.value(x));
    const proto = Object.getPrototypeOf(v);
    if (proto !== Object.prototype && proto !== null) return `[${v.constructor?.name ?? 'object'}]`;
    const out = {};
    for (const k of Object.keys(v)) out[k] = k === 'port' ? this.port(v[k]) : this.value(v[k]);
    return out;
  }

  error(e) {
    const out = { class: e.constructor && e.constructor.name, name: e.name,
      keys: Object.keys(e).sort().join(','), message: this.text(String(e.message)) };
    for (const k of ['code', 'errno', 'syscall', 'address', 'hostname']) {
      if (e[k] !== undefined) out[k] = e[k];
    }
    if (e.port !== undefined) out.port = this.port(e.port);
    if (e.info !== undefined) out.info = this.value(e.info);
    return out;
  }

  // Records one observation: a label and any values.
  add(label, ...values) {
    this.events.push(values.length ? [label, ...values.map((v) => this.value(v))] : [label]);
  }

  // Runs fn and records its return value or what it threw.
  call(label, fn) {
    try {
      const r = fn();
      this.add(`${label} ->`, r === undefined ? 'undefined' : r);
      return r;
    } catch (e) {
      this.add(`${label} throws`, e);
      return undefined;
    }
  }
}

// Runs one scenario against one module. A scenario is
// async (dgram, trace) => void and must close every socket it opens.
async function runScenario(scenario, dgram, timeoutMs = 5000) {
  const trace = new Trace();
  let timer;
  const timeout = new Promise((resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`scenario timed out; trace so far:\n${
      util.inspect(trace.events, { depth: 5 })}`)), timeoutMs);
  });
  try {
    await Promise.race([scenario(dgram, trace), timeout]);
  } finally {
    clearTimeout(timer);
  }
  return trace.events;
}

// Both traces, and whether they agree once the scenario's documented
// difference (if any) is applied to Node's trace.
async function compare(s, nodeDgram, dgring) {
  const node = await runScenario(s.run, nodeDgram);
  const ours = await runScenario(s.run, dgring);
  const expected = s.differs ? s.differs.expect(structuredClone(node)) : node;
  return { node, ours, expected };
}

function assertSame(s, r) {
  assert.deepStrictEqual(r.ours, r.expected,
    `scenario "${s.name}": dgring's trace differs from ${s.differs ? 'the documented difference' :
      'node:dgram'}\nnode:   ${util.inspect(r.node, { depth: 6 })}\ndgring: ${
      util.inspect(r.ours, { depth: 6 })}`);
}

// Waits for an event (the first of several names) on an emitter.
function once(emitter, ...names) {
  return new Promise((resolve) => {
    const handlers = names.map((name) => {
      const h = (...args) => {
        names.forEach((n, i) => emitter.removeListener(n, handlers[i]));
        resolve([name, ...args]);
      };
      emitter.on(name, h);
      return h;
    });
  });
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

// Resolves after n turns of the event loop (for "nothing more happens").
async function turns(n) {
  for (let i = 0; i < n; i++) await tick();
}

module.exports = { Trace, runScenario, compare, assertSame, once, turns };
