// Ready before promotable (issue 12): a runner is chosen, and a service
// promoted, only once a status since its start said it is ready (0, 90, 91)
// and none says 93. A master whose service starts saying 93 keeps the role.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as services from '../../src/core/services';
import { assertNoViolations, cluster, eventsOf, masterOf, names, settled } from './kit';
import { runSeed } from './run-seed';

test('a service that says 93 from its first check is never promoted; the runner whose status says ready is', () => {
  const w = cluster({ nodes: names(3) });
  // Every status says 93 ("live but not promotable") until n2's says 0 at 3 s.
  w.decide = (node, req) => (req.event === 'status' && w.checker.level(node, req.service) > 0 && !(node === 'n2' && w.nowMs > 3000) ? { exitCode: 93 } : undefined);
  w.runFor(2900);
  assert.equal(w.runLog.filter((r) => r.event === 'promote').length, 0, 'nobody promoted while every status says 93');
  assert.equal(masterOf(w), null);
  assert.ok(w.runUntilTrue(() => settled(w), 4000), 'n2 becomes master once its status says ready');
  assert.equal(masterOf(w), 'n2');
  assert.deepEqual([...new Set(w.runLog.filter((r) => r.event === 'promote').map((r) => r.node))], ['n2']);
  assertNoViolations(w);
});

test('a master whose service starts saying 93 keeps the role; when it dies, a ready runner takes over', () => {
  const w = cluster({ nodes: names(3) });
  assert.ok(w.runUntilTrue(() => settled(w), 3000));
  const m = masterOf(w)!;
  const t0 = w.nowMs;
  w.decide = (node, req) => (node === m && req.event === 'status' ? { exitCode: 93 } : undefined);
  w.runFor(5000);
  assert.equal(masterOf(w), m, 'still master');
  assert.equal(eventsOf(w, 'master-revoked', t0).length, 0, 'not revoked for a 93');
  w.crash(m);
  assert.ok(w.runUntilTrue(() => masterOf(w) !== null && masterOf(w) !== m && settled(w), 8000), 'failover to a ready runner');
  assertNoViolations(w);
});

test('rule removed: a planner that promotes a service no status has called ready since its start is caught', () => {
  const original = services.plan;
  (services as { plan: typeof services.plan }).plan = (svcs, target, urgent) => {
    for (const s of svcs) s.ready = true;
    return original(svcs, target, urgent);
  };
  try {
    let caught = false;
    for (let seed = 1; seed <= 50 && !caught; seed++) {
      caught = runSeed(seed, { durationMs: 10_000, freezes: false, rescans: false }).violations.some((v) => v.kind === 'order' && /before a status said it is ready/.test(v.text));
    }
    assert.ok(caught, 'no seed in 1..50 exposed the promote before a ready status');
  } finally {
    (services as { plan: typeof services.plan }).plan = original;
  }
});
