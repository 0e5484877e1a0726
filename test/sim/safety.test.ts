// Scenarios for the holes a review of the core reproduced (issue "never two
// masters, re-proven"). Each one is a recipe that produced two masters (or a
// stuck cluster) on the code before the fix; they run on the virtual clock,
// so their timing is exact.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { adminSync, assertNoViolations, cluster, eventsOf, leaderOf, masterOf, names, partition, promoteWhenReady, settled } from './kit';
import type { World } from './world';
import * as master from '../../src/core/master';
import * as fencing from '../../src/core/fencing';
import * as services from '../../src/core/services';
import * as election from '../../src/core/election';

/**
 * Hole 1: a new leader renews an inherited designation that no quorum held.
 * Electors A>B>C (C and B hold no services), runner-only R, quorum 2.
 */
function inheritedDesignation(trigger: 'promote' | 'failure', backLink: 'open' | 'cut'): World {
  const w = cluster({
    nodes: [
      { name: 'A', priority: 3 },
      { name: 'B', priority: 2, runner: false },
      { name: 'C', priority: 1, runner: false },
      { name: 'R', priority: 0, elector: false },
    ],
  });
  const core = (n: string) => w.core(n)!;
  assert.ok(w.runUntilTrue(() => settled(w), 3000), 'settled');
  if (masterOf(w) !== 'R') {
    assert.equal(adminSync(w, { kind: 'promote', node: 'R' }), 'ok');
    assert.ok(w.runUntilTrue(() => masterOf(w) === 'R' && settled(w), 3000), 'R is master');
  }
  w.runFor(300);
  if (trigger === 'failure') {
    // Line the failure up with R's next status, just after the cut.
    const last = () => w.runLog.filter((r) => r.node === 'R' && r.event === 'status').at(-1)?.atMs ?? -1;
    const seen = last();
    assert.ok(w.runUntilTrue(() => last() > seen, 3000), 'R ran a status');
    w.runUntil(last() + 1000 - 150);
  }
  // Scripts that take a little longer, as real ones do: a demote is not instant.
  w.scripts = { ...w.scripts, minMs: 100, maxMs: 200 };
  // C goes down; A can no longer reach B (and, in one variant, B not A).
  w.crash('C');
  w.link('A', 'B').cut = true;
  if (backLink === 'cut') w.link('B', 'A').cut = true;
  // A stays promotable (no random 93 from its status): the scenario needs it chosen.
  const aReady = (node: string, req: { event: string; service: string }) =>
    node === 'A' && req.event === 'status' && w.checker.level('A', req.service) > 0 ? { exitCode: 0 } : undefined;
  w.decide = aReady;
  // Still in A's tenure: R stops being master, A designates itself, but only A holds that state.
  if (trigger === 'promote') {
    w.admin({ kind: 'promote', node: 'A' }, 'A');
  } else {
    let failed = false;
    w.decide = (node, req) => {
      if (node === 'R' && req.event === 'status' && !failed) {
        failed = true;
        return { exitCode: 1, ms: 5 };
      }
      return aReady(node, req);
    };
  }
  assert.ok(w.runUntilTrue(() => core('A').state.master === 'A', 700), 'A designated itself within its tenure');
  assert.ok(w.runUntilTrue(() => !core('A').isLeader(), 2000), 'A stepped down without quorum');
  const e1 = core('B').epoch;
  // A→B comes back just long enough for A to win the next epoch with B's vote.
  w.link('A', 'B').cut = false;
  w.link('B', 'A').cut = false;
  Object.assign(w.link('B', 'A'), { minDelayMs: 50, maxDelayMs: 50 });
  assert.ok(w.runUntilTrue(() => core('B').epoch > e1 && core('B').votedFor === 'A', 5000), 'B voted for A');
  w.link('A', 'B').cut = true;
  Object.assign(w.link('B', 'A'), { minDelayMs: 0.2, maxDelayMs: 2 });
  w.runUntilTrue(() => core('A').isLeader(), 500);
  // C comes back unable to hear A; B and C elect B, whose newest state names R.
  w.link('A', 'C').cut = true;
  w.restart('C');
  w.runFor(6000);
  if (process.env.KOI_SIM_DEBUG) console.log(w.trace.slice(-250).join('\n'));
  return w;
}

