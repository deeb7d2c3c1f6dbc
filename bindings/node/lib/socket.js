'use strict';
// dgram.Socket on dgring. Arguments are read and checked as Node's
// lib/dgram.js does (same forms, same errors, same order of checks), and
// the socket's states change as Node's do: the implicit bind is a bind()
// call, and sends and connects wait in Node's queue until 'listening'
// (lib/queue.js). The bind, the connect, the sends and the close
// themselves are dgring's.

const { AsyncResource } = require('node:async_hooks');
const dc = require('node:diagnostics_channel');
const EventEmitter = require('node:events');
const { Buffer } = require('node:buffer');
const { isIP } = require('node:net');
const fs = require('node:fs');
const { promisify, types: { isArrayBufferView } } = require('node:util');
const E = require('./errors');
const L = require('./loop');
const Q = require('./queue');

const { DG } = E;
const { kState, binding } = L;

const kBufferTypes = ['Buffer', 'TypedArray', 'DataView', 'string'];
const udpSocketChannel = dc.channel('udp.socket'); // as Node publishes each new socket

// ---- Node's validators ----------------------------------------------------

function validateString(value, name) {
  if (typeof value !== 'string') throw E.invalidArgType(name, 'string', value);
}

function validateNumber(value, name) {
  if (typeof value !== 'number') throw E.invalidArgType(name, 'number', value);
}

function validateUint32(value, name) {
  if (typeof value !== 'number') throw E.invalidArgType(name, 'number', value);
  if (!Number.isInteger(value)) throw E.outOfRange(name, 'an integer', value);
  if (value < 0 || value > 4294967295) throw E.outOfRange(name, '>= 0 && <= 4294967295', value);
}

function validatePort(port, name, allowZero) {
  if ((typeof port !== 'number' && typeof port !== 'string') ||
      (typeof port === 'string' && port.trim().length === 0) ||
      +port !== (+port >>> 0) || port > 0xFFFF || (port === 0 && !allowZero)) {
    throw E.badPort(name, port, allowZero);
  }
  return port | 0;
}

function healthCheck(socket) {
  if (socket[kState].handle === null) throw E.fromCode(DG.SOCKET_DGRAM_NOT_RUNNING);
}

// ---- Creation -------------------------------------------------------------

function socketFlags(options, type) {
  let flags = 0;
  if (options && options.reuseAddr) flags |= L.DG_SOCKET_REUSE_ADDR;
  if (options && options.reusePort) flags |= L.DG_SOCKET_REUSE_PORT;
  if (options && options.ipv6Only && type === 'udp6') flags |= L.DG_SOCKET_IPV6_ONLY;
  return flags;
}

// Node applies the buffer sizes after bind and fails there for sizes
// above INT32_MAX; dgring takes them as ints at creation.
function creationSize(value, name) {
  if (!value) return 0;
  validateUint32(value, name);
  if (value > 2147483647) throw E.outOfRange(name, '>= 0 && <= 2147483647', value);
  return value;
}

