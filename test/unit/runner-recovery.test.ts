// What a failed runner reports about its next recovery (issue 18, point 5):
// the countdown must be the wait the runner then really keeps, through the
// doubling backoff, its 10-minute cap and an exhausted failure count.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Runner, type RunnerOutput } from '../../src/core/runner';
import type { CoreParams } from '../../src/core/types';
import { simParams } from '../sim/run-seed';

const STEP_MS = 10;

function harness(over: Partial<CoreParams>) {
  let runId = 0;
  const runner = new Runner('n3', simParams(over), [{ name: 'db', priority: 10 }], 1, () => ++runId, 0, false);
  let nowMs = 0;
  let booting = true;
  /** Tick, finish every script it asked for (with `exit` for a start, 92 for the boot status, else 0), and return the events. */
  const step = (exit = 0): string[] => {
    const out: RunnerOutput = { runs: [], signals: [], events: [] };
    runner.tick(nowMs, out);
    for (const r of out.runs) runner.scriptDone(nowMs, r.runId, r.event === 'start' ? exit : r.event === 'status' && booting ? 92 : 0, null, [], 1, out);
    booting = false;
    return out.events.map((e) => e.kind);
  };
  /** Boot, then let the next start fail and its failure sequence (failed, stop) finish. */
  const bootAndFail = () => {
    step();
    assert.ok(step(1).includes('runner-failed'), 'the start failed');
    settle();
  };
  const settle = () => {
    for (let i = 0; i < 10; i++) step();
    assert.equal(runner.report(nowMs).failed, true);
  };
  /** Advance in small steps until the runner recovers; returns how long that took. */
  const waitForRecovery = (limitMs: number): number => {
    const fromMs = nowMs;
    while (nowMs - fromMs <= limitMs) {
      nowMs += STEP_MS;
      if (step(1).includes('runner-recovered')) return nowMs - fromMs;
    }
    return Infinity;
  };
  return { runner, step, bootAndFail, settle, waitForRecovery, now: () => nowMs, advance: (ms: number) => (nowMs += ms) };
}

test('a runner that is not failed reports no recovery', () => {
  const h = harness({});
  h.step();
  h.step();
  const r = h.runner.report(h.now());
  assert.equal(r.failed, false);
  assert.equal(r.nextRecoveryInMs, null);
  assert.equal(r.recoveryWaitReason, null);
});

test('the reported countdown is the doubling wait the runner keeps, then the failcount_reset wait once exhausted', () => {
  const h = harness({ autoRecover: 3, autoRecoverWaitMs: 1000, failcountResetMs: 60_000 });
  h.bootAndFail();
  const predicted: number[] = [];
  const actual: number[] = [];
  for (let attempt = 1; attempt <= 3; attempt++) {
    const r = h.runner.report(h.now());
    assert.equal(r.failcount, attempt);
    assert.match(r.recoveryWaitReason!, new RegExp(`^automatic recovery ${attempt} of 3 \\(backoff 1\\.0s doubling per failure, at most 10m\\), or koi recover n3 now$`));
    predicted.push(r.nextRecoveryInMs!);
    // Half-way, the countdown has moved on by as much.
    h.advance(r.nextRecoveryInMs! / 2);
    assert.equal(h.runner.report(h.now()).nextRecoveryInMs, r.nextRecoveryInMs! / 2);
    actual.push(h.waitForRecovery(10_000) + r.nextRecoveryInMs! / 2);
    h.settle(); // the start it recovered into failed again
  }
  assert.deepEqual(predicted, [1000, 2000, 4000], 'the wait doubles per failure');
  // Each recovery came within one step of its countdown.
  predicted.forEach((p, i) => assert.ok(actual[i]! >= p && actual[i]! <= p + STEP_MS, `attempt ${i + 1}: predicted ${p}, recovered after ${actual[i]}`));

  // Four failures, three automatic recoveries used: only the expiry of the count helps now.
  const r = h.runner.report(h.now());
  assert.equal(r.failcount, 4);
  assert.match(r.recoveryWaitReason!, /^failure count exhausted \(4 failures, auto_recover = 3\): tried again 1\.0s after failcount_reset \(1m\) has passed since the last failure, or koi recover n3$/);
  const sinceFailureMs = r.lastFailureAgoMs!;
  assert.equal(r.nextRecoveryInMs, 60_000 - sinceFailureMs + 1000);
  const waited = h.waitForRecovery(120_000);
  assert.ok(waited >= r.nextRecoveryInMs! && waited <= r.nextRecoveryInMs! + 2 * STEP_MS, `predicted ${r.nextRecoveryInMs}, recovered after ${waited}`);
});

