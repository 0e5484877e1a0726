// Watchdog self-fencing in the simulator: a holder whose koinode freezes is
// reset by its watchdog before any leader frees the role by timing, so with
// an armed watchdog no overlap is excused. The keepalive rule is removed in
// the last test, and the simulator must see two masters.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { adminSync, assertNoViolations, cluster, masterOf, names, partition, settled } from './kit';
import type { World } from './world';
import { Runner, watchdogTimeoutMs } from '../../src/core/runner';
import { simParams } from './run-seed';

// The simulator's timings are scaled down: its devices take tenths of a second.
const T = watchdogTimeoutMs(simParams(), 100)!;

/** Long timings for the scenarios that race a reset against a leader's wait: T = 1.4 s. */
const LONG = { masterLeaseMs: 3000, demoteTimeoutMs: 3000 };

function threeWithWatchdogs(params: Partial<typeof LONG> = {}): World {
  const w = cluster({ nodes: names(3), watchdogMs: watchdogTimeoutMs(simParams(params), 100)!, params });
  assert.ok(w.runUntilTrue(() => settled(w) && masterOf(w) !== null, 5000), 'settled');
  return w;
}

test('the timeout: a third of lease + demote − margin, at most half of demote − margin, in whole steps', () => {
  assert.equal(T, 200);
  // The defaults: 1.5 s + 5 s − 0.35 s.
  assert.equal(watchdogTimeoutMs({ masterLeaseMs: 1500, demoteTimeoutMs: 5000, safetyMarginMs: 350 }), 2000);
  // A long lease and a short demote: the demote bound decides.
  assert.equal(watchdogTimeoutMs({ masterLeaseMs: 10_000, demoteTimeoutMs: 2000, safetyMarginMs: 350 }), null);
  assert.equal(watchdogTimeoutMs({ masterLeaseMs: 10_000, demoteTimeoutMs: 3000, safetyMarginMs: 350 }), 1000);
  assert.equal(watchdogTimeoutMs({ masterLeaseMs: 1000, demoteTimeoutMs: 1000, safetyMarginMs: 350 }), null);
});

test('a frozen master with an armed watchdog is reset before another runner promotes: nothing excused', () => {
  const w = threeWithWatchdogs();
  const m = masterOf(w)!;
  assert.ok(w.trace.some((l) => l.includes(`${m} arms its watchdog`)), 'armed before promote');
  w.freeze(m);
  const other = () => masterOf(w) !== null && masterOf(w) !== m && settled(w);
  assert.ok(w.runUntilTrue(other, 15_000), 'a new master');
  assertNoViolations(w);
  assert.equal(w.watchdogResets, 1);
  assert.deepEqual(w.checker.excusedByCause, { 'frozen-no-fence': 0, 'frozen-fence-failed': 0, 'stop-failed': 0 });
});

test('a slave never arms; a master that hands over disarms', () => {
  const w = threeWithWatchdogs();
  const m = masterOf(w)!;
  const others = ['n1', 'n2', 'n3'].filter((n) => n !== m);
  for (const o of others) assert.ok(!w.trace.some((l) => l.includes(`${o} arms its watchdog`)), `${o} armed as a slave`);
  w.admin({ kind: 'promote', node: others[0]! });
  assert.ok(w.runUntilTrue(() => masterOf(w) === others[0] && settled(w), 5000), 'switched over');
  assert.ok(w.trace.some((l) => l.includes(`${m} disarms its watchdog`)), 'the old master disarmed');
  w.runFor(3000);
  // And it can arm again when it is made master again.
  w.admin({ kind: 'promote', node: m });
  assert.ok(w.runUntilTrue(() => masterOf(w) === m && settled(w), 5000), 'switched back');
  assert.equal(w.watchdogResets, 0, 'a healthy cluster is never reset');
  assertNoViolations(w);
});

/**
 * The master is cut off, its demote hangs, and its koinode freezes just
 * before its hold deadline: only a keepalive that stopped in time makes the
 * machine reset before the new leader frees the role.
 */
/** Keepalives only while now + `factor` × T ≤ the hold deadline − margin (the rule: 2). */
function withFeedFactor<R>(factor: number, body: () => R): R {
  const restore = Runner.prototype.watchdogDemand;
  Runner.prototype.watchdogDemand = function (this: Runner, nowMs: number, timeoutMs: number) {
    return restore.call(this, nowMs, (timeoutMs * factor) / 2);
  };
  try {
    return body();
  } finally {
    Runner.prototype.watchdogDemand = restore;
  }
}