function Socket(type, listener) {
  EventEmitter.call(this);
  let options;
  let lookup;
  let recvBufferSize = 0;
  let sendBufferSize = 0;
  if (type !== null && typeof type === 'object') {
    options = type;
    type = options.type;
    lookup = options.lookup;
    recvBufferSize = creationSize(options.recvBufferSize, 'options.recvBufferSize');
    sendBufferSize = creationSize(options.sendBufferSize, 'options.sendBufferSize');
  }
  if (lookup !== undefined && typeof lookup !== 'function') {
    throw E.invalidArgType('lookup', 'Function', lookup);
  }
  if (type !== 'udp4' && type !== 'udp6') throw E.fromCode(DG.SOCKET_BAD_TYPE);
  const handle = binding.create(this, type === 'udp4' ? L.DG_UDP4 : L.DG_UDP6,
    socketFlags(options, type), recvBufferSize, sendBufferSize, lookup !== undefined);
  if (typeof handle === 'number') throw E.fromCode(handle, 'socket');
  this.type = type;
  if (typeof listener === 'function') this.on('message', listener);
  this[kState] = {
    socket: this,
    handle,
    type,
    family: type === 'udp4' ? 4 : 6,
    lookup,
    bindState: L.BIND_STATE_UNBOUND,
    connectState: L.CONNECT_STATE_DISCONNECTED,
    connectCallback: undefined,
    connectAddress: undefined,
    connectPort: undefined,
    ipv6OnlyOn4: !!(options && options.ipv6Only && type === 'udp4'),
    adopted: false,
    closeResource: undefined,
    backlog: [],
    backlogBytes: 0,
    queue: undefined, // lib/queue.js: what waits for 'listening'
    queueListening: undefined,
    queueError: undefined,
    queueBytes: 0,
    queueCount: 0,
    captureRejections: EventEmitter.captureRejections, // as EventEmitter's constructor read it
  };
  if (options?.signal !== undefined) watchSignal(this, options.signal);
  if (udpSocketChannel.hasSubscribers) udpSocketChannel.publish({ socket: this });
}
Object.setPrototypeOf(Socket.prototype, EventEmitter.prototype);
Object.setPrototypeOf(Socket, EventEmitter);

function watchSignal(socket, signal) {
  if (signal === null || typeof signal !== 'object' || !('aborted' in signal)) {
    throw E.invalidArgType('options.signal', 'AbortSignal', signal);
  }
  const onAborted = () => {
    if (socket[kState].handle !== null) socket.close();
  };
  if (signal.aborted) {
    onAborted();
    return;
  }
  signal.addEventListener('abort', onAborted, { once: true });
  socket.once('close', () => signal.removeEventListener('abort', onAborted));
}

function createSocket(type, listener) {
  return new Socket(type, listener);
}

// ---- bind -----------------------------------------------------------------

// bind(cb): cb is a 'listening' listener that an 'error' removes, as in Node.
function bindCallback(socket, cb) {
  function removeListeners() {
    this.removeListener('error', removeListeners);
    this.removeListener('listening', onListening);
  }
  function onListening() {
    removeListeners.call(this);
    cb.call(this);
  }
  socket.on('error', removeListeners);
  socket.on('listening', onListening);
}

// What Node reports later for an address dgring refuses at once: a name
// that cannot resolve, or EINVAL for a literal of the other family.
function addressError(syscall, address, port) {
  return isIP(address) === 0 ? E.dnsException(DG.DNS_NOTFOUND, address) :
    E.exceptionWithHostPort(-22, syscall, address, port);
}

// A bind failure dgring knew at once, reported as Node's lookup or bind
// reports it: from the loop, the socket unbound again first.
function bindErrorLater(socket, state, err) {
  process.nextTick(() => {
    if (state.handle === null) return;
    state.bindState = L.BIND_STATE_UNBOUND;
    socket.emit('error', err);
  });
}

function adoptFd(socket, state, fd) {
  const ret = binding.bindFd(state.handle, fd);
  if (ret === DG.INVALID_FD_TYPE || ret === -9 /* EBADF */) {
    throw E.nodeError(TypeError, 'ERR_INVALID_FD_TYPE', `Unsupported fd type: ${guessFdType(fd)}`);
  }
  if (ret < 0) throw E.errnoException(ret, 'open');
  state.adopted = true;
}

function guessFdType(fd) {
  try {
    const st = fs.fstatSync(fd);
    if (st.isFile()) return 'FILE';
    if (st.isFIFO()) return 'PIPE';
    if (st.isCharacterDevice()) return 'TTY';
    if (st.isSocket()) return 'TCP';
    return 'UNKNOWN';
  } catch {
    return 'INVALID';
  }
}

// The descriptor of bind({fd}), or undefined.
function fdOf(options) {
  return options !== null && typeof options === 'object' && Number.isInteger(options.fd) &&
    options.fd > 0 && options.fd <= 2147483647 ? options.fd : undefined;
}

