'use strict';
// Node's queue of what waits for 'listening': sends and connects made
// while the socket is unbound or binding run, in call order, once it
// listens, as lib/dgram.js's enqueue() and clearQueue() run them. So their
// lookups start after 'listening' and after the bind's own lookup, and
// their failures follow 'listening', exactly as in Node.
//
// Where dgring decides otherwise (docs/migrating-from-node.md):
//  - E3: when the bind fails, each waiting request with a callback gets the
//    bind's error (Node drops them); without a callback nothing more is
//    reported: the bind's 'error' was.
//  - E4: close() does not wait behind the queue: the waiting sends'
//    callbacks get ECANCELED before 'close'.
//  - N31: the waiting sends count in getSendQueueSize()/Count().

const EventEmitter = require('node:events');

// entry: { run(), fail(err) | undefined, cancel() | undefined,
//          bytes (a send's size; undefined for a connect) }
function enqueue(socket, state, entry) {
  if (state.queue === undefined) {
    state.queue = [];
    state.queueListening = () => flush(socket, state);
    state.queueError = (err) => fail(socket, state, err);
    socket.once(EventEmitter.errorMonitor, state.queueError);
    socket.once('listening', state.queueListening);
  }
  state.queue.push(entry);
  if (entry.bytes !== undefined) {
    state.queueBytes += entry.bytes;
    state.queueCount++;
  }
}

// Takes the queue off the socket, with its listeners and counts.
function take(socket, state) {
  const queue = state.queue;
  if (queue === undefined) return [];
  socket.removeListener(EventEmitter.errorMonitor, state.queueError);
  socket.removeListener('listening', state.queueListening);
  state.queue = state.queueListening = state.queueError = undefined;
  state.queueBytes = 0;
  state.queueCount = 0;
  return queue;
}

function flush(socket, state) {
  for (const entry of take(socket, state)) entry.run();
}

// E3: the bind failed; what waited fails with its error once the 'error'
// listeners ran (errorMonitor runs before them).
function fail(socket, state, err) {
  const failing = take(socket, state).filter((entry) => entry.fail !== undefined);
  if (failing.length > 0) process.nextTick(() => failing.forEach((entry) => entry.fail(err)));
}

// E4: at close, before 'close'.
function cancel(socket, state) {
  for (const entry of take(socket, state)) {
    if (entry.cancel !== undefined) entry.cancel();
  }
}

module.exports = { enqueue, cancel };
