// A runner whose demote or stop failed lets go by timing alone: it must not
// do so before the leader's own wait is over (the leader's timings may be
// longer than its own), and its "I hold nothing" is no proof while a grant
// that arrived late keeps the leader waiting: the leader then waits by its
// own timings. Found by the default sweep (seeds 2486, 3510) once the
// checker stopped excusing a failed stop before the lease and demote time.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Runner } from '../../src/core/runner';
import { report } from './report';
import { runSeed, type SeedResult } from './run-seed';

const SEEDS = [2486, 3510];

function describe(rs: SeedResult[]): string {
  const lines: string[] = [];
  for (const r of rs) report(r, (s) => lines.push(s));
  return lines.join('\n');
}

test('seeds where a late grant reached a runner that had let go by timing stay clean', () => {
  for (const seed of SEEDS) {
    const r = runSeed(seed, { rescans: false });
    assert.equal(r.violations.length, 0, describe([r]));
  }
});

test('rule removed: a runner whose word "free" always counts is caught (two masters)', (t) => {
  t.mock.method(Runner.prototype as unknown as { unprovenRelease: () => boolean }, 'unprovenRelease', () => false);
  const caught = SEEDS.filter((seed) => runSeed(seed, { rescans: false }).violations.some((v) => v.kind === 'two-masters'));
  assert.ok(caught.length > 0, 'no seed shows the overlap without the rule');
});