Socket.prototype.bind = function(port_, address_ /* , callback */) {
  let port = port_;
  healthCheck(this);
  const state = this[kState];
  if (state.bindState !== L.BIND_STATE_UNBOUND) throw E.fromCode(DG.SOCKET_ALREADY_BOUND);
  const cb = arguments.length && arguments[arguments.length - 1];
  const fd = fdOf(port);
  let address;
  if (fd === undefined) {
    if (port !== null && typeof port === 'object') {
      address = port.address || '';
      port = port.port;
    } else {
      address = typeof address_ === 'function' ? '' : address_;
    }
    // Node turns the port to a 32-bit unsigned integer (and its C++ layer
    // cuts it to 16 bits); dgring refuses ports above 65535 and changes
    // nothing (docs/migrating-from-node.md, E1).
    const p = (port || 0) >>> 0;
    if (p > 65535) throw E.badPort('Port', port, true);
    port = p;
  }
  // Binding from here on, as in Node, even if what follows throws (a
  // bind({fd}) that is no UDP socket, a lookup function that throws).
  state.bindState = L.BIND_STATE_BINDING;
  if (typeof cb === 'function') bindCallback(this, cb);
  if (fd !== undefined) adoptFd(this, state, fd);
  else bindAddress(this, state, address, port);
  return this;
};

function bindAddress(socket, state, address, port) {
  const text = address ? String(address) : null;
  if (state.ipv6OnlyOn4) { // libuv refuses IPV6ONLY on an IPv4 socket at bind
    bindErrorLater(socket, state, E.exceptionWithHostPort(-22, 'bind', text || '0.0.0.0', port));
    return;
  }
  const ret = binding.bind(state.handle, port, text);
  if (ret === DG.INVALID_ADDRESS) bindErrorLater(socket, state, addressError('bind', text, port));
  else if (ret < 0) throw E.fromCode(ret, 'bind');
}

// Node's implicit bind, for send() and connect() on an unbound socket.
function implicitBind(socket) {
  socket.bind({ port: 0, exclusive: true }, null);
}

// ---- connect ---------------------------------------------------------------

Socket.prototype.connect = function(port, address, callback) {
  port = validatePort(port, 'Port', false);
  if (typeof address === 'function') {
    callback = address;
    address = '';
  } else if (address === undefined) {
    address = '';
  }
  validateString(address, 'address');
  const state = this[kState];
  if (state.connectState !== L.CONNECT_STATE_DISCONNECTED) {
    throw E.fromCode(DG.SOCKET_DGRAM_IS_CONNECTED);
  }
  healthCheck(this);
  state.connectState = L.CONNECT_STATE_CONNECTING;
  if (state.bindState === L.BIND_STATE_UNBOUND) implicitBind(this);
  if (state.bindState !== L.BIND_STATE_BOUND) {
    Q.enqueue(this, state, {
      run: () => connectNow(this, state, port, address, callback),
      fail: (err) => { // E3: the bind's error
        state.connectState = L.CONNECT_STATE_DISCONNECTED;
        if (callback) callback(err);
      },
    });
    return;
  }
  connectNow(this, state, port, address, callback);
};

// Node's _connect(): the callback listens for 'connect' from here on.
function connectNow(socket, state, port, address, callback) {
  if (callback) {
    state.connectCallback = callback;
    socket.once('connect', callback);
  }
  state.connectAddress = address;
  state.connectPort = port;
  const ret = binding.connect(state.handle, port, address || null);
  if (ret === DG.INVALID_ADDRESS) connectErrorLater(socket, state, address, port, callback);
  else if (ret < 0) throw E.fromCode(ret, 'connect');
}

// As Node's doConnect() reports a failed lookup or connect(2).
function connectErrorLater(socket, state, address, port, callback) {
  const err = addressError('connect', address, port);
  state.connectState = L.CONNECT_STATE_DISCONNECTED;
  state.connectCallback = undefined;
  process.nextTick(() => {
    if (callback) {
      socket.removeListener('connect', callback);
      callback(err);
    } else {
      socket.emit('error', err);
    }
  });
}

