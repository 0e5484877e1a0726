// The short, fixed-seed fault-injection run that CI does: real koinodes,
// relays, kills, freezes with a fence, failing and hanging scripts, operator
// commands. `npm run chaos -- --seconds 600` runs the long one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatResult, runChaos } from './run';

for (const [seed, nodes] of [[1, 3], [2, 5]] as const) {
  test(`fault injection, seed ${seed}, ${nodes} nodes, 45 s: no overlapping masters, order kept, converged`, async () => {
    const r = await runChaos({ seconds: 45, seed, nodes });
    assert.ok(r.faults >= 8, `the nemesis applied ${r.faults} faults`);
    assert.ok(r.journal.lines > 100, 'the services were busy');
    assert.deepEqual(r.violations, [], formatResult(r));
  });
}
