// Freshness-aware choice (issue 12): among promotable runners the leader
// prefers the highest KOI_SCORE (a replication offset, a log position), and
// with promote_max_lag it does not choose one too far behind the best known.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assertNoViolations, cluster, masterOf, names, settled } from './kit';
import type { World } from './world';

/** Three runners and two electors that are not runners: two runners may die and a quorum stays. */
const FIVE = [...names(3), { name: 'e4', priority: 0, runner: false }, { name: 'e5', priority: 0, runner: false }];

/** Every status of a running service on `node` says 0 and prints the node's score. */
function scoring(w: World, scores: Record<string, number>): void {
  w.decide = (node, req) => (req.event === 'status' && w.checker.level(node, req.service) > 0 ? { exitCode: 0, score: scores[node] } : undefined);
}

test('the master dies: the freshest replica is chosen, not the highest-ranked one', () => {
  const w = cluster({ nodes: names(4) });
  const scores: Record<string, number> = { n1: 500, n2: 100, n3: 300, n4: 200 };
  scoring(w, scores);
  assert.ok(w.runUntilTrue(() => settled(w), 4000));
  assert.equal(masterOf(w), 'n1', 'the highest score (and rank) first');
  w.runFor(1500); // every runner's score is reported
  w.crash('n1');
  assert.ok(w.runUntilTrue(() => masterOf(w) !== null && masterOf(w) !== 'n1' && settled(w), 8000));
  assert.equal(masterOf(w), 'n3', 'n3 has the freshest copy (300), though n2 outranks it');
  assertNoViolations(w);
});

test('promote_max_lag: a replica too far behind the best known score is not chosen, however long the wait', () => {
  const w = cluster({ nodes: FIVE, params: { promoteMaxLag: 50 } });
  const scores: Record<string, number> = { n1: 1000, n2: 900, n3: 980 };
  scoring(w, scores);
  assert.ok(w.runUntilTrue(() => settled(w), 4000));
  w.runFor(1500);
  w.crash('n1');
  assert.ok(w.runUntilTrue(() => masterOf(w) === 'n3' && settled(w), 8000), 'n3 is 20 behind: chosen');
  w.runFor(1500);
  w.crash('n3');
  w.runFor(8000);
  assert.equal(masterOf(w), null, 'n2 is 100 behind the best known (n1\'s 1000): never chosen automatically');
  assert.equal(w.runLog.filter((r) => r.node === 'n2' && r.event === 'promote').length, 0);
  // The operator may accept the loss: koi promote still works.
  w.admin({ kind: 'promote', node: 'n2' });
  assert.ok(w.runUntilTrue(() => masterOf(w) === 'n2' && settled(w), 5000), 'promoted by hand');
  assertNoViolations(w);
});

test('without promote_max_lag the lagging replica is chosen when it is the only one left', () => {
  const w = cluster({ nodes: FIVE });
  scoring(w, { n1: 1000, n2: 900, n3: 980 });
  assert.ok(w.runUntilTrue(() => settled(w), 4000));
  w.runFor(1500);
  w.crash('n1');
  assert.ok(w.runUntilTrue(() => masterOf(w) === 'n3' && settled(w), 8000));
  w.runFor(1500);
  w.crash('n3');
  assert.ok(w.runUntilTrue(() => masterOf(w) === 'n2' && settled(w), 8000));
  assertNoViolations(w);
});