Socket.prototype.disconnect = function() {
  const state = this[kState];
  if (state.connectState !== L.CONNECT_STATE_CONNECTED) {
    throw E.fromCode(DG.SOCKET_DGRAM_NOT_CONNECTED);
  }
  const ret = binding.disconnect(state.handle);
  if (ret < 0) throw E.fromCode(ret, 'connect');
  state.connectState = L.CONNECT_STATE_DISCONNECTED;
};

// ---- send ------------------------------------------------------------------

function sliceBuffer(buffer, offset, length) {
  if (typeof buffer === 'string') {
    buffer = Buffer.from(buffer);
  } else if (!isArrayBufferView(buffer)) {
    throw E.invalidArgType('buffer', kBufferTypes, buffer);
  }
  offset = offset >>> 0;
  length = length >>> 0;
  if (offset > buffer.byteLength) {
    throw E.nodeError(RangeError, 'ERR_BUFFER_OUT_OF_BOUNDS', '"offset" is outside of buffer bounds');
  }
  if (offset + length > buffer.byteLength) {
    throw E.nodeError(RangeError, 'ERR_BUFFER_OUT_OF_BOUNDS', '"length" is outside of buffer bounds');
  }
  return Buffer.from(buffer.buffer, buffer.byteOffset + offset, length);
}

// A copy of the list (dgring copies the bytes before send() returns, so a
// list changed afterwards changes nothing), strings made Buffers.
function fixBufferList(list) {
  const out = new Array(list.length);
  for (let i = 0; i < list.length; i++) {
    const buf = list[i];
    if (typeof buf === 'string') out[i] = Buffer.from(buf);
    else if (!isArrayBufferView(buf)) return null;
    else out[i] = buf;
  }
  return out;
}

// The datagram as one view or a list, and its size.
function payload(buffer) {
  if (!Array.isArray(buffer)) {
    if (typeof buffer === 'string') buffer = Buffer.from(buffer);
    else if (!isArrayBufferView(buffer)) throw E.invalidArgType('buffer', kBufferTypes, buffer);
    return buffer;
  }
  const list = fixBufferList(buffer);
  if (list === null) throw E.invalidArgType('buffer list arguments', kBufferTypes, buffer);
  return list.length === 1 ? list[0] : list;
}

function byteSize(data) {
  if (!Array.isArray(data)) return data.byteLength;
  let n = 0;
  for (const b of data) n += b.byteLength;
  return n;
}

Socket.prototype.send = function(buffer, offset, length, port, address, callback) {
  const state = this[kState];
  const connected = state.connectState === L.CONNECT_STATE_CONNECTED;
  if (!connected) {
    if (address || (port && typeof port !== 'function')) {
      buffer = sliceBuffer(buffer, offset, length);
    } else {
      callback = port;
      port = offset;
      address = length;
    }
  } else {
    if (typeof length === 'number') {
      buffer = sliceBuffer(buffer, offset, length);
      if (typeof port === 'function') {
        callback = port;
        port = null;
      }
    } else {
      callback = offset;
    }
    if (port || address) throw E.fromCode(DG.SOCKET_DGRAM_IS_CONNECTED);
  }
  const data = payload(buffer);
  if (!connected) port = validatePort(port, 'Port', false);
  if (typeof callback !== 'function') callback = undefined;
  if (typeof address === 'function') {
    callback = address;
    address = undefined;
  } else if (address != null) {
    validateString(address, 'address');
  }
  healthCheck(this);
  if (connected) {
    doSend(this, state, data, 0, null, callback);
    return;
  }
  address = address || null;
  if (state.bindState === L.BIND_STATE_UNBOUND) implicitBind(this);
  if (state.bindState !== L.BIND_STATE_BOUND) {
    enqueueSend(this, state, data, port, address, callback);
    return;
  }
  doSend(this, state, data, port, address, callback);
};

// A send waiting for 'listening' (lib/queue.js).
function enqueueSend(socket, state, data, port, address, callback) {
  Q.enqueue(socket, state, {
    run: () => doSend(socket, state, data, port, address, callback, false),
    fail: callback, // E3: the bind's error
    cancel: callback && (() => callback(E.exceptionWithHostPort(-125, 'send', address, port))),
    bytes: byteSize(data),
  });
}

