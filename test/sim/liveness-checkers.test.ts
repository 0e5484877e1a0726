// The liveness checkers of the simulator, shown failing where they must: a
// master that never gets promoted is reported stuck, a leader change that no
// fault explains is reported as a flap; and the same worlds without the
// defect pass, so a checker that fires on everything would fail here too.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { findFlaps, flapWindowMs, LivenessJudge } from './checker';
import { cluster, leaderOf, names, settled } from './kit';
import { connectedQuorum, leaderStatus, livenessOf, masterPromoted, runSeed, simParams, tooSlowFor, LIVENESS_CLASSES } from './run-seed';
import type { World } from './world';

/** Watch `w` for `ms` with a judge of bound `boundMs`; the stuck violations it found. */
function judge(w: World, boundMs: number, ms: number): LivenessJudge {
  const j = new LivenessJudge(boundMs, w.nowMs);
  w.runUntilTrue(() => {
    j.observe(w.nowMs, masterPromoted(w), () => 'every node is up and connected', () => leaderStatus(w));
    return false;
  }, ms);
  return j;
}

test('stuck: a master whose promote always fails is never fully promoted, and says what the leader saw', () => {
  const w = cluster({ nodes: names(3) });
  w.decide = (_node, req) => (req.event === 'promote' ? { exitCode: 1 } : undefined);
  const j = judge(w, 3000, 8000);
  assert.equal(j.stuck.length, 1, 'one stuck stretch, reported once');
  const v = j.stuck[0]!;
  assert.equal(v.kind, 'stuck');
  assert.match(v.text, /no master fully promoted for \d+ms \(bound 3000ms\) although every node is up and connected; leader n1 \(epoch \d+\) says master/);
  assert.ok(j.noMasterMs > 7000);
});

test('stuck: the same cluster with working scripts gets its master within the bound', () => {
  const w = cluster({ nodes: names(3) });
  const j = judge(w, 3000, 8000);
  assert.deepEqual(j.stuck, []);
  assert.ok(masterPromoted(w));
});

test('stuck: no violation while the kept faults leave no master possible', () => {
  const w = cluster({ nodes: names(3) });
  w.decide = (_node, req) => (req.event === 'promote' ? { exitCode: 1 } : undefined);
  const j = new LivenessJudge(3000, w.nowMs);
  w.runUntilTrue(() => {
    j.observe(w.nowMs, masterPromoted(w), () => null, () => leaderStatus(w));
    return false;
  }, 8000);
  assert.deepEqual(j.stuck, []);
  assert.equal(j.episodes, 0);
});

test('stuck: koi confirm-down by the operator restarts the bound', () => {
  const j = new LivenessJudge(1000, 0);
  j.observe(500, false, () => 'possible', () => 'status');
  j.operatorActed(900);
  j.observe(1800, false, () => 'possible', () => 'status');
  assert.equal(j.stuck.length, 0, 'within the bound of the operator action');
  j.observe(1950, false, () => 'possible', () => 'status');
  assert.equal(j.stuck.length, 1);
});

test('flap: a leader change with no fault before it is a flap; the same change after a recorded fault is not', () => {
  for (const recorded of [false, true]) {
    const w = cluster({ nodes: names(3) });
    assert.ok(w.runUntilTrue(() => settled(w), 3000));
    w.runFor(flapWindowMs(w.params) + 500);
    const before = leaderOf(w)!;
    // The leader loses both voters, by hand: the world is not told unless `recorded`.
    for (const n of ['n2', 'n3']) w.link(before, n).cut = true;
    if (recorded) w.disturb(`cut ${before} from its voters`);
    assert.ok(w.runUntilTrue(() => w.events.some((e) => e.ev.kind === 'stepped-down' && e.node === before), 3000), 'the leader stepped down');
    const flaps = findFlaps(w.events, w.disturbances, flapWindowMs(w.params));
    if (recorded) {
      assert.deepEqual(flaps, []);
    } else {
      assert.ok(flaps.length >= 1, 'reported as a flap');
      assert.match(flaps[0]!.what, new RegExp(`^${before} stepped down`));
      assert.equal(flaps[0]!.lastChange?.what, 'n3 boots', 'the last change from outside was the boot');
    }
  }
});

