'use strict';
// Node's error objects, rebuilt: the same classes, codes, properties and
// message texts as node:dgram throws or emits, so code that inspects
// err.code, err.errno, err.syscall, err.address, err.port or err.message
// keeps working. dgring's negative codes come in; Errors go out.

const util = require('node:util');

// Node's own codes (dgram's internal/errors) for dgring's DG_ERR_* values;
// the numbers are include/dgring/error.h's.
const DG = {
  SOCKET_BAD_PORT: -10001,
  SOCKET_BAD_TYPE: -10002,
  SOCKET_ALREADY_BOUND: -10003,
  SOCKET_DGRAM_IS_CONNECTED: -10004,
  SOCKET_DGRAM_NOT_CONNECTED: -10005,
  SOCKET_DGRAM_NOT_RUNNING: -10006,
  SOCKET_BUFFER_SIZE: -10007,
  SOCKET_BAD_BUFFER_SIZE: -10008,
  INVALID_ARG_VALUE: -10009,
  INVALID_ARG_TYPE: -10010,
  BUFFER_OUT_OF_BOUNDS: -10011,
  MISSING_ARGS: -10012,
  OUT_OF_RANGE: -10013,
  INVALID_ADDRESS: -10014,
  SEND_QUEUE_FULL: -10016,
  INVALID_FD_TYPE: -10018,
  DNS_FIRST: -11001,
  DNS_NODATA: -11001,
  DNS_NOTFOUND: -11004,
  DNS_NOMEM: -11015,
  DNS_LAST: -11999,
  // A lookup function that threw (src/lookup.c): the exception was the
  // report, and dgring calls no on_error for it; callbacks get it.
  LOOKUP_REPORTED: -10019,
  // The user's range: a JS lookup's error object rides as FIRST - n.
  LOOKUP_USER_FIRST: -20000,
  LOOKUP_USER_LAST: -29999,
};

const kIsNodeError = Symbol('kIsNodeError');

// One subclass per base, as Node's NodeError: name from the base, the code
// in the stack's first line and in toString().
const classes = new Map();
function classFor(Base) {
  let C = classes.get(Base);
  if (C === undefined) {
    C = class NodeError extends Base {
      get ['constructor']() { return Base; }
      get [kIsNodeError]() { return true; }
      toString() { return `${this.name} [${this.code}]: ${this.message}`; }
    };
    classes.set(Base, C);
  }
  return C;
}

function nodeError(Base, code, message) {
  const C = classFor(Base);
  const err = new C(message);
  // The stack's first line reads "RangeError [ERR_X]: ..." as in Node.
  const name = err.name;
  Object.defineProperty(err, 'name', { value: `${name} [${code}]`, configurable: true });
  err.stack; // eslint-disable-line no-unused-expressions
  delete err.name;
  err.code = code;
  return err;
}

// Node's determineSpecificType(), for "Received ..." in type errors.
function specificType(value) {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  switch (typeof value) {
    case 'bigint': return `type bigint (${value}n)`;
    case 'number':
      if (value === 0) return 1 / value === -Infinity ? 'type number (-0)' : 'type number (0)';
      return `type number (${value})`;
    case 'boolean': return `type boolean (${value})`;
    case 'symbol': return `type symbol (${String(value)})`;
    case 'function': return `function ${value.name}`;
    case 'object':
      if (value.constructor && 'name' in value.constructor) {
        return `an instance of ${value.constructor.name}`;
      }
      return util.inspect(value, { depth: -1 });
    case 'string': {
      let v = value;
      if (v.length > 28) v = `${v.slice(0, 25)}...`;
      return v.indexOf("'") === -1 ? `type string ('${v}')` : `type string (${JSON.stringify(v)})`;
    }
    default: {
      let v = util.inspect(value, { colors: false });
      if (v.length > 28) v = `${v.slice(0, 25)}...`;
      return `type ${typeof value} (${v})`;
    }
  }
}

function formatList(list, type = 'or') {
  if (list.length <= 2) return list.join(` ${type} `);
  return `${list.slice(0, -1).join(', ')}, ${type} ${list[list.length - 1]}`;
}

