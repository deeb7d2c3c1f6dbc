'use strict';
// Loads the compiled module: $DGRING_NODE_ADDON when set (the repository's
// tests point it at meson's build), else build/dgring.node beside this
// package (what `npm install` builds, see scripts/build.js).

const fs = require('node:fs');
const path = require('node:path');

// A package whose install script did not run (npm --ignore-scripts, or an
// npm that waits for install scripts to be approved) builds on first use.
function buildNow(file) {
  process.stderr.write('dgring: building the native module (its install step did not run)\n');
  require('node:child_process').execFileSync(process.execPath,
    [path.join(__dirname, '..', 'scripts', 'build.js')], { stdio: ['ignore', 'ignore', 'inherit'] });
  return fs.existsSync(file);
}

function load() {
  const fromEnv = process.env.DGRING_NODE_ADDON;
  const file = fromEnv ? path.resolve(fromEnv) : path.join(__dirname, '..', 'build', 'dgring.node');
  if (!fromEnv && !fs.existsSync(file)) buildNow(file);
  try {
    return require(file);
  } catch (err) {
    err.message = `dgring: cannot load the native module ${file}: ${err.message}` +
      (fromEnv ? '' : ' (run `npm run build` in the package directory)');
    throw err;
  }
}

module.exports = load();