for (const trigger of ['promote', 'failure'] as const) {
  for (const backLink of ['open', 'cut'] as const) {
    test(`hole 1 (${trigger}, B→A ${backLink}): a leader grants nothing for a designation no quorum holds in its own state`, () => {
      const w = inheritedDesignation(trigger, backLink);
      assertNoViolations(w);
    });
  }
}

test('hole 1, rule removed: a new leader that renews its inherited master at once is caught', () => {
  const original = master.inheritedDesignationPending;
  (master as { inheritedDesignationPending: typeof original }).inheritedDesignationPending = () => null;
  try {
    const w = inheritedDesignation('promote', 'cut');
    assert.ok(w.checker.violations.some((v) => v.kind === 'two-masters'), 'the simulator sees two masters without the rule');
  } finally {
    (master as { inheritedDesignationPending: typeof original }).inheritedDesignationPending = original;
  }
});

/**
 * Hole 2: one failed fence let the leader free a later holder by timing alone.
 * n1 leads; n2 is master and freezes; its fence fails, so the leader waits
 * out n2's lease (that overlap is excused: nothing could stop n2). Later n2
 * is master again in the same leadership and freezes again; now the fence
 * works but is slow. The leader must wait for it, not for the clock.
 */
function fenceFailureScoped(): World {
  const w = cluster({ nodes: names(3), params: { fenceConfigured: true } });
  assert.ok(w.runUntilTrue(() => settled(w), 3000));
  promoteWhenReady(w, 'n2');
  assert.ok(w.runUntilTrue(() => masterOf(w) === 'n2' && settled(w), 3000));
  w.decideFence = () => ({ ok: false, ms: 50 });
  w.freeze('n2');
  assert.ok(w.runUntilTrue(() => masterOf(w) === 'n3' && w.checker.fullyPromoted('n3'), 6000), 'n3 took over after the failed fence');
  w.thaw('n2');
  assert.ok(w.runUntilTrue(() => w.checker.holders().length === 1, 3000), 'n2 let go once it ran again');
  promoteWhenReady(w, 'n2');
  assert.ok(w.runUntilTrue(() => masterOf(w) === 'n2' && settled(w), 3000), 'n2 master again');
  assert.equal(leaderOf(w), 'n1', 'one leadership throughout');
  w.decideFence = () => ({ ok: true, ms: 4000 });
  w.freeze('n2');
  w.runFor(8000);
  return w;
}

test('hole 2: a failed fence concerns one attempt; a later freeze waits for the fence, not the clock', () => {
  const w = fenceFailureScoped();
  assertNoViolations(w);
  assert.ok(masterOf(w) !== 'n2', 'the role moved once the fence succeeded');
});

test('hole 2, rule removed: a leader that keeps a fence failure for the whole leadership is caught', () => {
  const original = fencing.fenceFailedSinceGrant;
  (fencing as { fenceFailedSinceGrant: typeof original }).fenceFailedSinceGrant = (v) => v.fenceFailedSeq > -Infinity;
  try {
    const w = fenceFailureScoped();
    assert.ok(w.checker.violations.some((v) => v.kind === 'two-masters'), 'the simulator sees two masters without the rule');
  } finally {
    (fencing as { fenceFailedSinceGrant: typeof original }).fenceFailedSinceGrant = original;
  }
});

test('a failed fence is retried with a growing pause, not back to back', () => {
  // A master that died during maintenance may have held on past its lease:
  // only its fence (or its own word) frees it, so a failing fence is retried.
  const w = cluster({ nodes: names(3), params: { fenceConfigured: true } });
  assert.ok(w.runUntilTrue(() => settled(w), 3000));
  promoteWhenReady(w, 'n2');
  assert.ok(w.runUntilTrue(() => masterOf(w) === 'n2' && settled(w), 3000));
  w.decideFence = () => ({ ok: false, ms: 20 });
  assert.equal(adminSync(w, { kind: 'maintenance', on: true }), 'ok');
  const t0 = w.nowMs;
  w.crash('n2');
  assert.equal(adminSync(w, { kind: 'maintenance', on: false }), 'ok');
  w.runFor(30_000);
  const at = w.fenceLog.filter((f) => f.target === 'n2' && f.atMs >= t0).map((f) => f.atMs);
  assert.ok(at.length >= 4 && at.length <= 8, `retried a few times in 30 s: ${at.length} attempts`);
  const gaps = at.slice(1).map((t, i) => t - at[i]!);
  assert.ok(gaps[0]! >= 500, `the first retry waits a leader_timeout: ${gaps[0]}`);
  for (let i = 1; i < gaps.length; i++) assert.ok(gaps[i]! >= 1.9 * gaps[i - 1]!, `pauses grow: ${gaps.map((g) => g.toFixed(0)).join(', ')}`);
  assert.equal(eventsOf(w, 'fence-result').filter((e) => e.ev.node === 'n2').length, at.length, 'each attempt reported');
  assertNoViolations(w);
});