// Hands a send to dgring (or to the backlog behind its queue bound). What
// dgring refuses at once is thrown where Node throws it (throwable), else
// reported as Node reports it later.
function doSend(socket, state, data, port, address, callback, throwable = true) {
  const id = callback ? L.requestOpen(callback, address ?? undefined, port || undefined) : 0;
  if (state.backlog.length > 0) {
    L.backlogSend(state, [data, port, address, id, byteSize(data)]);
    return;
  }
  // If the socket's lookup function throws, the exception leaves here and
  // dgring ends the request with DG_ERR_LOOKUP_REPORTED: no callback, as
  // in Node (lib/loop.js, onSent).
  const ret = binding.send(state.handle, data, port, address, id);
  if (ret === DG.SEND_QUEUE_FULL) {
    L.backlogSend(state, [data, port, address, id, byteSize(data)]);
  } else if (ret < 0) {
    const err = L.sendFailed(state, ret, id, address, port, throwable);
    if (err !== null) throw err;
  }
}

Socket.prototype.sendto = function(buffer, offset, length, port, address, callback) {
  validateNumber(offset, 'offset');
  validateNumber(length, 'length');
  validateNumber(port, 'port');
  validateString(address, 'address');
  this.send(buffer, offset, length, port, address, callback);
};

// ---- close, dispose, ref ------------------------------------------------------

Socket.prototype.close = function(callback) {
  const state = this[kState];
  if (typeof callback === 'function') this.on('close', callback);
  healthCheck(this);
  const ret = binding.close(state.handle);
  state.handle = null;
  state.closeResource = new AsyncResource('TickObject');
  if (ret < 0) throw E.fromCode(ret, 'close');
  return this;
};

Socket.prototype[Symbol.asyncDispose] = async function() {
  if (this[kState].handle === null) return;
  return promisify(this.close).call(this);
};

Socket.prototype.ref = function() {
  const handle = this[kState].handle;
  if (handle !== null) binding.ref(handle, true);
  return this;
};

Socket.prototype.unref = function() {
  const handle = this[kState].handle;
  if (handle !== null) binding.ref(handle, false);
  return this;
};

// ---- addresses -------------------------------------------------------------

Socket.prototype.address = function() {
  healthCheck(this);
  const out = binding.address(this[kState].handle, false);
  if (typeof out === 'number') throw E.fromCode(out, 'getsockname');
  return out;
};

Socket.prototype.remoteAddress = function() {
  healthCheck(this);
  const state = this[kState];
  if (state.connectState !== L.CONNECT_STATE_CONNECTED) {
    throw E.fromCode(DG.SOCKET_DGRAM_NOT_CONNECTED);
  }
  const out = binding.address(state.handle, true);
  if (typeof out === 'number') throw E.fromCode(out, 'getpeername');
  return out;
};

// ---- options ---------------------------------------------------------------

// Node's setters skip the closed check (E5 in docs/conformance.md) and then
// fail on the missing handle with a TypeError; dgring says NOT_RUNNING.
function setOption(socket, which, value, syscall) {
  const handle = socket[kState].handle;
  if (handle === null) throw E.fromCode(DG.SOCKET_DGRAM_NOT_RUNNING);
  const ret = binding.setOption(handle, which, value);
  if (ret < 0) throw E.fromCode(ret, syscall);
}

Socket.prototype.setBroadcast = function(arg) {
  setOption(this, L.OPT_BROADCAST, arg ? 1 : 0, 'setBroadcast');
};

Socket.prototype.setTTL = function(ttl) {
  validateNumber(ttl, 'ttl');
  setOption(this, L.OPT_TTL, ttl, 'setTTL');
  return ttl;
};

Socket.prototype.setMulticastTTL = function(ttl) {
  validateNumber(ttl, 'ttl');
  setOption(this, L.OPT_MULTICAST_TTL, ttl, 'setMulticastTTL');
  return ttl;
};

