'use strict';
// The loop's side of the module: the tape of records dgring's callbacks
// wrote during a run (bindings/node/src/tape.c), handed over one socket's
// run at a time; send requests and their callbacks; the JS lookup bridge;
// sends waiting past dgring's queue bound; errors that come from the loop.

const { AsyncResource } = require('node:async_hooks');
const { Buffer } = require('node:buffer'); // not the global: Node 20's is a getter
const EventEmitter = require('node:events');
const { isIP } = require('node:net');
const binding = require('./native');
const E = require('./errors');
const Q = require('./queue');

const { DG } = E;
const kState = Symbol('dgring state');

const BIND_STATE_UNBOUND = 0;
const BIND_STATE_BINDING = 1;
const BIND_STATE_BOUND = 2;
const CONNECT_STATE_DISCONNECTED = 0;
const CONNECT_STATE_CONNECTING = 1;
const CONNECT_STATE_CONNECTED = 2;

// include/dgring/socket.h
const DG_UDP4 = 4;
const DG_UDP6 = 6;
const DG_SOCKET_REUSE_ADDR = 0x1;
const DG_SOCKET_IPV6_ONLY = 0x2;
const DG_SOCKET_REUSE_PORT = 0x4;

// bindings/node/src/addon.h
const REC_MESSAGE = 1;
const REC_LISTENING = 2;
const REC_CONNECT = 3;
const REC_ERROR = 4;
const REC_SEND = 5;
const REC_CLOSE = 6;
const MSG_INTS = 8;
const REC_INTS = 4;
const MSG_IPV6 = 2;
const OPT_BROADCAST = 0;
const OPT_TTL = 1;
const OPT_MULTICAST_TTL = 2;
const OPT_MULTICAST_LOOP = 3;
const MEMBERSHIP_ADD = 0;
const MEMBERSHIP_DROP = 1;
const MEMBERSHIP_ADD_SOURCE = 2;
const MEMBERSHIP_DROP_SOURCE = 3;

// ---- Send requests with a callback: id -> callback, address, port -------
// Each has its own async resource, as Node's SendWrap: the callback runs
// in the context send() was called in (AsyncLocalStorage, async hooks).

const requests = { cb: [undefined], res: [undefined], address: [undefined], port: [undefined],
  free: [] };

function requestOpen(cb, address, port) {
  const id = requests.free.length > 0 ? requests.free.pop() : requests.cb.length;
  requests.cb[id] = cb;
  requests.res[id] = new AsyncResource('SENDWRAP');
  requests.address[id] = address;
  requests.port[id] = port;
  return id;
}

// The callback, for a caller still in send()'s own context.
function requestClose(id) {
  const cb = requests.cb[id];
  requests.cb[id] = undefined;
  requests.res[id] = undefined;
  requests.free.push(id);
  return cb;
}

// Completes a request from the loop, in its send() call's context.
function requestComplete(id, err, n) {
  const res = requests.res[id];
  const cb = requestClose(id);
  if (n === undefined) res.runInAsyncScope(cb, undefined, err);
  else res.runInAsyncScope(cb, undefined, err, n);
}

// ---- Lookup errors a JS lookup function gave (see src/lookup.c) ---------
// Each rides through dgring as a code of the user's range, FIRST - n.

const lookupErrors = new Map();
const LOOKUP_CODES = DG.LOOKUP_USER_FIRST - DG.LOOKUP_USER_LAST + 1;
let lookupNext = 0;

function keepLookupError(err) {
  while (lookupErrors.has(lookupNext)) lookupNext = (lookupNext + 1) % LOOKUP_CODES;
  const n = lookupNext;
  lookupErrors.set(n, err);
  return DG.LOOKUP_USER_FIRST - n;
}

// ---- Errors coming from the loop ----------------------------------------

// rec: [code, syscall, address, port, system_code] from src/tape.c.
// address/port: what the call was given (Node names those, not the IP).
function loopError(rec, address, port) {
  const code = rec[0];
  if (code <= DG.LOOKUP_USER_FIRST && code >= DG.LOOKUP_USER_LAST) {
    const n = DG.LOOKUP_USER_FIRST - code;
    const err = lookupErrors.get(n);
    lookupErrors.delete(n);
    return err;
  }
  if (code <= DG.DNS_FIRST && code >= DG.DNS_LAST) return E.dnsException(code, rec[2]);
  const syscall = rec[1];
  if (syscall === 'recvmsg') return E.errnoException(code, syscall);
  if (code > -4096) {
    return E.exceptionWithHostPort(code, syscall, address === undefined ? rec[2] : address,
      port === undefined ? rec[3] : port);
  }
  return E.fromCode(code, syscall);
}

