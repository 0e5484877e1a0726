// The short, fixed-seed fault-injection run that CI does: real koinodes,
// relays, kills, freezes with a fence, failing and hanging scripts, operator
// commands, and a run with stand-in watchdogs instead of a fence.
// `npm run chaos -- --seconds 600` runs the long one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatResult, runChaos } from './run';

// The 3-node run has no fence (the lease-expiry path against real timers, no
// freezes) and nodes whose master_lease and demote_timeout differ. A short
// quiet tail keeps the suite short: it still checks that a settled cluster
// does not change its leader on its own.
for (const [seed, nodes, fence] of [[1, 3, false], [2, 5, true]] as const) {
  const what = fence ? 'with a fence' : 'no fence, mixed timings';
  test(`fault injection, seed ${seed}, ${nodes} nodes, ${what}, 32 s: no overlapping masters, order kept, converged, no leader change in quiet time`, async () => {
    const r = await runChaos({ seconds: 32, seed, nodes, fence, mixedTimings: !fence, quietTailSeconds: 10 });
    assert.ok(r.faults >= 8, `the nemesis applied ${r.faults} faults`);
    assert.ok(r.journal.lines > 100, 'the services were busy');
    assert.deepEqual(r.violations, [], formatResult(r));
  });
}

// Stand-in watchdogs and no fence: koinodes are frozen, and only the
// watchdog (which resets a frozen master's machine) keeps the guarantee.
test('fault injection, seed 3, 3 nodes, stand-in watchdogs and no fence, 30 s: no overlapping masters, order kept, converged', async () => {
  const r = await runChaos({ seconds: 30, seed: 3, nodes: 3, fence: false, watchdog: true, quietTailSeconds: 10 });
  assert.ok(r.faults >= 8, `the nemesis applied ${r.faults} faults`);
  assert.deepEqual(r.violations, [], formatResult(r));
});
