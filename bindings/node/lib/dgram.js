'use strict';
// require('dgring'): node:dgram's API on dgring (io_uring). A program that
// used require('dgram') changes only that line. docs/node.md in the
// dgring repository says what differs from Node and why.

const { Socket, createSocket } = require('./socket');
const binding = require('./native');

module.exports = {
  createSocket,
  Socket,
  // Which dgring backend this thread's loop runs on: "io_uring", or
  // "epoll" where io_uring is denied (seccomp, kernel.io_uring_disabled).
  backend() {
    const b = binding.backend();
    if (typeof b === 'number') throw require('./errors').fromCode(b, 'backend');
    return b;
  },
};