// ---- The tape: records from the loop, one call per socket's run --------

const { tape, objects } = binding.setup(dispatch, retryBacklogs, runLookup);

function dispatch(socket, start, end) {
  const state = socket[kState];
  let i = start;
  while (i < end) {
    if (tape[i] === REC_MESSAGE) {
      tape[0] = i + MSG_INTS;
      if (state.handle !== null) deliverMessage(socket, state, i);
      i += MSG_INTS;
    } else {
      tape[0] = i + REC_INTS;
      deliverRecord(socket, state, i);
      i += REC_INTS;
    }
  }
}

// The payload: a slice of the batch's shared ArrayBuffer, or one of its
// own (src/tape.c); a Buffer over it, as Node's pool hands out.
function deliverMessage(socket, state, i) {
  const ab = tape[i + 1] >= 0 ? objects[tape[i + 1]] : new ArrayBuffer(0);
  const msg = Buffer.from(ab, tape[i + 2], tape[i + 3]);
  const rinfo = {
    address: objects[tape[i + 6]],
    family: (tape[i + 7] & MSG_IPV6) !== 0 ? 'IPv6' : 'IPv4',
    port: tape[i + 5],
    size: tape[i + 4],
  };
  emitMessage(socket, state, msg, rinfo);
}

// 'message' as EventEmitter's emit() gives it to a single listener, without
// emit()'s rest-argument array and generic lookup, where no program could
// tell: the socket's emit is EventEmitter's own as this module found it
// (not overridden; the domain module, which wraps it, was not loaded: once
// loaded, the socket's emit is the wrapper; nothing replaced it before this
// module loaded: its source is Node's) and the socket does not capture
// rejections (EventEmitter.captureRejections was off when it was created).
const nodesEmit = /^function emit\(type, \.\.\.args\) \{\s+let doError = \(type === 'error'\);/;
const plainEmit = !EventEmitter.usingDomains &&
  nodesEmit.test(Function.prototype.toString.call(EventEmitter.prototype.emit))
  ? EventEmitter.prototype.emit : null;

function emitMessage(socket, state, msg, rinfo) {
  if (socket.emit === plainEmit && !state.captureRejections) {
    const listener = socket._events.message;
    if (typeof listener === 'function') {
      listener.call(socket, msg, rinfo);
      return;
    }
  }
  socket.emit('message', msg, rinfo);
}

function deliverRecord(socket, state, i) {
  switch (tape[i]) {
    case REC_LISTENING: return onListening(socket, state);
    case REC_CONNECT: return onConnect(socket, state, tape[i + 1], tape[i + 2]);
    case REC_ERROR: return onError(socket, state, objects[tape[i + 1]]);
    case REC_SEND: return onSent(tape[i + 1], tape[i + 2], tape[i + 3]);
    case REC_CLOSE: return onClose(socket, state);
  }
}

function onListening(socket, state) {
  if (state.handle === null) return;
  state.bindState = BIND_STATE_BOUND;
  if (state.adopted) {
    state.adopted = false;
    if (typeof binding.address(state.handle, true) === 'object') {
      state.connectState = CONNECT_STATE_CONNECTED;
    }
  }
  socket.emit('listening');
}

function onConnect(socket, state, status, errIndex) {
  if (state.handle === null) return;
  const callback = state.connectCallback;
  state.connectCallback = undefined;
  if (status === 0) {
    state.connectState = CONNECT_STATE_CONNECTED;
    socket.emit('connect');
    return;
  }
  state.connectState = CONNECT_STATE_DISCONNECTED;
  const rec = objects[errIndex];
  if (rec[0] === DG.LOOKUP_REPORTED) return; // its lookup threw out of connect()
  const err = loopError(rec, state.connectAddress, state.connectPort);
  if (callback) {
    socket.removeListener('connect', callback);
    callback(err);
  } else {
    socket.emit('error', err);
  }
}

function onError(socket, state, rec) {
  if (state.handle === null) return;
  if (rec[1] === 'bind' || rec[1] === 'getaddrinfo') {
    if (state.bindState === BIND_STATE_BINDING) state.bindState = BIND_STATE_UNBOUND;
  }
  socket.emit('error', loopError(rec));
}

function onSent(id, status, errIndex) {
  if (status >= 0) {
    requestComplete(id, null, status);
    return;
  }
  const rec = objects[errIndex];
  if (rec[0] === DG.LOOKUP_REPORTED) { // its lookup threw out of send()
    requestClose(id);
    return;
  }
  requestComplete(id, loopError(rec, requests.address[id], requests.port[id]));
}

// 'close' in the context close() was called in, as Node emits it from a
// process.nextTick() queued there.
function onClose(socket, state) {
  Q.cancel(socket, state);
  cancelBacklog(state);
  const res = state.closeResource;
  state.closeResource = undefined;
  if (res) res.runInAsyncScope(socket.emit, socket, 'close');
  else socket.emit('close');
}

// ---- JS lookup functions (the lookup option) ----------------------------

function runLookup(socket, host, family, slot) {
  const state = socket[kState];
  let answered = false;
  state.lookup(host, family, (err, address) => {
    if (answered) return;
    answered = true;
    if (err) binding.lookupDone(slot, keepLookupError(err), null, 0);
    else binding.lookupDone(slot, 0, typeof address === 'string' ? address : null, state.family);
  });
}

// ---- Sends past dgring's queue ------------------------------------------
// dgring bounds the sends in flight per loop; Node does not. Sends past the
// bound wait here, in order per socket, until completions make room.

const backlogged = new Set();

// args: [data, port, address, request id, bytes]
function backlogSend(state, args) {
  state.backlog.push(args);
  state.backlogBytes += args[4];
  backlogged.add(state);
}

function retryBacklogs() {
  for (const state of backlogged) {
    if (state.handle === null) continue; // closing: onClose cancels them
    while (state.backlog.length > 0) {
      const args = state.backlog[0];
      const ret = binding.send(state.handle, args[0], args[1], args[2], args[3]);
      if (ret === DG.SEND_QUEUE_FULL) return;
      state.backlog.shift();
      state.backlogBytes -= args[4];
      if (ret < 0) sendFailed(state, ret, args[3], args[2], args[1], false);
    }
    backlogged.delete(state);
  }
}

// At close, after dgring cancelled the sends it held: those still waiting
// here end the same way (ECANCELED), before 'close'.
function cancelBacklog(state) {
  const waiting = state.backlog;
  state.backlog = [];
  state.backlogBytes = 0;
  backlogged.delete(state);
  for (const args of waiting) {
    if (args[3] !== 0) requestComplete(args[3], E.exceptionWithHostPort(-125, 'send', args[2], args[1]));
  }
}

// A send dgring refused at once, where Node fails it later: the error goes
// to the callback (or, for a failed lookup without one, to 'error') on the
// next tick. For what Node throws too, returns the Error when throwable,
// else hands it to the callback.
function sendFailed(state, code, id, address, port, throwable) {
  let err;
  let emit = false;
  if (code === DG.INVALID_ADDRESS && address && isIP(address) === 0) {
    err = E.dnsException(DG.DNS_NOTFOUND, address); // Node's dns.lookup fails
    emit = true;
  } else if (code === DG.INVALID_ADDRESS || code === -90 /* EMSGSIZE */) {
    err = E.exceptionWithHostPort(code === -90 ? -90 : -22, 'send', address, port);
  } else {
    err = E.fromCode(code, 'send');
    if (throwable) {
      if (id !== 0) requestClose(id);
      return err;
    }
  }
  if (id !== 0) process.nextTick(requestClose(id), err);
  else if (emit) process.nextTick(() => state.socket.emit('error', err));
  return null;
}

module.exports = {
  kState,
  binding,
  requestOpen,
  backlogSend,
  sendFailed,
  BIND_STATE_UNBOUND,
  BIND_STATE_BINDING,
  BIND_STATE_BOUND,
  CONNECT_STATE_DISCONNECTED,
  CONNECT_STATE_CONNECTING,
  CONNECT_STATE_CONNECTED,
  DG_UDP4,
  DG_UDP6,
  DG_SOCKET_REUSE_ADDR,
  DG_SOCKET_IPV6_ONLY,
  DG_SOCKET_REUSE_PORT,
  OPT_BROADCAST,
  OPT_TTL,
  OPT_MULTICAST_TTL,
  OPT_MULTICAST_LOOP,
  MEMBERSHIP_ADD,
  MEMBERSHIP_DROP,
  MEMBERSHIP_ADD_SOURCE,
  MEMBERSHIP_DROP_SOURCE,
};