function cutOffHangingThenFrozen(feedAlways: boolean): World {
  const restore = Runner.prototype.watchdogDemand;
  if (feedAlways) {
    Runner.prototype.watchdogDemand = function (this: Runner, nowMs: number, timeoutMs: number) {
      const d = restore.call(this, nowMs, timeoutMs);
      return d === 'starve' ? 'feed' : d;
    };
  }
  try {
    const w = threeWithWatchdogs(LONG);
    const m = masterOf(w)!;
    const rest = ['n1', 'n2', 'n3'].filter((n) => n !== m);
    w.decide = (node, req) => (node === m && req.event === 'demote' ? { exitCode: 'hang' } : undefined);
    const t0 = w.nowMs;
    partition(w, [m], rest);
    // Lease 3 s, demote 3 s: the hold deadline is about t0 + 6000.
    w.runUntil(t0 + 5800);
    w.freeze(m);
    w.runUntilTrue(() => masterOf(w) !== null && masterOf(w) !== m && settled(w), 10_000);
    w.runFor(2000);
    return w;
  } finally {
    Runner.prototype.watchdogDemand = restore;
  }
}

test('cut off, demote hanging, frozen near the deadline: the watchdog fired in time', () => {
  const w = cutOffHangingThenFrozen(false);
  assertNoViolations(w);
  assert.equal(w.watchdogResets, 1);
});

test('rule removed (keepalives go on until the deadline): the simulator sees two masters', () => {
  const w = cutOffHangingThenFrozen(true);
  assert.ok(w.checker.violations.some((v) => v.kind === 'two-masters'), `violations: ${JSON.stringify(w.checker.violations)}`);
});

/**
 * The master is cut off, its demote hangs, and its koinode is killed (kill
 * -9, not restarted) just before its starved watchdog would fire. Linux
 * pings a device closed without the magic character: the death is a
 * keepalive. Found by a review (kill9-close-ping).
 */
function cutOffThenKilled(w: World): World {
  const m = masterOf(w)!;
  const rest = ['n1', 'n2', 'n3'].filter((n) => n !== m);
  w.decide = (node, req) => (node === m && req.event === 'demote' ? { exitCode: 'hang' } : undefined);
  const t0 = w.nowMs;
  partition(w, [m], rest);
  const wd = () => w.nodes.get(m)!.wd!;
  // Past the lease end (keepalives have stopped), 10 ms before the device fires.
  w.runUntilTrue(() => w.nowMs > t0 + 3100 && w.nowMs >= wd().lastFeedMs + wd().timeoutMs - 10, 5000);
  w.killKoinode(m);
  w.runUntilTrue(() => masterOf(w) !== null && masterOf(w) !== m && settled(w), 10_000);
  w.runFor(2000);
  return w;
}

test('killed while starving its watchdog: the ping of its close still resets the machine in time', () => {
  const w = cutOffThenKilled(threeWithWatchdogs(LONG));
  assertNoViolations(w);
  assert.equal(w.watchdogResets, 1);
});

test('rule removed (keepalives until T, not 2T, before the deadline): the ping of the kill resets too late', () => {
  const w = withFeedFactor(1, () => cutOffThenKilled(threeWithWatchdogs(LONG)));
  assert.ok(w.checker.violations.some((v) => v.kind === 'two-masters'), `violations: ${JSON.stringify(w.checker.violations)}`);
});

/**
 * Three elector-only nodes, two runners. A leader (e1) appends "maintenance
 * on" and reaches only the runners before it loses its electors: never
 * committed. The master is then cut off from everyone, and e1 dies.
 */
function uncommittedMaintenanceOnCutOffMaster(demoteHangs: boolean): { w: World; m: string; all: string[] } {
  const all = ['e1', 'e2', 'e3', 'r1', 'r2'];
  const w = cluster({
    nodes: [
      { name: 'e1', priority: 9, runner: false },
      { name: 'e2', priority: 8, runner: false },
      { name: 'e3', priority: 7, runner: false },
      { name: 'r1', priority: 2, elector: false },
      { name: 'r2', priority: 1, elector: false },
    ],
    watchdogMs: 'own',
    params: LONG,
  });
  assert.ok(w.runUntilTrue(() => settled(w) && masterOf(w) !== null, 8000), 'settled');
  const m = masterOf(w)!;
  w.decide = (node, req) => (node === m && req.event === 'status' ? { exitCode: 0, ms: 10 } : node === m && req.event === 'demote' && demoteHangs ? { exitCode: 'hang' } : undefined);
  w.runUntilTrue(() => w.nodes.get(m)!.runs.size === 0, 2000);
  partition(w, ['e1'], ['e2', 'e3']);
  w.admin({ kind: 'maintenance', on: true }, 'e1');
  assert.ok(w.runUntilTrue(() => w.core(m)!.state.maintenance, 1000), 'the master has the uncommitted maintenance');
  partition(w, [m], all.filter((x) => x !== m));
  w.crash('e1');
  return { w, m, all };
}