test('flap: a lasting fault explains changes until it ends, and a window after', () => {
  const ev = (atMs: number) => ({ atMs, node: 'n1', ev: { kind: 'master-revoked' as const, epoch: 1, master: 'n2', reason: 'unreachable' } });
  const lasting = [{ atMs: 0, what: 'loss', untilMs: 10_000 }];
  assert.deepEqual(findFlaps([ev(9000), ev(11_000)], lasting, 1500), []);
  assert.equal(findFlaps([ev(12_000)], lasting, 1500).length, 1);
  // A status saying "not promotable" explains a master change, not a leader change.
  const status = [{ atMs: 5000, what: 'n2 s0 status: not promotable', masterOnly: true }];
  assert.deepEqual(findFlaps([ev(5500)], status, 1500), []);
  const stepped = { atMs: 5500, node: 'n1', ev: { kind: 'stepped-down' as const, epoch: 1, reason: 'x' } };
  assert.equal(findFlaps([stepped], status, 1500).length, 1);
});

test('slow network: what the timings tolerate', () => {
  const defaults = simParams({ heartbeatIntervalMs: 200, leaderTimeoutMs: 1000, masterLeaseMs: 1500 });
  assert.equal(tooSlowFor(defaults, 300), null, '600ms round trip + 200ms heartbeat fit in 1s');
  assert.match(tooSlowFor(defaults, 400) ?? '', /round trip 800ms > \(leader_timeout - heartbeat\) \/ 1.25 = 640ms/);
  assert.equal(tooSlowFor(defaults, 320), null, '640ms is the documented limit at the defaults');
  assert.match(tooSlowFor(defaults, 321) ?? '', /642ms > /);
  assert.match(tooSlowFor({ ...defaults, masterLeaseMs: 900 }, 300) ?? '', /master_lease/);
});

test('connected quorum: a cut that leaves no two electors talking both ways leaves no master owed', () => {
  const w = cluster({ nodes: names(3), params: { quorum: 2 } });
  const peers = [...w.nodes.values()].map((n) => n.peer);
  assert.match(connectedQuorum(w, peers, 2, new Set()) ?? '', /^electors n1,n2 \(quorum 2\) and runner n1/);
  w.link('n1', 'n2').cut = true;
  w.link('n3', 'n1').cut = true;
  assert.match(connectedQuorum(w, peers, 2, new Set()) ?? '', /^electors n2,n3/);
  assert.equal(connectedQuorum(w, peers, 2, new Set(['n3'])), null, 'n1 and n2 cut one way, n3 dead');
});

test('liveness seeds replay exactly, and an ordinary sweep draws every class', () => {
  for (const cls of LIVENESS_CLASSES) {
    const a = runSeed(7, { liveness: cls, durationMs: 12_000 });
    const b = runSeed(7, { liveness: cls, durationMs: 12_000 });
    assert.equal(a.liveness?.cls, cls);
    assert.deepEqual(b.trace, a.trace, `${cls} replays`);
    assert.deepEqual(b.violations, a.violations);
  }
  const drawn = new Map<string, number>();
  for (let seed = 1; seed <= 500; seed++) {
    const c = livenessOf(seed, undefined) ?? 'none';
    drawn.set(c, (drawn.get(c) ?? 0) + 1);
    // The class drawn by default is the one --liveness all gives that seed.
    if (c !== 'none') assert.equal(livenessOf(seed, 'all'), c);
  }
  for (const cls of LIVENESS_CLASSES) assert.ok((drawn.get(cls) ?? 0) > 5, `${cls} drawn by default`);
  assert.ok((drawn.get('none') ?? 0) > 350, 'most seeds stay ordinary');
});
