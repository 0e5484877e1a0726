// Services folders that change while koinode runs (issue 17), on the
// simulator: a service added to the master is asked, started and promoted
// without moving the role; a removed one goes down and is forgotten, never
// while it may still hold the role or before its state is known. Each rule
// is removed once to show the simulator notices.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Runner } from '../../src/core/runner';
import type { ServiceRt } from '../../src/core/services';
import { adminSync, assertNoViolations, cluster, eventsOf, masterOf, names, promoteWhenReady, settled } from './kit';
import { report } from './report';
import { runSeed, type SeedResult } from './run-seed';

function describeFailures(rs: SeedResult[]): string {
  const lines: string[] = [];
  for (const r of rs.slice(0, 3)) report(r, (s) => lines.push(s));
  return lines.join('\n');
}

const VIP = { name: 'vip', priority: 10 };
const DB = { name: 'db', priority: 20 };

function runsOf(w: ReturnType<typeof cluster>, node: string, sinceMs: number): string[] {
  return w.runLog.filter((r) => r.node === node && r.atMs >= sinceMs && r.event !== 'status').map((r) => `${r.service}/${r.event}`);
}

test('a service added to the master is started and promoted in priority order; the role does not move', () => {
  const w = cluster({ nodes: names(3), services: [VIP, DB] });
  assert.ok(w.runUntilTrue(() => settled(w), 3000));
  const m = masterOf(w)!;
  const t0 = w.nowMs;
  w.setServices(m, [VIP, { name: 'cache', priority: 15 }, DB]);
  assert.ok(w.runUntilTrue(() => w.checker.level(m, 'cache') === 2 && w.checker.fullyPromoted(m), 3000), 'cache promoted');
  assert.deepEqual(runsOf(w, m, t0), ['cache/start', 'cache/promote'], 'nothing else ran');
  assert.equal(eventsOf(w, 'master-revoked', t0).length, 0);
  assert.equal(eventsOf(w, 'leader-elected', t0).length, 0);
  assert.equal(masterOf(w), m);
  assertNoViolations(w);
});

test('a service added everywhere is part of the next failover', () => {
  const w = cluster({ nodes: names(3), services: [DB] });
  assert.ok(w.runUntilTrue(() => settled(w), 3000));
  const m = masterOf(w)!;
  for (const n of ['n1', 'n2', 'n3']) w.setServices(n, [{ name: 'cache', priority: 5 }, DB]);
  w.runFor(1000);
  w.crash(m);
  assert.ok(w.runUntilTrue(() => masterOf(w) !== null && masterOf(w) !== m && w.checker.fullyPromoted(masterOf(w)!), 8000), 'a new master with both services');
  assert.equal(w.checker.level(masterOf(w)!, 'cache'), 2);
  assertNoViolations(w);
});

test('a service removed from the master is demoted and stopped, no failure, the role stays', () => {
  const w = cluster({ nodes: names(3), services: [VIP, DB] });
  assert.ok(w.runUntilTrue(() => settled(w), 3000));
  const m = masterOf(w)!;
  const t0 = w.nowMs;
  w.setServices(m, [VIP]);
  assert.ok(w.runUntilTrue(() => w.checker.level(m, 'db') === 0, 2000));
  w.runFor(2000);
  assert.deepEqual(runsOf(w, m, t0), ['db/demote', 'db/stop']);
  assert.equal(eventsOf(w, 'runner-failed', t0).length, 0);
  assert.equal(eventsOf(w, 'master-revoked', t0).length, 0);
  assert.deepEqual(w.core(m)!.runner!.services.map((s) => s.def.name), ['vip'], 'forgotten');
  assertNoViolations(w);
});

test('a removed service whose scripts are gone: no failure; it counts as held until the role has moved and the bound passed', () => {
  const w = cluster({ nodes: names(3), services: [VIP, DB] });
  assert.ok(w.runUntilTrue(() => settled(w), 3000));
  const m = masterOf(w)!;
  const t0 = w.nowMs;
  w.decide = (node, req) => (node === m && req.service === 'db' ? { exitCode: 127 } : undefined);
  w.setServices(m, [VIP]);
  w.runFor(1000);
  assert.equal(eventsOf(w, 'runner-failed', t0).length, 0);
  assert.equal(masterOf(w), m, 'the master keeps its role');
  // Moved by hand: the others wait for the bound (nothing proves db let go).
  const other = ['n1', 'n2', 'n3'].find((n) => n !== m)!;
  promoteWhenReady(w, other);
  assert.ok(w.runUntilTrue(() => masterOf(w) === other && settled(w), 8000), 'the role moved');
  assert.deepEqual(w.core(m)!.runner!.services.map((s) => s.def.name), ['vip'], 'db forgotten once the bound passed');
  // The checker excuses the overlap only as a failed stop; nothing else.
  assert.deepEqual(w.checker.violations, []);
});