const kTypes = ['string', 'function', 'number', 'object', 'Function', 'Object', 'boolean',
  'bigint', 'symbol'];

// ERR_INVALID_ARG_TYPE with Node's wording.
function invalidArgType(name, expected, actual) {
  if (!Array.isArray(expected)) expected = [expected];
  let msg = 'The ';
  if (name.endsWith(' argument')) msg += `${name} `;
  else msg += `"${name}" ${name.includes('.') ? 'property' : 'argument'} `;
  msg += 'must be ';
  const types = [];
  const instances = [];
  const other = [];
  for (const value of expected) {
    if (kTypes.includes(value)) types.push(value.toLowerCase());
    else if (/^[A-Z][a-zA-Z0-9]*$/.test(value)) instances.push(value);
    else other.push(value);
  }
  if (instances.length > 0 && types.includes('object')) {
    types.splice(types.indexOf('object'), 1);
    instances.push('Object');
  }
  if (types.length > 0) {
    msg += `${types.length > 1 ? 'one of type' : 'of type'} ${formatList(types)}`;
    if (instances.length > 0 || other.length > 0) msg += ' or ';
  }
  if (instances.length > 0) {
    msg += `an instance of ${formatList(instances)}`;
    if (other.length > 0) msg += ' or ';
  }
  if (other.length > 0) msg += other.length > 1 ? `one of ${formatList(other)}` : other[0];
  msg += `. Received ${specificType(actual)}`;
  return nodeError(TypeError, 'ERR_INVALID_ARG_TYPE', msg);
}

function addSeparators(text) {
  let res = '';
  let i = text.length;
  const start = text[0] === '-' ? 1 : 0;
  for (; i >= start + 4; i -= 3) res = `_${text.slice(i - 3, i)}${res}`;
  return `${text.slice(0, i)}${res}`;
}

function outOfRange(name, range, input) {
  const received = Number.isInteger(input) && Math.abs(input) > 2 ** 32 ?
    addSeparators(String(input)) : util.inspect(input);
  return nodeError(RangeError, 'ERR_OUT_OF_RANGE',
    `The value of "${name}" is out of range. It must be ${range}. Received ${received}`);
}

function badPort(name, port, allowZero) {
  const op = allowZero ? '>=' : '>';
  return nodeError(RangeError, 'ERR_SOCKET_BAD_PORT',
    `${name} should be ${op} 0 and < 65536. Received ${specificType(port)}.`);
}

// Node's ErrnoException: "syscall CODE".
function errnoException(errno, syscall) {
  const err = new Error(`${syscall} ${util.getSystemErrorName(errno)}`);
  err.errno = errno;
  err.code = util.getSystemErrorName(errno);
  err.syscall = syscall;
  return err;
}

// Node's ExceptionWithHostPort: "syscall CODE address:port".
function exceptionWithHostPort(errno, syscall, address, port) {
  const code = util.getSystemErrorName(errno);
  let details = '';
  if (port && port > 0) details = ` ${address}:${port}`;
  else if (address) details = ` ${address}`;
  const err = new Error(`${syscall} ${code}${details}`);
  err.errno = errno;
  err.code = code;
  err.syscall = syscall;
  err.address = address;
  if (port) err.port = port;
  return err;
}

// libuv's getaddrinfo codes, which Node's dns.lookup reports: dgring's
// resolver errors are given the code a getaddrinfo failure of the same
// kind has, so `err.code === 'ENOTFOUND'` and 'EAI_AGAIN' checks hold.
const UV_EAI_AGAIN = -3001;
const UV_EAI_FAIL = -3002;
const UV_EAI_MEMORY = -3006;
const UV_EAI_NONAME = -3008;
const DNS_TO_UV = new Map([
  [-11001, UV_EAI_NONAME], [-11004, UV_EAI_NONAME], // NODATA, NOTFOUND
  [-11003, UV_EAI_AGAIN], [-11006, UV_EAI_AGAIN], // SERVFAIL, REFUSED
  [-11011, UV_EAI_AGAIN], [-11012, UV_EAI_AGAIN], // CONNREFUSED, TIMEOUT
  [-11015, UV_EAI_MEMORY],
]);

