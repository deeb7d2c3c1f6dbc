'use strict';
// Loads the compiled module: $DGRING_NODE_ADDON when set (the repository's
// tests point it at meson's build), else build/dgring.node beside this
// package (what `npm install` builds, see scripts/build.js).

const path = require('node:path');

function load() {
  const fromEnv = process.env.DGRING_NODE_ADDON;
  const file = fromEnv ? path.resolve(fromEnv) : path.join(__dirname, '..', 'build', 'dgring.node');
  try {
    return require(file);
  } catch (err) {
    err.message = `dgring: cannot load the native module ${file}: ${err.message}` +
      (fromEnv ? '' : ' (run `npm run build` in the package directory)');
    throw err;
  }
}

module.exports = load();