/** Swap a private Runner method for a broken one while `fn` runs. */
function withBrokenRunner(method: 'forgetRemoved', broken: (this: Runner) => void, fn: () => void): void {
  const proto = Runner.prototype as unknown as Record<string, unknown>;
  const original = proto[method];
  proto[method] = broken;
  try {
    fn();
  } finally {
    proto[method] = original;
  }
}

function forgetWhen(keep: (s: ServiceRt) => boolean) {
  return function (this: Runner): void {
    const list = this.services;
    for (let i = list.length - 1; i >= 0; i--) if (list[i]!.removed && !keep(list[i]!)) list.splice(i, 1);
  };
}

test('rule removed: a runner that forgets a removed service while it may hold the role is caught (two masters)', () => {
  withBrokenRunner(
    'forgetRemoved',
    forgetWhen((s) => s.running !== null),
    () => {
      const w = cluster({ nodes: names(3), services: [VIP, DB] });
      assert.ok(w.runUntilTrue(() => settled(w), 3000));
      const m = masterOf(w)!;
      w.decide = (node, req) => (node === m && req.service === 'db' ? { exitCode: 127 } : undefined);
      w.setServices(m, [VIP]);
      w.runFor(500);
      promoteWhenReady(w, ['n1', 'n2', 'n3'].find((n) => n !== m)!);
      w.runFor(5000);
      assert.ok(w.checker.violations.some((v) => v.kind === 'two-masters'), `expected two masters: ${JSON.stringify(w.checker.violations)}`);
    },
  );
});

test('seeds that once found a hole with services folders changing stay clean', () => {
  // Found by the first folder-change generator (only an added service
  // coming and going): 2522, a removed service found possibly promoted at
  // boot was forgotten before its check (now a scenario above); 1936, 4049,
  // 5594, a removed service whose demote failed was released before its
  // stop ran. The generator draws more kinds of change now, so these seeds
  // replay other runs: they stay as runs that must be clean.
  for (const seed of [2522, 1936, 4049, 5594]) {
    const r = runSeed(seed, { rescans: true });
    assert.equal(r.violations.length, 0, describeFailures([r]));
  }
});

/**
 * A master's koinode is killed in maintenance and comes back (every service
 * counts as possibly promoted, its check waits for maintenance to end); db
 * leaves the folder meanwhile. Then maintenance ends and the role moves.
 */
function removedBeforeItsCheck(): ReturnType<typeof cluster> {
  const w = cluster({ nodes: names(3), services: [VIP, DB] });
  assert.ok(w.runUntilTrue(() => settled(w), 3000));
  const m = masterOf(w)!;
  assert.equal(adminSync(w, { kind: 'maintenance', on: true }), 'ok');
  w.runFor(300);
  w.killKoinode(m);
  w.runFor(100);
  w.restart(m);
  w.runFor(300);
  w.setServices(m, [VIP]);
  w.runFor(500);
  assert.equal(adminSync(w, { kind: 'maintenance', on: false }), 'ok');
  w.runFor(1500);
  promoteWhenReady(w, ['n1', 'n2', 'n3'].find((n) => n !== m)!);
  w.runFor(4000);
  return w;
}

test('a removed service whose state is not known yet (its check waits for maintenance) is demoted before the role moves', () => {
  const w = removedBeforeItsCheck();
  assertNoViolations(w);
  assert.ok(settled(w));
});

test('rule removed: forgetting a removed service before its first check ran is caught (two masters)', () => {
  withBrokenRunner(
    'forgetRemoved',
    forgetWhen((s) => s.running !== null || s.holding || s.failurePath !== 'none' || !(s.state === 'stopped' || s.state === 'failed')),
    () => {
      const w = removedBeforeItsCheck();
      assert.ok(w.checker.violations.some((v) => v.kind === 'two-masters'), `the simulator notices: ${JSON.stringify(w.checker.violations)}`);
    },
  );
});

test('simulator: 80 seeds with services folders changing keep every invariant', () => {
  const bad: SeedResult[] = [];
  for (let seed = 1; seed <= 80; seed++) {
    const r = runSeed(seed, { rescans: true, durationMs: 20_000 });
    if (r.violations.length > 0) bad.push(r);
  }
  assert.equal(bad.length, 0, describeFailures(bad));
});
