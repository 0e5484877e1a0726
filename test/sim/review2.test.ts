// Second adversarial review of the safety claim "the master role never runs on
// two runners at once" (and "a committed admin decision is never lost"),
// aimed at the designation history, maintenance holders, the adaptive
// acknowledgement window, takeover/rescue and the per-incarnation reset of
// acknowledged versions. Every scenario asserts that no violation happens:
// a failing test here is a reproduced hole.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { adminSync, assertNoViolations, cluster, leaderOf, masterOf, partition, promoteWhenReady, settled } from './kit';
import type { World } from './world';
import { KoiNode } from '../../src/core/node';
import { Runner } from '../../src/core/runner';

const debug = (w: World, tag: string) => {
  if (process.env.KOI_REVIEW_DEBUG === tag) console.log(w.trace.filter((l) => !l.includes('/status')).slice(-300).join('\n'));
};

/** Three electors and runners, A > C > B, with A the leader and master. */
function threeWithMasterA(params: Parameters<typeof cluster>[0]['params'] = {}): World {
  const w = cluster({
    nodes: [
      { name: 'A', priority: 3 },
      { name: 'B', priority: 1 },
      { name: 'C', priority: 2 },
    ],
    params,
  });
  assert.ok(w.runUntilTrue(() => settled(w), 3000), 'settled');
  assert.equal(leaderOf(w), 'A');
  if (masterOf(w) !== 'A') promoteWhenReady(w, 'A', 'A');
  assert.ok(w.runUntilTrue(() => masterOf(w) === 'A' && settled(w), 3000), 'A master');
  return w;
}

// ---------------------------------------------------------------------------
// W1. A restarted voter assumes it acknowledged windows of at most its OWN
// leader_timeout. During a rolling change of leader_timeout (the network
// warning tells the operator to raise it on every node) the leader's window
// can be wider: the voter then under-reports grantsEndInMs and the new leader
// frees the old master's role while the old leader still grants it.
// ---------------------------------------------------------------------------
function restartedVoterUnderReports(leaderLtMs: number, forgetWindow = false): World {
  const w = threeWithMasterA();
  // A has already been reloaded with a longer leader_timeout; B and C not yet.
  w.reload('A', { leaderTimeoutMs: leaderLtMs });
  // C is cut from A: it keeps trying to campaign, B refuses (live leader A).
  partition(w, ['A'], ['C']);
  w.runFor(3000);
  assert.equal(leaderOf(w), 'A');
  assert.equal(masterOf(w), 'A');
  // B's machine reboots (state kept) and comes back unable to reach A.
  w.crash('B');
  partition(w, ['A'], ['B']);
  // Rule removed: the widest window B acknowledged is not kept across its restart.
  if (forgetWindow) delete (w.nodes.get('B')! as unknown as { persisted: { ackWindowMs?: number } }).persisted.ackWindowMs;
  w.restart('B');
  w.runFor(6000);
  debug(w, 'W1');
  return w;
}

test('W1: a voter restarted during a rolling leader_timeout change must not under-report the old window', () => {
  const w = restartedVoterUnderReports(4000);
  assertNoViolations(w);
});

test('W1, rule removed: a restarted voter that forgets the widest window it acknowledged is caught', () => {
  const w = restartedVoterUnderReports(4000, true);
  assert.ok(w.checker.violations.some((v) => v.kind === 'two-masters'), 'two masters without the saved window');
});

test('W1 control: with equal leader_timeout everywhere a restarted voter reports enough', () => {
  const w = restartedVoterUnderReports(500);
  assertNoViolations(w);
});

// ---------------------------------------------------------------------------
// W2. A node rejoining after a lost state_dir grants no vote, but it still
// acknowledges heartbeats, and a leader counts those towards its quorum. So
// a voter that voted for the new leader C, then lost its state, can hand the
// old leader A its quorum back: A keeps granting its own lease after C's
// bound (computed from that very vote), and C promotes another runner.
// ---------------------------------------------------------------------------
function rejoinerRevivesOldLeader(): World {
  const w = threeWithMasterA();
  const e1 = w.core('A')!.epoch;
  partition(w, ['A'], ['B', 'C']);
  assert.ok(w.runUntilTrue(() => w.core('B')!.epoch > e1 && w.core('B')!.votedFor === 'C', 2000), 'B voted for C');
  assert.ok(w.core('A')!.isLeader(), 'A has not stepped down yet');
  // B's disk is lost with the machine; it comes back reaching A only.
  w.crash('B');
  partition(w, ['A'], ['B'], false);
  partition(w, ['B'], ['C']);
  w.restart('B', true);
  assert.ok(w.runUntilTrue(() => leaderOf(w) === null || w.core('C')!.isLeader(), 300));
  w.runFor(500);
  // Then B reaches C only (C has not lost its quorum yet).
  partition(w, ['A'], ['B']);
  partition(w, ['B'], ['C'], false);
  w.runFor(6000);
  debug(w, 'W2');
  return w;
}

