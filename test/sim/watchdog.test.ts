// Watchdog self-fencing in the simulator: a holder whose koinode freezes is
// reset by its watchdog before any leader frees the role by timing, so with
// an armed watchdog no overlap is excused. The keepalive rule is removed in
// the last test, and the simulator must see two masters.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assertNoViolations, cluster, masterOf, names, partition, settled } from './kit';
import type { World } from './world';
import { Runner, watchdogTimeoutMs } from '../../src/core/runner';
import { simParams } from './run-seed';

// The simulator's timings are scaled down: its devices take tenths of a second.
const T = watchdogTimeoutMs(simParams(), 100)!;

function threeWithWatchdogs(): World {
  const w = cluster({ nodes: names(3), watchdogMs: T });
  assert.ok(w.runUntilTrue(() => settled(w) && masterOf(w) !== null, 5000), 'settled');
  return w;
}

test('the timeout: half of lease + demote − margin, in whole steps', () => {
  assert.equal(T, 600);
  // The defaults: 1.5 s + 5 s − 0.4 s.
  assert.equal(watchdogTimeoutMs({ masterLeaseMs: 1500, demoteTimeoutMs: 5000, safetyMarginMs: 400 }), 3000);
  assert.equal(watchdogTimeoutMs({ masterLeaseMs: 1000, demoteTimeoutMs: 1000, safetyMarginMs: 400 }), null);
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
  assert.equal(w.watchdogResets, 0, 'a healthy cluster is never reset');
  assertNoViolations(w);
});

/**
 * The master is cut off, its demote hangs, and its koinode freezes just
 * before its hold deadline: only a keepalive that stopped in time makes the
 * machine reset before the new leader frees the role.
 */
function cutOffHangingThenFrozen(feedAlways: boolean): World {
  const restore = Runner.prototype.watchdogDemand;
  if (feedAlways) {
    Runner.prototype.watchdogDemand = function (this: Runner, nowMs: number, timeoutMs: number) {
      const d = restore.call(this, nowMs, timeoutMs);
      return d === 'starve' ? 'feed' : d;
    };
  }
  try {
    const w = threeWithWatchdogs();
    const m = masterOf(w)!;
    const rest = ['n1', 'n2', 'n3'].filter((n) => n !== m);
    w.decide = (node, req) => (node === m && req.event === 'demote' ? { exitCode: 'hang' } : undefined);
    const t0 = w.nowMs;
    partition(w, [m], rest);
    // Lease 800 ms, demote 600 ms: the hold deadline is about t0 + 1400.
    w.runUntil(t0 + 1300);
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
