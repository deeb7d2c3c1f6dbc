#!/usr/bin/env node
'use strict';
// Builds build/dgring.node with the C compiler alone (no node-gyp, meson or
// cmake): dgring's C sources and the addon's, linked with liburing and
// c-ares. npm runs it on install. Needs a C compiler, pkg-config,
// liburing-dev (>= 2.3) and libc-ares-dev (>= 1.18), and Node's headers
// (node_api.h and uv.h), which official Node builds ship in
// <prefix>/include/node.
//
// dgring's sources come from ./dgring (the npm tarball carries a copy,
// made by scripts/pack-sources.js) or, in a checkout of the repository,
// from the repository itself. Environment: CC, CFLAGS,
// DGRING_NODE_HEADERS (a directory with node_api.h and uv.h).

const { execFileSync, spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const pkg = path.resolve(__dirname, '..');
const out = path.join(pkg, 'build');

function fail(msg) {
  process.stderr.write(`dgring build: ${msg}\n`);
  process.exit(1);
}

// The tree holding include/dgring.h, engine/ and resolver/.
function dgringTree() {
  for (const dir of [path.join(pkg, 'dgring'), path.resolve(pkg, '..', '..')]) {
    if (fs.existsSync(path.join(dir, 'include', 'dgring.h')) &&
        fs.existsSync(path.join(dir, 'engine', 'loop.c'))) return dir;
  }
  return fail('no dgring sources (./dgring, or the repository around this package)');
}

function headerDirs() {
  const dirs = [];
  if (process.env.DGRING_NODE_HEADERS) dirs.push(process.env.DGRING_NODE_HEADERS);
  dirs.push(path.resolve(process.execPath, '..', '..', 'include', 'node'),
    '/usr/include/node', '/usr/include/nodejs');
  for (const dir of dirs) {
    if (fs.existsSync(path.join(dir, 'node_api.h')) && fs.existsSync(path.join(dir, 'uv.h'))) {
      return [dir];
    }
  }
  // node-api-headers (npm) has node_api.h but not uv.h: take libuv's own.
  try {
    const napi = path.dirname(require.resolve('node-api-headers/include/node_api.h'));
    if (fs.existsSync('/usr/include/uv.h')) return [napi, '/usr/include'];
  } catch { /* not installed */ }
  return fail(`no node_api.h and uv.h in ${dirs.join(', ')}; set DGRING_NODE_HEADERS`);
}

function pkgConfig(args) {
  try {
    return execFileSync('pkg-config', args, { encoding: 'utf8' }).trim().split(/\s+/).filter(Boolean);
  } catch {
    return fail(`pkg-config ${args.join(' ')} failed: install pkg-config, liburing-dev (>= 2.3) ` +
      'and libc-ares-dev (>= 1.18)');
  }
}

function sources(tree) {
  const list = [];
  for (const dir of ['engine', 'engine/core', 'engine/dgram', 'resolver']) {
    for (const f of fs.readdirSync(path.join(tree, dir)).sort()) {
      if (f.endsWith('.c')) list.push(path.join(tree, dir, f));
    }
  }
  for (const f of fs.readdirSync(path.join(pkg, 'src')).sort()) {
    if (f.endsWith('.c')) list.push(path.join(pkg, 'src', f));
  }
  return list;
}

function run(cmd, args) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: 'inherit' });
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} exited ${code}`))));
  });
}

// Compiles the sources a few at a time, then links.
async function build() {
  const tree = dgringTree();
  const cc = process.env.CC || 'cc';
  pkgConfig(['--atleast-version=2.3', 'liburing']);
  pkgConfig(['--atleast-version=1.18', 'libcares']);
  const cflags = ['-std=gnu11', '-O2', '-g', '-fPIC', '-fvisibility=hidden', '-D_GNU_SOURCE',
    '-Wall', '-Wextra', `-I${path.join(tree, 'include')}`, `-I${tree}`,
    ...headerDirs().map((d) => `-isystem${d}`), ...pkgConfig(['--cflags', 'liburing', 'libcares']),
    ...(process.env.CFLAGS ? process.env.CFLAGS.split(/\s+/).filter(Boolean) : [])];
  fs.mkdirSync(path.join(out, 'obj'), { recursive: true });
  const queue = sources(tree).map((src, i) => [src, path.join(out, 'obj', `${i}-${path.basename(src, '.c')}.o`)]);
  const objects = queue.map(([, o]) => o);
  const workers = Array.from({ length: Math.max(1, Math.min(4, os.cpus().length)) }, async () => {
    while (queue.length > 0) {
      const [src, obj] = queue.shift();
      await run(cc, [...cflags, '-c', src, '-o', obj]);
    }
  });
  await Promise.all(workers);
  await run(cc, ['-shared', '-o', path.join(out, 'dgring.node'), ...objects,
    ...pkgConfig(['--libs', 'liburing', 'libcares']), '-pthread']);
  process.stdout.write(`dgring build: ${path.join(out, 'dgring.node')}\n`);
}

build().catch((err) => fail(err.message));
