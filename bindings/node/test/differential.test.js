'use strict';
// node --test: every scenario of test/differential/scenarios.js against
// node:dgram and dgring in this process; traces must be equal, or differ
// exactly as test/differential/allowed.js documents.

const assert = require('node:assert');
const fs = require('node:fs');
const path = require('node:path');
const test = require('node:test');
const dgram = require('node:dgram');
const dgring = require('..');
const { compare, assertSame } = require('./differential/harness');
const scenarios = require('./differential/scenarios');
const { closeLeftovers } = require('./common');

closeLeftovers(dgram, dgring);

for (const s of scenarios) {
  test(s.name, async () => {
    assertSame(s, await compare(s, dgram, dgring));
  });
}

// The harness allows only dgring's deliberate differences: each entry's
// reason starts with an item of docs/migrating-from-node.md's table, and
// each entry is some scenario's.
test('allowed.js: rows of docs/migrating-from-node.md, each in use', (t) => {
  const doc = path.join(__dirname, '..', '..', '..', 'docs/migrating-from-node.md');
  if (!fs.existsSync(doc)) {
    t.skip('not in the dgring repository (docs/ is not packaged)');
    return;
  }
  const items = new Set();
  for (const line of fs.readFileSync(doc, 'utf8').split('\n')) {
    const m = /^\| ([A-Z][A-Z0-9., ]*) \|/.exec(line);
    if (m) m[1].split(',').forEach((item) => items.add(item.trim()));
  }
  const allowed = require('./differential/allowed');
  const used = new Set(scenarios.map((s) => s.differs).filter(Boolean));
  for (const [name, entry] of Object.entries(allowed)) {
    const item = /^([A-Z][A-Z0-9.]*):/.exec(entry.reason);
    assert.ok(item && items.has(item[1]), `${name}: "${entry.reason}" names no row`);
    assert.ok(used.has(entry), `${name}: no scenario uses it`);
  }
});