test('W2: a node rejoining after a lost state must not give a deposed leader its quorum back', () => {
  const w = rejoinerRevivesOldLeader();
  assertNoViolations(w);
});

test('W2, rule removed: a leader that counts a rejoining node\'s acknowledgements is caught', (t) => {
  const proto = KoiNode.prototype as unknown as { ackMessage: (...a: unknown[]) => Record<string, unknown> };
  const ack = proto.ackMessage;
  t.mock.method(proto, 'ackMessage', function (this: unknown, ...a: unknown[]) {
    const m = ack.apply(this, a);
    delete m.rejoining;
    return m;
  });
  const w = rejoinerRevivesOldLeader();
  assert.ok(w.checker.violations.some((v) => v.kind === 'two-masters'), 'two masters');
});

// ---------------------------------------------------------------------------
// W2b. The same rejoin on a deposed leader also breaks "one vote per epoch"
// and "a committed decision is never lost": B voted for C in epoch 2 and
// acknowledged C's `koi demote`, then lost its disk. It rejoins by following
// the deposed leader A (epoch 1) for leader_timeout — A is still quorate
// thanks to B's own acknowledgements — so B counts epoch 1 as its last vote,
// votes for A in epoch 2 again, and A leads epoch 2 with a state that never
// heard of the committed demote.
// ---------------------------------------------------------------------------
function rejoinerVotesTwiceInEpoch(): { w: World; demoteReply: string } {
  const w = threeWithMasterA();
  const e1 = w.core('A')!.epoch;
  partition(w, ['A'], ['B', 'C']);
  assert.ok(w.runUntilTrue(() => w.core('C')!.isLeader() && w.core('C')!.epoch > e1, 2000), 'C leads');
  const demoteReply = adminSync(w, { kind: 'demote' }, 'C', 200);
  assert.ok(w.core('A')!.isLeader(), 'A has not stepped down yet');
  w.crash('B');
  partition(w, ['A'], ['B'], false);
  partition(w, ['B'], ['C']);
  w.restart('B', true);
  // Before the fix B rejoined on the deposed A here; now it must not.
  w.runFor(2000);
  assert.ok(w.core('B')!.isRejoining(), 'B does not rejoin on a leader that has no quorum without it');
  // A and B lose each other for a while, then meet again: a fresh election.
  partition(w, ['A'], ['B']);
  w.runFor(1500);
  partition(w, ['A'], ['B'], false);
  w.runFor(5000);
  debug(w, 'W2b');
  return { w, demoteReply };
}

test('W2b: a rejoining node must not vote twice in an epoch nor let a committed demote be lost', () => {
  const { w, demoteReply } = rejoinerVotesTwiceInEpoch();
  assert.equal(demoteReply, 'ok', 'the demote was committed (on C and B)');
  const l = leaderOf(w);
  assert.ok(l === null || w.core(l)!.state.manualMaster, `leader ${l} (epoch ${l === null ? '-' : w.core(l)!.epoch}) lost the committed koi demote: master ${l === null ? '-' : w.core(l)!.state.master}`);
  assertNoViolations(w);
});

// ---------------------------------------------------------------------------
// W3 (held). Windows that shrink: a slow network widens the window, it heals
// (the window shrinks back), then the leader and master is cut off. The
// voters remember the widest window they acknowledged; in one variant a
// voter also reboots (equal leader_timeout everywhere).
// ---------------------------------------------------------------------------
function shrinkingWindow(reboot: boolean): World {
  const w = threeWithMasterA();
  for (const x of ['B', 'C']) for (const [a, b] of [['A', x], [x, 'A']] as const) Object.assign(w.link(a, b), { minDelayMs: 140, maxDelayMs: 140 });
  w.runFor(2000);
  assert.ok(w.core('A')!.windowMs() > w.core('A')!.baseWindowMs(), 'the window widened');
  for (const x of ['B', 'C']) for (const [a, b] of [['A', x], [x, 'A']] as const) Object.assign(w.link(a, b), { minDelayMs: 0.2, maxDelayMs: 2 });
  // A's demote takes nearly all of demote_timeout: no slack hides a short bound.
  w.decide = (node, req) => (node === 'A' && req.event === 'demote' ? { exitCode: 0, ms: 480 } : undefined);
  // Cut while the last wide-window heartbeats are still being acknowledged.
  w.runFor(60);
  partition(w, ['A'], ['B', 'C']);
  if (reboot) {
    w.crash('B');
    w.restart('B');
  }
  w.runFor(6000);
  debug(w, 'W3');
  return w;
}

