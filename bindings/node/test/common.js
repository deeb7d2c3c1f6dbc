'use strict';
// Helpers the node --test suites share.

const { spawn } = require('node:child_process');
const path = require('node:path');

const moduleDir = path.resolve(__dirname, '..');

// Runs `code` in a child node (which loads dgring from this package, the
// addon from $DGRING_NODE_ADDON as the parent does). Resolves with its
// exit code, signal and output; onLine(line, child) sees stdout lines.
function child(code, { onLine, args = [], env = {} } = {}) {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, [...args, '-e', code], {
      cwd: moduleDir,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let pending = '';
    c.stdout.on('data', (d) => {
      stdout += d;
      pending += d;
      let i;
      while ((i = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, i);
        pending = pending.slice(i + 1);
        if (onLine) onLine(line, c);
      }
    });
    c.stderr.on('data', (d) => { stderr += d; });
    // A guard against a child that never exits (a socket that wrongly
    // keeps it alive): killed after a minute, which fails the test.
    const guard = setTimeout(() => c.kill('SIGKILL'), 60000);
    c.on('error', reject);
    c.on('exit', (status, signal) => {
      clearTimeout(guard);
      resolve({ status, signal, stdout, stderr });
    });
  });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// A test that fails half-way leaves its sockets bound, and a bound socket
// keeps the test file's process (and so node --test) running: every
// socket the given modules create is closed after the file's tests.
function closeLeftovers(...modules) {
  const made = [];
  for (const m of modules) {
    const create = m.createSocket;
    m.createSocket = function createSocket(...args) {
      const s = create.apply(this, args);
      made.push(s);
      return s;
    };
  }
  require('node:test').after(() => {
    for (const s of made) {
      try {
        s.close();
      } catch { /* closed already */ }
    }
  });
}

module.exports = { child, sleep, moduleDir, closeLeftovers };