/**
 * Maintenance ends while master `m` is cut off (it is in maintenance, so it
 * holds on); it heals, learns it within a status of 100 ms, and freezes.
 */
function endMaintenanceThenFreeze(w: World, m: string, rest: string[]): void {
  partition(w, [m], rest);
  w.runFor(3000);
  adminSync(w, { kind: 'maintenance', on: false }, rest.find((n) => w.core(n)!.isLeader()) ?? rest[0]!);
  w.runFor(1500);
  partition(w, [m], rest, false);
  w.decide = (node, req) => (node === m && req.event === 'status' ? { exitCode: 0, ms: 100 } : undefined);
  w.runUntilTrue(() => w.core(m)!.state.maintenance === false, 3000);
  w.runFor(5);
  w.freeze(m);
  w.runFor(5000);
}

/**
 * Maintenance on, the master cut off during it (it keeps feeding: no leader
 * frees a role by timing in maintenance), maintenance off, the master heals,
 * learns it, and freezes right after. Found by a review (maint-off-freeze):
 * with lease 2 s and demote 300 ms a timeout of half of lease + demote −
 * margin (1.1 s) outlived the demote bound that maintenance-off starts.
 */
const MAINT = { masterLeaseMs: 2000, demoteTimeoutMs: 600 };

function maintenanceOffThenFrozen(t: number): World {
  const w = cluster({ nodes: names(3), watchdogMs: t, params: MAINT });
  assert.ok(w.runUntilTrue(() => settled(w) && masterOf(w) !== null, 5000), 'settled');
  const m = masterOf(w)!;
  adminSync(w, { kind: 'maintenance', on: true });
  w.runFor(300);
  endMaintenanceThenFreeze(w, m, ['n1', 'n2', 'n3'].filter((n) => n !== m));
  return w;
}

test('maintenance off, then frozen: reset before the role is freed', () => {
  const w = maintenanceOffThenFrozen(watchdogTimeoutMs(simParams(MAINT), 100)!);
  assertNoViolations(w);
});

test('rule removed (in maintenance feed whatever T is, with T = half of lease + demote − margin): two masters after maintenance off', () => {
  const old = Math.floor((MAINT.masterLeaseMs + MAINT.demoteTimeoutMs - simParams().safetyMarginMs) / 2 / 100) * 100;
  const restore = Runner.prototype.watchdogDemand;
  Runner.prototype.watchdogDemand = function (this: Runner, nowMs: number, timeoutMs: number) {
    const d = restore.call(this, nowMs, timeoutMs);
    return d !== 'disarm' && this.inMaintenance() ? 'feed' : d;
  };
  try {
    const w = maintenanceOffThenFrozen(old);
    assert.ok(w.checker.violations.some((v) => v.kind === 'two-masters'), `violations: ${JSON.stringify(w.checker.violations)}`);
  } finally {
    Runner.prototype.watchdogDemand = restore;
  }
});

/**
 * In maintenance the operator shortens demote_timeout everywhere: the master
 * is reloaded (its device keeps the timeout it was armed with, now more than
 * the new demote allows), the other runner and the elector restarted. Then
 * the master is cut off, maintenance ends, it heals, learns it, and freezes.
 * Found by a review (a-reload).
 */
function reloadInMaintenance(feedFreely: boolean): World {
  const restore = Runner.prototype.watchdogDemand;
  if (feedFreely) {
    Runner.prototype.watchdogDemand = function (this: Runner, nowMs: number, timeoutMs: number) {
      const d = restore.call(this, nowMs, timeoutMs);
      return d !== 'disarm' && this.inMaintenance() ? 'feed' : d;
    };
  }
  try {
    const w = cluster({
      nodes: [
        { name: 'n1', priority: 9, runner: false },
        { name: 'n2', priority: 2 },
        { name: 'n3', priority: 1 },
      ],
      watchdogMs: 'own',
      params: { masterLeaseMs: 2000, demoteTimeoutMs: 3000 },
    });
    assert.ok(w.runUntilTrue(() => settled(w) && masterOf(w) !== null, 5000), 'settled');
    const m = masterOf(w)!;
    adminSync(w, { kind: 'maintenance', on: true });
    w.runFor(500);
    w.reload(m, { demoteTimeoutMs: 600 });
    for (const n of ['n1', 'n2', 'n3'].filter((x) => x !== m)) {
      w.crash(n);
      w.reload(n, { demoteTimeoutMs: 600 });
      w.runFor(200);
      w.restart(n);
      w.runFor(3000);
    }
    endMaintenanceThenFreeze(w, m, ['n1', 'n2', 'n3'].filter((n) => n !== m));
    return w;
  } finally {
    Runner.prototype.watchdogDemand = restore;
  }
}