/**
 * Hole 6: a demote that fails proves nothing. n2 is master; `koi promote n3`
 * asks it to demote, the demote fails, and its `failed` and `stop` scripts
 * take a while. n3 may start promote only after n2's stop succeeded.
 */
let t0 = 0;
function failedDemote(): World {
  const w = cluster({ nodes: names(3) });
  assert.ok(w.runUntilTrue(() => settled(w), 3000));
  promoteWhenReady(w, 'n2');
  assert.ok(w.runUntilTrue(() => masterOf(w) === 'n2' && settled(w), 3000));
  w.decide = (node, req) => {
    if (node !== 'n2') return undefined;
    if (req.event === 'demote') return { exitCode: 1, ms: 30 };
    if (req.event === 'failed' || req.event === 'stop') return { exitCode: 0, ms: 300 };
    return undefined;
  };
  w.admin({ kind: 'promote', node: 'n3' }, 'n1');
  t0 = w.nowMs;
  w.runFor(3000);
  return w;
}

test('hole 6: after a failed demote the role is held until stop succeeds', () => {
  const w = failedDemote();
  assertNoViolations(w);
  const stopOfN2 = w.runLog.find((r) => r.atMs >= t0 && r.node === 'n2' && r.event === 'stop');
  const promoteOfN3 = w.runLog.find((r) => r.atMs >= t0 && r.node === 'n3' && r.event === 'promote');
  assert.ok(stopOfN2 !== undefined && promoteOfN3 !== undefined, 'n2 stopped and n3 was promoted');
  assert.ok(promoteOfN3.atMs >= stopOfN2.atMs + 300, `n3 promoted at ${promoteOfN3.atMs}, after n2's stop ended (${stopOfN2.atMs + 300})`);
});

test('hole 6, rule removed: a core that ends holding with a failed demote is caught', () => {
  const original = services.finishScript;
  (services as { finishScript: typeof original }).finishScript = (s, exitCode, signal) => {
    const event = s.running;
    const failed = original(s, exitCode, signal);
    if (event === 'demote' || event === 'stop') s.holding = false;
    return failed;
  };
  try {
    const w = failedDemote();
    assert.ok(w.checker.violations.some((v) => v.kind === 'two-masters'), 'the simulator sees two masters without the rule');
  } finally {
    (services as { finishScript: typeof original }).finishScript = original;
  }
});

/**
 * Hole 4: a node whose state_dir was lost must not vote twice in one epoch.
 * n3 is cut off while L (n1 or n2) wins a new epoch with the vote of V (the
 * other). V's machine is rebuilt without its state, and L becomes
 * unreachable. n3, one epoch behind, asks V for L's epoch: granting it would
 * make a second leader of that epoch.
 */
function lostState(): { w: World; L: string; V: string } {
  const w = cluster({ nodes: names(3) });
  assert.ok(w.runUntilTrue(() => settled(w), 3000), 'settled');
  partition(w, ['n3'], ['n1', 'n2']);
  partition(w, ['n1'], ['n2']);
  w.runFor(2000);
  partition(w, ['n1'], ['n2'], false);
  const before = w.core('n3')!.epoch;
  assert.ok(w.runUntilTrue(() => leaderOf(w) !== null && w.core(leaderOf(w)!)!.epoch === before + 1, 5000), 'a new leader one epoch ahead of n3');
  const L = leaderOf(w)!;
  const V = L === 'n1' ? 'n2' : 'n1';
  assert.equal(w.core(V)!.votedFor, L);
  w.crash(V);
  w.runFor(100);
  partition(w, ['n3'], [V], false);
  partition(w, [L], [V, 'n3']);
  w.restart(V, true);
  w.runFor(5000);
  return { w, L, V };
}

