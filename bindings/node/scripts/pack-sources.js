#!/usr/bin/env node
'use strict';
// npm's prepack step: copies dgring's C library (include/, engine/,
// resolver/ and the license) from the repository into ./dgring, so the
// tarball `npm pack` makes builds on its own (scripts/build.js).

const fs = require('node:fs');
const path = require('node:path');

const pkg = path.resolve(__dirname, '..');
const repo = path.resolve(pkg, '..', '..');
const dest = path.join(pkg, 'dgring');

if (!fs.existsSync(path.join(repo, 'engine', 'loop.c'))) {
  if (fs.existsSync(path.join(dest, 'engine', 'loop.c'))) process.exit(0); // packed already
  process.stderr.write('pack-sources: not inside the dgring repository\n');
  process.exit(1);
}
fs.rmSync(dest, { recursive: true, force: true });
for (const dir of ['include', 'engine', 'resolver']) {
  fs.cpSync(path.join(repo, dir), path.join(dest, dir), {
    recursive: true,
    filter: (src) => fs.statSync(src).isDirectory() || /\.(c|h)$/.test(src),
  });
}
fs.copyFileSync(path.join(repo, 'LICENSE'), path.join(dest, 'LICENSE'));