// Node's DNSException for a failed lookup: "getaddrinfo ENOTFOUND host".
function dnsException(code, hostname) {
  const errno = DNS_TO_UV.get(code) ?? UV_EAI_FAIL;
  const name = errno === UV_EAI_NONAME ? 'ENOTFOUND' : util.getSystemErrorName(errno);
  const err = new Error(`getaddrinfo ${name}${hostname ? ` ${hostname}` : ''}`);
  err.errno = errno;
  err.code = name;
  err.syscall = 'getaddrinfo';
  if (hostname) err.hostname = hostname;
  return err;
}

// Node's SystemError (its NodeError subclass for one code).
class SystemError extends Error {
  toString() { return `${this.name} [${this.code}]: ${this.message}`; }
}
class NodeError extends SystemError {}

// Node's SystemError for ERR_SOCKET_BUFFER_SIZE.
function bufferSizeError(errno, syscall) {
  const code = util.getSystemErrorName(errno);
  const desc = util.getSystemErrorMap().get(errno)?.[1] ?? 'unknown error';
  const context = { errno, code, message: desc, syscall };
  const err = new NodeError(`Could not get or set buffer size: ${syscall} returned ${code} (${desc})`);
  Object.defineProperty(err, 'name', { value: 'SystemError [ERR_SOCKET_BUFFER_SIZE]',
    configurable: true });
  err.stack; // eslint-disable-line no-unused-expressions
  err.code = 'ERR_SOCKET_BUFFER_SIZE';
  Object.defineProperties(err, {
    name: { value: 'SystemError', enumerable: false, writable: true, configurable: true },
    info: { value: context, enumerable: true, configurable: true, writable: false },
    errno: { get() { return context.errno; }, set(v) { context.errno = v; },
      enumerable: true, configurable: true },
    syscall: { get() { return context.syscall; }, set(v) { context.syscall = v; },
      enumerable: true, configurable: true },
  });
  return err;
}

// Node's errors with a fixed text, by dgring's code for them.
const FIXED = new Map([
  [DG.SOCKET_BAD_TYPE, [TypeError, 'ERR_SOCKET_BAD_TYPE',
    'Bad socket type specified. Valid types are: udp4, udp6']],
  [DG.SOCKET_ALREADY_BOUND, [Error, 'ERR_SOCKET_ALREADY_BOUND', 'Socket is already bound']],
  [DG.SOCKET_DGRAM_IS_CONNECTED, [Error, 'ERR_SOCKET_DGRAM_IS_CONNECTED', 'Already connected']],
  [DG.SOCKET_DGRAM_NOT_CONNECTED, [Error, 'ERR_SOCKET_DGRAM_NOT_CONNECTED', 'Not connected']],
  [DG.SOCKET_DGRAM_NOT_RUNNING, [Error, 'ERR_SOCKET_DGRAM_NOT_RUNNING', 'Not running']],
  [DG.SOCKET_BAD_BUFFER_SIZE, [TypeError, 'ERR_SOCKET_BAD_BUFFER_SIZE',
    'Buffer size must be a positive integer']],
  [DG.MISSING_ARGS, [TypeError, 'ERR_MISSING_ARGS',
    'The "multicastAddress" argument must be specified']],
]);

// The Error Node throws for one of dgring's codes returned by a call.
// what: the syscall name Node would give a system error of this call.
function fromCode(code, what) {
  const fixed = FIXED.get(code);
  if (fixed !== undefined) return nodeError(...fixed);
  if (code === DG.INVALID_ADDRESS) return errnoException(-22, what); // libuv's EINVAL
  if (code > -4096) return errnoException(code, what);
  return nodeError(Error, 'ERR_DGRING', `${what}: dgring error ${code}`);
}

module.exports = {
  DG,
  nodeError,
  invalidArgType,
  outOfRange,
  badPort,
  errnoException,
  exceptionWithHostPort,
  dnsException,
  bufferSizeError,
  fromCode,
  specificType,
};