test('the countdown stops doubling at 10 minutes', () => {
  const h = harness({ autoRecover: 5, autoRecoverWaitMs: 200_000, failcountResetMs: 3_600_000 });
  h.bootAndFail();
  const waits: number[] = [];
  for (let i = 0; i < 3; i++) {
    const r = h.runner.report(h.now());
    waits.push(r.nextRecoveryInMs!);
    const waited = h.waitForRecovery(700_000);
    assert.ok(waited >= r.nextRecoveryInMs! && waited <= r.nextRecoveryInMs! + STEP_MS, `predicted ${r.nextRecoveryInMs}, recovered after ${waited}`);
    h.settle();
  }
  assert.deepEqual(waits, [200_000, 400_000, 600_000]);
  assert.match(h.runner.report(h.now()).recoveryWaitReason!, /automatic recovery 4 of 5 \(backoff 200s doubling per failure, at most 10m\)/);
});

test('without automatic recovery, or while its services stop, no try is scheduled and the reason says what frees it', () => {
  const off = harness({ autoRecover: 0 });
  off.bootAndFail();
  const r = off.runner.report(off.now());
  assert.equal(r.nextRecoveryInMs, null);
  assert.equal(r.recoveryWaitReason, 'automatic recovery is off (auto_recover = 0): koi recover n3');

  const h = harness({ autoRecover: 3, autoRecoverWaitMs: 1000 });
  h.step();
  h.step(1); // the start failed; its failed and stop scripts have not run yet
  const stopping = h.runner.report(h.now());
  assert.equal(stopping.failed, true);
  assert.equal(stopping.nextRecoveryInMs, null);
  assert.match(stopping.recoveryWaitReason!, /^its services are still stopping; then automatic recovery 1 of 3 after 1\.0s/);
});

test('the failure count counts runner failures: two services failing in one incident, and the stop that fails after, count once', () => {
  let runId = 0;
  const runner = new Runner('n3', simParams(), [{ name: 'db', priority: 10 }, { name: 'web', priority: 10 }], 1, () => ++runId, 0, false);
  let booting = true;
  const step = (exitOf: (event: string) => number) => {
    const out: RunnerOutput = { runs: [], signals: [], events: [] };
    runner.tick(0, out);
    for (const r of out.runs) runner.scriptDone(0, r.runId, r.event === 'status' && booting ? 92 : exitOf(r.event), null, [], 1, out);
    booting = false;
    return out.runs.map((r) => `${r.service}/${r.event}`);
  };
  step(() => 0); // boot status
  const started = step((e) => (e === 'start' ? 1 : 0));
  assert.deepEqual(started.sort(), ['db/start', 'web/start'], 'both start together (same priority) and both fail');
  for (let i = 0; i < 10; i++) step((e) => (e === 'stop' ? 1 : 0)); // failed, then stops that fail too
  const r = runner.report(0);
  assert.equal(r.failed, true);
  assert.ok(r.pendingFailures.length >= 2, `every failed script is recorded: ${r.pendingFailures.map((f) => `${f.service}/${f.event}`).join(' ')}`);
  assert.equal(r.failcount, 1, 'one incident');
});
