'use strict';
// The npm package: `npm pack` gives a tarball that carries dgring's C
// sources; installing it in an empty project (no network: --offline, it
// has no dependencies) compiles the module with the C compiler alone, and
// the installed module works. Skipped without npm.

const test = require('node:test');
const assert = require('node:assert');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { moduleDir } = require('./common');

function npmPath() {
  const beside = path.join(path.dirname(process.execPath), 'npm');
  if (fs.existsSync(beside)) return beside;
  try {
    return execFileSync('sh', ['-c', 'command -v npm'], { encoding: 'utf8' }).trim() || null;
  } catch {
    return null;
  }
}

const npm = npmPath();

test('npm pack, then npm install of the tarball builds and runs', { skip: !npm && 'no npm' }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dgring-pkg-'));
  try {
    const env = { ...process.env, npm_config_cache: path.join(dir, 'cache'), npm_config_update_notifier: 'false' };
    delete env.DGRING_NODE_ADDON; // the installed package must use its own build
    const packed = execFileSync(npm, ['pack', '--json', '--pack-destination', dir],
      { cwd: moduleDir, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    const info = JSON.parse(packed)[0];
    const files = info.files.map((f) => f.path);
    for (const f of ['index.js', 'lib/dgram.js', 'src/addon.h', 'scripts/build.js',
      'dgring/include/dgring.h', 'dgring/engine/loop.c', 'dgring/resolver/ares.c']) {
      assert.ok(files.includes(f), `the tarball holds ${f}`);
    }
    assert.ok(!files.some((f) => f.startsWith('test/') || f.startsWith('build/')));
    const project = path.join(dir, 'project');
    fs.mkdirSync(project);
    fs.writeFileSync(path.join(project, 'package.json'), '{"name":"consumer","version":"1.0.0"}');
    execFileSync(npm, ['install', '--offline', '--no-audit', '--no-fund', path.join(dir, info.filename)],
      { cwd: project, env, stdio: ['ignore', 'pipe', 'pipe'] });
    assert.ok(fs.existsSync(path.join(project, 'node_modules', 'dgring', 'build', 'dgring.node')));
    const out = execFileSync(process.execPath, ['-e', `
      const dgram = require('dgring');
      const s = dgram.createSocket('udp4');
      s.on('message', (m, r) => { console.log(m.toString() + ' ' + r.family); s.close(); });
      s.bind(0, '127.0.0.1', () => s.send('installed', s.address().port, '127.0.0.1'));`],
    { cwd: project, env, encoding: 'utf8' });
    assert.strictEqual(out.trim(), 'installed IPv4');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
