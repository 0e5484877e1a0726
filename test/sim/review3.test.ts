// Third review: timing-only release, urgency end, status verdicts, readiness,
// removed services kept. Every scenario asserts the guarantee; a failing test
// here is a reproduced hole.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assertNoViolations, cluster, leaderOf, masterOf, names, partition, promoteWhenReady, settled } from './kit';
import type { World } from './world';
import type { Runner } from '../../src/core/runner';

const runnerOf = (w: World, n: string): Runner => (w.core(n) as unknown as { runner: Runner }).runner;

function threeWithMaster(master: string): World {
  const w = cluster({ nodes: names(3) });
  assert.ok(w.runUntilTrue(() => settled(w), 4000), 'settled');
  if (masterOf(w) !== master) promoteWhenReady(w, master);
  assert.ok(w.runUntilTrue(() => masterOf(w) === master && settled(w), 4000), `${master} master`);
  return w;
}

/** Other nodes that start a promote while `old`'s own runner still says it holds. */
function promotesWhileHeld(w: World, old: string, sinceMs: number): string[] {
  return w.runLog.filter((r) => r.atMs >= sinceMs && r.node !== old && r.event === 'promote').map((r) => `${r.node}@${r.atMs}`);
}

// V1. A demote whose script is gone at spawn (renamed mid-deploy) is "no
// verdict": the planner runs it again, for ever. A master cut off from the
// leader then never reaches its failure path and never lets go, while the
// leader frees the role by timing (no fence).
test('V1: a cut-off master whose demote keeps vanishing must not outlive the leader\'s timing', () => {
  const w = threeWithMaster('n2');
  const t0 = w.nowMs;
  w.decide = (node, req) => (node === 'n2' && req.event === 'demote' ? { exitCode: 127, vanished: true } : undefined);
  partition(w, ['n2'], ['n1', 'n3']);
  w.runFor(6000);
  const still = runnerOf(w, 'n2').holding();
  const others = promotesWhileHeld(w, 'n2', t0);
  assert.ok(!(still && others.length > 0), `n2 still holds (its runner says so) while ${others.join(',')} promoted; violations: ${w.checker.violations.map((v) => v.text).join('; ')}`);
  assertNoViolations(w);
});

// R1. Mixed timings: the leader n1 counts on a much longer lease and demote
// than the master n2; n2's demote and stop fail while cut off. It must not
// let go by timing before n1's wait is over, and after healing the cluster
// must have one master again.
test('R1: a stuck release under a leader with longer timings, then healing', () => {
  const w = threeWithMaster('n2');
  w.reload('n1', { masterLeaseMs: 2500, demoteTimeoutMs: 2500 });
  w.runFor(1000);
  w.decide = (node, req) => (node === 'n2' && (req.event === 'demote' || req.event === 'stop') ? { exitCode: 1 } : undefined);
  partition(w, ['n2'], ['n1', 'n3']);
  w.runFor(8000);
  w.decide = undefined;
  partition(w, ['n2'], ['n1', 'n3'], false);
  assert.ok(w.runUntilTrue(() => settled(w), 20000), 'settles again');
  assertNoViolations(w);
});

// R2. Late grants: heartbeats from the leader to the master are delayed by
// more than the lease, the master's demote and stop fail. A grant that lands
// after it let go by timing must keep its "free" unproven.
test('R2: grants arriving after a timing-only release', () => {
  const w = threeWithMaster('n2');
  w.decide = (node, req) => (node === 'n2' && (req.event === 'demote' || req.event === 'stop') ? { exitCode: 1 } : undefined);
  const l = w.link('n1', 'n2');
  l.minDelayMs = 1800;
  l.maxDelayMs = 2600;
  w.runFor(10000);
  l.minDelayMs = 0;
  l.maxDelayMs = 5;
  w.decide = undefined;
  w.runUntilTrue(() => settled(w), 20000);
  assertNoViolations(w);
});

// R3. The leader is the master itself; its demote and stop fail after a
// switchover request, then it is killed and restarted.
test('R3: leader-master whose demote fails, killed mid-release', () => {
  const w = threeWithMaster('n1');
  assert.equal(leaderOf(w), 'n1');
  w.decide = (node, req) => (node === 'n1' && (req.event === 'demote' || req.event === 'stop') ? { exitCode: 1 } : undefined);
  partition(w, ['n1'], ['n2', 'n3']);
  w.runFor(1500);
  w.killKoinode('n1');
  w.runFor(1500);
  w.decide = undefined;
  partition(w, ['n1'], ['n2', 'n3'], false);
  w.restart('n1');
  assert.ok(w.runUntilTrue(() => settled(w), 20000), 'settles again');
  assertNoViolations(w);
});

// D1. A status that says 92 on the master (which is the leader): the role
// moves, and n1 must become promotable again afterwards.
test('D1: a 92 on the leader-master moves the role and n1 recovers', () => {
  const w = threeWithMaster('n1');
  let once = true;
  w.decide = (node, req) => {
    if (node === 'n1' && req.event === 'status' && once) {
      once = false;
      return { exitCode: 92 };
    }
    return undefined;
  };
  assert.ok(w.runUntilTrue(() => masterOf(w) !== 'n1' && masterOf(w) !== null && settled(w), 10000), 'role moved');
  w.decide = undefined;
  assert.ok(w.runUntilTrue(() => runnerOf(w, 'n1').state() === 'slave', 10000), `n1 promotable again: ${runnerOf(w, 'n1').state()}`);
  assertNoViolations(w);
});

// K1. A removed service whose demote and stop fail on the master, the
// koinode killed and restarted before the hold bound: the removed service
// kept across the restart must still count as held until proven or timed out.
test('K1: removed service with failing demote survives a koinode restart', () => {
  const w = cluster({ nodes: names(3), services: [{ name: 'db', priority: 10 }, { name: 'web', priority: 5 }] });
  assert.ok(w.runUntilTrue(() => settled(w), 4000), 'settled');
  if (masterOf(w) !== 'n2') promoteWhenReady(w, 'n2');
  assert.ok(w.runUntilTrue(() => masterOf(w) === 'n2' && settled(w), 4000), 'n2 master');
  w.decide = (node, req) => (node === 'n2' && req.service === 'web' && (req.event === 'demote' || req.event === 'stop') ? { exitCode: 1 } : undefined);
  w.setServices('n2', [{ name: 'db', priority: 10 }]);
  w.runFor(300);
  w.killKoinode('n2');
  w.runFor(200);
  w.restart('n2');
  partition(w, ['n2'], ['n1', 'n3']);
  w.runFor(4000);
  w.decide = undefined;
  partition(w, ['n2'], ['n1', 'n3'], false);
  w.runFor(6000);
  assertNoViolations(w);
});
