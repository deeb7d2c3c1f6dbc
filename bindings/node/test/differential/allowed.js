'use strict';
// The differences the differential harness allows, each with its reason.
// A difference is not a tolerance: expect() turns Node's trace into the
// exact trace dgring must produce, so a change on either side (a fix in
// dgring, another Node) fails the test until this file is updated.
// docs/node.md lists the same differences for users.

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

const notRunning = {
  class: 'Error', name: 'Error', keys: 'code', message: 'Not running',
  code: 'ERR_SOCKET_DGRAM_NOT_RUNNING',
};

const alreadyBound = {
  class: 'Error', name: 'Error', keys: 'code', message: 'Socket is already bound',
  code: 'ERR_SOCKET_ALREADY_BOUND',
};

module.exports = {
  // Node forgets the closed-socket check in the buffer-size getters and
  // setters (and setTTL, setBroadcast, ...), which then fail with a
  // TypeError on the missing handle; dgring says ERR_SOCKET_DGRAM_NOT_RUNNING
  // (docs/conformance.md E5).
  closedSetters: {
    reason: 'calls on a closed socket are ERR_SOCKET_DGRAM_NOT_RUNNING (E5)',
    expect: (t) => replace(t, 'getRecvBufferSize throws', ['getRecvBufferSize throws', notRunning]),
  },

  // Node cuts a port above 65535 to 16 bits (65536 binds a random port);
  // dgring throws ERR_SOCKET_BAD_PORT (docs/conformance.md E1).
  bindPortRange: {
    reason: 'bind() refuses ports above 65535 (E1)',
    expect: (t) => remove(replace(t, 'bind 65536 ->', ['bind 65536 throws', {
      class: 'RangeError', name: 'RangeError', keys: 'code',
      message: 'Port should be >= 0 and < 65536. Received type number (65536).',
      code: 'ERR_SOCKET_BAD_PORT',
    }]), 's listening'),
  },

  // Node looks up a send's address only once the implicit bind it queued
  // behind is done, so the lookup, and its failure, come after
  // 'listening'; dgring looks it up when send() is called, so a failure
  // is reported before 'listening'.
  // Node: lookup 0.0.0.0 (bind), listening, lookup bad.invalid, callback.
  // dgring: lookup bad.invalid, lookup 0.0.0.0, callback, listening.
  sendLookupFirst: {
    reason: "a send queued behind the implicit bind is looked up at once, not after 'listening'",
    expect: (t) => [t[2], t[0], t[3], t[1], ...t.slice(4)],
  },
  // Node marks the socket as binding before it checks bind({fd})'s
  // descriptor, so after that throws every later bind() is
  // ERR_SOCKET_ALREADY_BOUND; dgring refuses the descriptor and changes
  // nothing, so the socket can still be bound.
  fdBindFailure: {
    reason: 'a bind({fd}) that throws leaves the socket unbound',
    expect: (t) => {
      const i = t.findIndex((e) => e[0] === 'then an ordinary bind throws' &&
        e[1].code === alreadyBound.code);
      if (i < 0) throw new Error('allowed.js: Node no longer refuses the second bind');
      t.splice(i, 1, ['then an ordinary bind ->', true], ['s listening']);
      return t;
    },
  },

  // Node's send() goes out inside the call when the kernel takes it
  // (libuv's uv_udp_try_send), so the queue is empty right after; dgring
  // submits the sends of a turn together, so they count until the loop
  // ran (getSendQueueSize/Count include them, as Node's do for sends that
  // had to wait).
  sendQueueAfterSend: {
    reason: 'sends are in flight until the loop submits them in one batch',
    expect: (t) => replace(t, 'after two sends', ['after two sends', 10, 2]),
  },
};