test('W3 (held): a window that shrank still bounds the grants made under the wide one', () => {
  assertNoViolations(shrinkingWindow(false));
});

test('W3 (held): ... and so does a voter that rebooted right after acknowledging the wide one', () => {
  assertNoViolations(shrinkingWindow(true));
});

// ---------------------------------------------------------------------------
// W5 (held). Maintenance across a leader change: the master A is cut off
// during maintenance, B and C elect a new leader, maintenance goes off there.
// A (a maintenance holder, never confirmed free) must block every promotion
// until it answers; then exactly one master.
// ---------------------------------------------------------------------------
test('W5 (held): a maintenance holder cut off across a leader change blocks promotion until it answers', () => {
  const w = threeWithMasterA();
  assert.equal(adminSync(w, { kind: 'maintenance', on: true }, 'A'), 'ok');
  w.runFor(300);
  partition(w, ['A'], ['B', 'C']);
  assert.ok(w.runUntilTrue(() => leaderOf(w) !== null && leaderOf(w) !== 'A', 3000), 'new leader');
  const l = leaderOf(w)!;
  assert.equal(adminSync(w, { kind: 'maintenance', on: false }, l), 'ok');
  w.runFor(4000);
  assert.ok(w.core(l)!.state.frozenHolders.includes('A'), 'A is a frozen holder');
  assert.equal(w.core(l)!.state.master === null || w.core(l)!.state.master === 'A', true, 'nobody else promoted');
  partition(w, ['A'], ['B', 'C'], false);
  assert.ok(w.runUntilTrue(() => settled(w), 8000), 'one master again');
  assertNoViolations(w);
});

// ---------------------------------------------------------------------------
// W6 (found by the 200 000-seed sweep, seeds 22367 and 137227). The master B
// freezes; the leader revokes it and, after the timing bound, designates C.
// Maintenance goes on while B is still frozen: the leader rightly does not
// count B as a holder. B thaws: its lease is long gone, its demote is killed
// at once (its time ran out during the freeze) and fails — but B had learned
// of maintenance from the queued heartbeats, and maintenance stopped every
// script, so its failure sequence (failed, stop) waited for maintenance off.
// At maintenance off the leader grants C straight away: two masters. A runner
// already letting go must finish letting go before maintenance holds it.
// ---------------------------------------------------------------------------
function thawIntoMaintenance(): World {
  const w = cluster({
    nodes: [
      { name: 'A', priority: 4, runner: false },
      { name: 'D', priority: 3, runner: false },
      { name: 'B', priority: 2, elector: false },
      { name: 'C', priority: 1, elector: false },
    ],
  });
  assert.ok(w.runUntilTrue(() => settled(w), 3000), 'settled');
  if (masterOf(w) !== 'B') promoteWhenReady(w, 'B', 'A');
  assert.ok(w.runUntilTrue(() => masterOf(w) === 'B' && settled(w), 3000), 'B master');
  w.freeze('B');
  assert.ok(w.runUntilTrue(() => masterOf(w) === 'C' && w.checker.holders().includes('C'), 6000), 'C master after B froze');
  // C's machine goes down; maintenance goes on; C boots again: it stays
  // designated (a maintenance holder until it answers), holding nothing.
  w.crash('C');
  assert.equal(adminSync(w, { kind: 'maintenance', on: true }, 'A'), 'ok');
  w.runFor(300);
  w.restart('C');
  w.runFor(1500);
  w.thaw('B');
  w.runFor(1500);
  assert.equal(adminSync(w, { kind: 'maintenance', on: false }, 'A'), 'ok');
  w.runFor(3000);
  debug(w, 'W6');
  return w;
}

test('W6: a master that thaws into maintenance after its lease finishes letting go before maintenance holds it', () => {
  const w = thawIntoMaintenance();
  assertNoViolations(w);
  assert.ok(w.runUntilTrue(() => settled(w), 5000), 'one master again');
});

test('W6, rule removed: a runner that enters maintenance while letting go is caught', () => {
  const proto = Runner.prototype as unknown as { tick(this: Record<string, unknown>, ...a: unknown[]): void };
  const tick = proto.tick;
  proto.tick = function (this: Record<string, unknown>, ...a: unknown[]) {
    if (this.maintenancePending === true) {
      this.maintenancePending = false;
      this.maintenance = true;
    }
    tick.apply(this, a);
  };
  try {
    const w = thawIntoMaintenance();
    assert.ok(w.checker.violations.some((v) => v.kind === 'two-masters'), 'two masters without the rule');
  } finally {
    proto.tick = tick;
  }
});