test('a reload that shortens demote_timeout in maintenance: the old timeout is no longer fed freely, reset in time', () => {
  assertNoViolations(reloadInMaintenance(false));
});

test('rule removed (fed freely in maintenance whatever the timeout): two masters after the reload', () => {
  const w = reloadInMaintenance(true);
  assert.ok(w.checker.violations.some((v) => v.kind === 'two-masters'), `violations: ${JSON.stringify(w.checker.violations)}`);
});

/**
 * A leader appends "maintenance on" and reaches only the runners before it
 * loses its electors (never committed). The master, cut off, is killed and
 * started again: its saved state says maintenance. Found by a review
 * (c-uncommitted): the restarted runner took it as in force and fed its
 * watchdog freely while a new leader, without the maintenance, freed its
 * role by timing.
 */
function uncommittedMaintenanceThenKilled(trustSaved: boolean): World {
  const restore = Runner.prototype.inMaintenance;
  if (trustSaved) {
    Runner.prototype.inMaintenance = function (this: Runner) {
      return (this as unknown as { maintenance: boolean }).maintenance;
    };
  }
  try {
    const { w, m } = uncommittedMaintenanceOnCutOffMaster(false);
    w.runFor(200);
    w.killKoinode(m);
    w.runFor(300);
    w.restart(m);
    w.runFor(12_000);
    return w;
  } finally {
    Runner.prototype.inMaintenance = restore;
  }
}

test('maintenance in the saved state but never committed: not taken as in force after a restart, the watchdog resets in time', () => {
  const w = uncommittedMaintenanceThenKilled(false);
  assertNoViolations(w);
});

test('rule removed (saved maintenance trusted after a restart): two masters', () => {
  const w = uncommittedMaintenanceThenKilled(true);
  assert.ok(w.checker.violations.some((v) => v.kind === 'two-masters'), `violations: ${JSON.stringify(w.checker.violations)}`);
});

/**
 * The same never-committed maintenance; the master's demote hangs and its
 * koinode is killed while it lets go, started again, and later hears a new
 * leader (without the maintenance) say "maintenance off". Found by a third
 * review (maint-off-arm): that "off" started a lease nobody had granted, so
 * the new koinode armed (stopping its predecessor's countdown) and fed past
 * the instant the leader freed the role.
 */
function uncommittedMaintenanceOff(offStartsLease: boolean): World {
  const restore = Runner.prototype.onHeartbeat;
  if (offStartsLease) {
    // The removed rule: an unconfirmed maintenance counts as confirmed.
    Runner.prototype.onHeartbeat = function (this: Runner, ...args: Parameters<Runner['onHeartbeat']>) {
      (this as unknown as { maintenanceUnconfirmed: boolean }).maintenanceUnconfirmed = false;
      return restore.apply(this, args);
    };
  }
  try {
    const { w, m, all } = uncommittedMaintenanceOnCutOffMaster(true);
    w.runFor(4500);
    w.killKoinode(m);
    w.runFor(50);
    w.restart(m);
    // (Timed so that the restarted koinode hears the new leader's "off" while
    // its predecessor's watchdog still counts down: 1250 ms before services
    // were asked right after every start, 1100 ms since.)
    w.runFor(1100);
    partition(w, [m], all.filter((x) => x !== m && x !== 'e1'), false);
    w.runFor(60);
    w.freeze(m);
    w.runFor(12_000);
    return w;
  } finally {
    Runner.prototype.onHeartbeat = restore;
  }
}

test('"maintenance off" for a maintenance never committed starts no lease: the predecessor\'s watchdog still resets in time', () => {
  assertNoViolations(uncommittedMaintenanceOff(false));
});

test('rule removed (that "off" starts a lease): two masters', () => {
  const w = uncommittedMaintenanceOff(true);
  assert.ok(w.checker.violations.some((v) => v.kind === 'two-masters'), `violations: ${JSON.stringify(w.checker.violations)}`);
});
