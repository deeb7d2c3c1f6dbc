'use strict';
// node --test: every scenario of test/differential/scenarios.js against
// node:dgram and dgring in this process; traces must be equal, or differ
// exactly as test/differential/allowed.js documents.

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
