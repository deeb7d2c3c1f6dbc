'use strict';
// The differences the differential harness allows: each is a row of the
// table of deliberate differences in docs/migrating-from-node.md, named by
// its item (docs/conformance.md), and nothing else. A difference is not a
// tolerance: expect() turns Node's trace into the exact trace dgring must
// produce, so a change on either side (a fix in dgring, another Node)
// fails the test until this file is updated. docs/node.md lists the same
// differences for users of the module.

// The index of the first entry whose label is `label`.
function at(trace, label) {
  const i = trace.findIndex((e) => e[0] === label);
  if (i < 0) throw new Error(`allowed.js: no "${label}" in Node's trace`);
  return i;
}

function replace(trace, label, ...entries) {
  trace.splice(at(trace, label), 1, ...entries);
  return trace;
}

function remove(trace, label) {
  trace.splice(at(trace, label), 1);
  return trace;
}

// Moves the entry labelled `label` to just after the one labelled `after`.
function moveAfter(trace, label, after) {
  const [entry] = trace.splice(at(trace, label), 1);
  trace.splice(at(trace, after) + 1, 0, entry);
  return trace;
}

const notRunning = {
  class: 'Error', name: 'Error', keys: 'code', message: 'Not running',
  code: 'ERR_SOCKET_DGRAM_NOT_RUNNING',
};

const alreadyBound = {
  class: 'Error', name: 'Error', keys: 'code', message: 'Socket is already bound',
  code: 'ERR_SOCKET_ALREADY_BOUND',
};

module.exports = {
  // E5: Node forgets the closed-socket check in the buffer-size getters
  // and setters (and setTTL, setBroadcast, ...), which then fail with a
  // TypeError on the missing handle; dgring says ERR_SOCKET_DGRAM_NOT_RUNNING.
  closedSetters: {
    reason: 'E5: every call on a closed socket is ERR_SOCKET_DGRAM_NOT_RUNNING',
    expect: (t) => replace(t, 'getRecvBufferSize throws', ['getRecvBufferSize throws', notRunning]),
  },

  // E1: Node cuts a port above 65535 to 16 bits (65536 binds a random
  // port); dgring throws ERR_SOCKET_BAD_PORT and changes nothing.
  bindPortRange: {
    reason: 'E1: bind() refuses ports above 65535',
    expect: (t) => remove(replace(t, 'bind 65536 ->', ['bind 65536 throws', {
      class: 'RangeError', name: 'RangeError', keys: 'code',
      message: 'Port should be >= 0 and < 65536. Received type number (65536).',
      code: 'ERR_SOCKET_BAD_PORT',
    }]), 's listening'),
  },

  // E3: Node drops what waited for an implicit bind that failed; dgring
  // completes each waiting request that has a callback with the bind's
  // error, after the 'error' (a send without one: nothing more).
  implicitBindFails: {
    reason: "E3: a send and a connect queued behind a failed implicit bind get the bind's error",
    expect: (t) => {
      const err = t[at(t, 's error')][1];
      t.splice(at(t, 's error') + 1, 0, ['send a callback', err], ['connect callback', err]);
      return t;
    },
  },

  // E4: with a send waiting for the bind, Node's close() waits behind it
  // (the send goes, its callback never runs, then 'close'); dgring closes
  // at once: no 'listening', the send's callback gets ECANCELED first.
  closeBeforeListening: {
    reason: 'E4: close() does not wait for queued sends; they end with ECANCELED before close',
    expect: (t) => replace(t, 's listening', ['send callback', {
      class: 'Error', name: 'Error', keys: 'address,code,errno,port,syscall',
      message: 'send ECANCELED 127.0.0.1:P1', code: 'ECANCELED', errno: -125,
      syscall: 'send', address: '127.0.0.1', port: 'P1',
    }, undefined]),
  },

  // E6: a membership call binds an unbound socket in libuv while Node
  // still says unbound, so its bind() later fails in the kernel
  // (bind EINVAL); dgring counts the membership's bind as the socket's
  // ('listening' follows) and bind() is ERR_SOCKET_ALREADY_BOUND.
  membershipBinds: {
    reason: "E6: a membership call's implicit bind is the socket's bind",
    expect: (t) => {
      replace(t, 'bind ->', ['bind throws', alreadyBound]);
      return replace(t, 's error', ['s listening']);
    },
  },

  // E2: a lookup function that answers inside the call makes Node's bind()
  // emit 'listening' before it returns; dgring reports every outcome from
  // the loop, after the call returned.
  lookupAnswersInside: {
    reason: 'E2: a lookup answered inside bind() still gives its outcome from the loop',
    expect: (t) => moveAfter(t, 's listening', 'bind returned'),
  },

  // N31: Node's send() goes out inside the call when the kernel takes it
  // (libuv's uv_udp_try_send), so the queue is empty right after; dgring
  // submits the sends of a loop turn together and counts each send until
  // its callback could run.
  sendQueueAfterSend: {
    reason: 'N31: a send counts in getSendQueueSize/Count until it completed',
    expect: (t) => replace(t, 'after two sends', ['after two sends', 10, 2]),
  },
};