test('hole 4: a node that lost its saved state does not vote twice in an epoch', () => {
  const { w, L, V } = lostState();
  assertNoViolations(w);
  assert.notEqual(w.core(V)!.leader ?? '', 'n3', `${V} did not help n3 lead`);
  // Once L is heard again, V votes again and the cluster settles.
  partition(w, [L], [V, 'n3'], false);
  assert.ok(w.runUntilTrue(() => settled(w), 8000), 'settled after the heal');
  assertNoViolations(w);
});

test('hole 4, rule removed: a node that votes at once after losing its state is caught', () => {
  const original = election.rejoiningMayVote;
  (election as { rejoiningMayVote: typeof original }).rejoiningMayVote = () => true;
  try {
    const { w } = lostState();
    assert.ok(w.checker.violations.some((v) => v.kind === 'two-leaders'), `the simulator sees two leaders without the rule: ${JSON.stringify(w.checker.violations)}`);
  } finally {
    (election as { rejoiningMayVote: typeof original }).rejoiningMayVote = original;
  }
});

test('hole 5: a holder whose loop stalled with less lease left than the stall lets go at once', () => {
  const w = cluster({ nodes: names(3) });
  assert.ok(w.runUntilTrue(() => settled(w), 3000));
  promoteWhenReady(w, 'n2');
  assert.ok(w.runUntilTrue(() => masterOf(w) === 'n2' && settled(w), 3000));
  // Cut off, n2's lease (800 ms) runs down; a 400 ms stall leaves less than that.
  partition(w, ['n2'], ['n1', 'n3']);
  w.runFor(50);
  w.freeze('n2');
  w.runFor(400);
  const thawMs = w.nowMs;
  w.thaw('n2');
  assert.ok(w.core('n2')!.runner!.report(w.clock('n2')).holding, 'n2 still held, its lease not yet over');
  const stalled = eventsOf(w, 'warning').find((e) => e.node === 'n2' && e.ev.text.startsWith('event loop stalled'));
  assert.ok(stalled !== undefined, 'n2 said its loop stalled');
  const demote = w.runLog.find((r) => r.node === 'n2' && r.event === 'demote' && r.atMs >= stalled.atMs);
  assert.ok(demote !== undefined && demote.atMs === thawMs, `and demoted at once (${demote?.atMs} vs thaw ${thawMs}), not at its lease end`);
  w.runFor(3000);
  assertNoViolations(w);
});

test('a loop stall with plenty of lease left changes nothing', () => {
  const w = cluster({ nodes: names(3) });
  assert.ok(w.runUntilTrue(() => settled(w), 3000));
  const m = masterOf(w)!;
  const t0 = w.nowMs;
  w.freeze(m);
  w.runFor(250);
  w.thaw(m);
  w.runFor(2000);
  assert.equal(w.runLog.filter((r) => r.node === m && r.event === 'demote' && r.atMs >= t0).length, 0, 'no demote');
  assert.equal(masterOf(w), m);
  assertNoViolations(w);
});

test('hole 7: after maintenance a dead master blocks failover until koi confirm-down, and status says so', () => {
  const w = cluster({ nodes: names(3) });
  assert.ok(w.runUntilTrue(() => settled(w), 3000));
  promoteWhenReady(w, 'n2');
  assert.ok(w.runUntilTrue(() => masterOf(w) === 'n2' && settled(w), 3000));
  assert.equal(adminSync(w, { kind: 'maintenance', on: true }, 'n1'), 'ok');
  w.crash('n2');
  assert.equal(adminSync(w, { kind: 'maintenance', on: false }, 'n1'), 'ok');
  w.runFor(5000);
  assert.equal(masterOf(w), null, 'nobody promoted while n2 may still hold');
  const waiting = w.core('n1')!.blockers();
  assert.equal(waiting.length, 1);
  assert.equal(waiting[0]!.node, 'n2');
  assert.match(waiting[0]!.reason, /koi confirm-down n2/);
  assert.match(adminSync(w, { kind: 'confirm-down', node: 'n3', wallMs: 1 }, 'n1'), /refused: n3 is reachable/);
  assert.equal(adminSync(w, { kind: 'confirm-down', node: 'n2', wallMs: 1 }, 'n1'), 'ok');
  assert.ok(w.runUntilTrue(() => settled(w), 3000), 'a new master once the operator confirmed n2 is down');
  assert.ok(w.core('n1')!.state.failures.some((f) => f.node === 'n2' && f.event === 'confirm-down'), 'recorded in the failure history');
  assertNoViolations(w);
});