Socket.prototype.setMulticastLoopback = function(arg) {
  setOption(this, L.OPT_MULTICAST_LOOP, arg ? 1 : 0, 'setMulticastLoopback');
  return arg;
};

Socket.prototype.setMulticastInterface = function(interfaceAddress) {
  healthCheck(this);
  validateString(interfaceAddress, 'interfaceAddress');
  const ret = binding.setMulticastInterface(this[kState].handle, interfaceAddress);
  if (ret < 0) throw E.fromCode(ret, 'setMulticastInterface');
};

function membership(socket, op, source, group, iface, syscall) {
  const state = socket[kState];
  const ret = binding.membership(state.handle, op, source, group,
    iface === undefined || iface === null ? null : String(iface));
  if (ret < 0) throw E.fromCode(ret, syscall);
  if (state.bindState === L.BIND_STATE_UNBOUND) state.bindState = L.BIND_STATE_BOUND;
}

Socket.prototype.addMembership = function(multicastAddress, interfaceAddress) {
  healthCheck(this);
  if (!multicastAddress) throw E.fromCode(DG.MISSING_ARGS);
  membership(this, L.MEMBERSHIP_ADD, null, String(multicastAddress), interfaceAddress,
    'addMembership');
};

Socket.prototype.dropMembership = function(multicastAddress, interfaceAddress) {
  healthCheck(this);
  if (!multicastAddress) throw E.fromCode(DG.MISSING_ARGS);
  membership(this, L.MEMBERSHIP_DROP, null, String(multicastAddress), interfaceAddress,
    'dropMembership');
};

Socket.prototype.addSourceSpecificMembership = function(sourceAddress, groupAddress,
                                                        interfaceAddress) {
  healthCheck(this);
  validateString(sourceAddress, 'sourceAddress');
  validateString(groupAddress, 'groupAddress');
  membership(this, L.MEMBERSHIP_ADD_SOURCE, sourceAddress, groupAddress, interfaceAddress,
    'addSourceSpecificMembership');
};

Socket.prototype.dropSourceSpecificMembership = function(sourceAddress, groupAddress,
                                                         interfaceAddress) {
  healthCheck(this);
  validateString(sourceAddress, 'sourceAddress');
  validateString(groupAddress, 'groupAddress');
  membership(this, L.MEMBERSHIP_DROP_SOURCE, sourceAddress, groupAddress, interfaceAddress,
    'dropSourceSpecificMembership');
};

// ---- buffer sizes and the send queue ------------------------------------------

function bufferSize(socket, size, recv) {
  if (size >>> 0 !== size) throw E.fromCode(DG.SOCKET_BAD_BUFFER_SIZE);
  const handle = socket[kState].handle;
  if (handle === null) throw E.fromCode(DG.SOCKET_DGRAM_NOT_RUNNING);
  const ret = binding.bufferSize(handle, recv, size);
  if (Array.isArray(ret)) throw E.bufferSizeError(ret[2], ret[1]);
  if (ret < 0) throw E.fromCode(ret, recv ? 'uv_recv_buffer_size' : 'uv_send_buffer_size');
  return ret;
}

Socket.prototype.setRecvBufferSize = function(size) {
  bufferSize(this, size, true);
};

Socket.prototype.setSendBufferSize = function(size) {
  bufferSize(this, size, false);
};

Socket.prototype.getRecvBufferSize = function() {
  return bufferSize(this, 0, true);
};

Socket.prototype.getSendBufferSize = function() {
  return bufferSize(this, 0, false);
};

Socket.prototype.getSendQueueSize = function() {
  const state = this[kState];
  return (state.handle === null ? 0 : binding.queue(state.handle)[0]) + state.backlogBytes +
    state.queueBytes;
};

Socket.prototype.getSendQueueCount = function() {
  const state = this[kState];
  return (state.handle === null ? 0 : binding.queue(state.handle)[1]) + state.backlog.length +
    state.queueCount;
};

module.exports = { Socket, createSocket };
