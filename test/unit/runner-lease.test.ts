// The runner's side of "confirmed free": once an ack said it holds nothing,
// it may start holding again only on a grant from a later heartbeat, even
// while an older lease still runs (the leader may already have designated
// another runner on the strength of that ack).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Runner, type LeaderView, type RunnerOutput } from '../../src/core/runner';
import { initialClusterState } from '../../src/core/state';
import { simParams } from '../sim/run-seed';

function harness() {
  let runId = 0;
  const runner = new Runner('n2', simParams(), [{ name: 'db', priority: 10 }], 1, () => ++runId, 0, false);
  const state = initialClusterState();
  let nowMs = 0;
  /** Tick, finish every script it asked for with `exit`, and return their events. */
  const step = (exit = 0): string[] => {
    const out: RunnerOutput = { runs: [], signals: [], events: [] };
    runner.tick(nowMs, out);
    for (const r of out.runs) runner.scriptDone(nowMs, r.runId, exit, null, [], 1, out);
    return out.runs.map((r) => r.event);
  };
  const heartbeat = (seq: number, master: string, grant: boolean) => {
    const hb: LeaderView = { epoch: 1, seq, master, masterEpoch: 1, grant: grant ? { echoMs: nowMs, incarnation: 1 } : null };
    runner.onHeartbeat(nowMs, hb, state, true);
  };
  return { runner, step, heartbeat, advance: (ms: number) => (nowMs += ms) };
}

test('a runner that reported itself free promotes again only on a newer grant', () => {
  const h = harness();
  assert.deepEqual(h.step(92), ['status'], 'boot: status first');
  assert.deepEqual(h.step(), ['start']);
  assert.deepEqual(h.step(), ['status'], 'asked at once after its start: promotable only then');
  h.heartbeat(1, 'n2', true);
  assert.deepEqual(h.step(), ['promote'], 'designated and granted: promote');
  h.advance(10);
  h.heartbeat(2, 'n3', false);
  assert.deepEqual(h.step(), ['demote'], 'revoked: demote');
  // The ack for heartbeat 3 tells the leader we hold nothing.
  h.heartbeat(3, 'n3', false);
  assert.equal(h.runner.report(0).holding, false);
  h.runner.reportedFree(3);
  h.advance(10);
  // Designated again, and the lease of heartbeat 1 has not run out yet.
  h.heartbeat(4, 'n2', false);
  assert.deepEqual(h.step(), [], 'no promote on the old lease');
  h.heartbeat(5, 'n2', true);
  assert.deepEqual(h.step(), ['promote'], 'a grant after the report: promote');
});

test('a grant in the heartbeat whose ack reports free still counts', () => {
  // The leader compares report and grant sequence numbers strictly: the ack
  // for heartbeat K does not free a runner granted in heartbeat K.
  const h = harness();
  h.step(92);
  h.step();
  h.step(); // the status after the start
  h.heartbeat(7, 'n2', true);
  h.runner.reportedFree(7);
  assert.deepEqual(h.step(), ['promote']);
});

/** One runner with one service, driven by hand: tick, finish what it ran, move the clock. */
function manual() {
  let runId = 0;
  const p = simParams();
  const runner = new Runner('n2', p, [{ name: 'db', priority: 10 }], 1, () => ++runId, 0, false);
  const h = {
    runner,
    p,
    state: initialClusterState(),
    now: 0,
    tick: (): RunnerOutput => {
      const out: RunnerOutput = { runs: [], signals: [], events: [] };
      runner.tick(h.now, out);
      return out;
    },
    finishAll: (out: RunnerOutput, exit: number): void => {
      for (const r of out.runs) runner.scriptDone(h.now, r.runId, exit, null, [], 1, out);
    },
  };
  return h;
}

for (const event of ['status', 'promote'] as const) {
  test(`a ${event} running when the lease runs out is cut short, and the runner demotes instead of failing`, () => {
    const h = manual();
    const { runner, p, state, tick, finishAll } = h;
    finishAll(tick(), 92); // boot status: stopped
    finishAll(tick(), 0); // start
    finishAll(tick(), 0); // the status after it
    runner.onHeartbeat(h.now, { epoch: 1, seq: 1, master: 'n2', masterEpoch: 1, grant: { echoMs: h.now, incarnation: 1 } }, state, true);
    let running = tick();
    if (event === 'status') {
      finishAll(running, 0); // promote
      h.now += p.statusIntervalMs; // a routine status is due; the leader renews the lease
      runner.onHeartbeat(h.now, { epoch: 1, seq: 2, master: 'n2', masterEpoch: 1, grant: { echoMs: h.now, incarnation: 1 } }, state, true);
      running = tick();
    }
    assert.deepEqual(running.runs.map((r) => r.event), [event]);
    // No renewal: the lease runs out while the script hangs.
    h.now += p.masterLeaseMs + 1;
    const cut = tick();
    assert.ok(cut.signals.some((s) => s.signal === 'SIGTERM'), 'the hanging script is told to stop');
    const out: RunnerOutput = { runs: [], signals: [], events: [] };
    runner.scriptDone(h.now, running.runs[0]!.runId, null, 'SIGTERM', [], 1, out);
    const r = runner.report(h.now);
    assert.equal(r.failed, false, 'not a service failure');
    assert.equal(r.pendingFailures.length, 0);
    assert.equal(r.holding, true, 'still holding until the demote');
    assert.deepEqual(tick().runs.map((x) => x.event), ['demote'], 'the urgent demote follows');
  });
}

for (const [why, event] of [['koi stop', 'start'], ['koi stop', 'status'], ['shutdown', 'start']] as const) {
  test(`${why} while a ${event} hangs: the ${event} is stopped at once, stop runs, and the runner ends stopped, not failed`, () => {
    const h = manual();
    const { runner, p, state, tick, finishAll } = h;
    finishAll(tick(), 92); // boot status: stopped
    let hanging = tick();
    if (event === 'status') {
      finishAll(hanging, 0); // start
      h.now += p.statusIntervalMs;
      hanging = tick();
    }
    assert.deepEqual(hanging.runs.map((r) => r.event), [event], `a ${event} is running`);
    h.now += 10;
    if (why === 'koi stop') runner.onHeartbeat(h.now, { epoch: 1, seq: 1, master: null, masterEpoch: 1, grant: null }, { ...state, stopped: ['n2'] }, true);
    else runner.shutDown();
    const cut = tick();
    assert.deepEqual(cut.signals.map((s) => s.signal), ['SIGTERM'], `the ${event} is told to stop at once, not at its time limit`);
    h.now += 10;
    const out: RunnerOutput = { runs: [], signals: [], events: [] };
    runner.scriptDone(h.now, hanging.runs[0]!.runId, null, 'SIGTERM', [], 1, out);
    const next = tick();
    assert.deepEqual(next.runs.map((r) => r.event), ['stop'], 'then stop runs');
    finishAll(next, 0);
    const r = runner.report(h.now);
    assert.equal(r.failed, false, 'not failed');
    assert.equal(r.failcount, 0);
    assert.equal(r.state, 'stopped');
  });
}

test('a designation is dropped before any promote when a service says 93 after the leader chose the runner', () => {
  let runId = 0;
  const runner = new Runner('n2', simParams(), [{ name: 'vip', priority: 10 }, { name: 'db', priority: 20 }], 1, () => ++runId, 0, false);
  const state = initialClusterState();
  const ran: string[] = [];
  const step = (answer: (r: { service: string; event: string }) => number) => {
    const out: RunnerOutput = { runs: [], signals: [], events: [] };
    runner.tick(0, out);
    for (const r of out.runs) {
      ran.push(`${r.service}:${r.event}`);
      runner.scriptDone(0, r.runId, answer(r), null, [], 1, out);
    }
  };
  step(() => 92); // boot: both down
  step(() => 0); // start vip
  step(() => 0); // vip's status, start db
  step((r) => (r.service === 'db' && r.event === 'status' ? 93 : 0)); // db: live but not promotable
  assert.equal(runner.report(0).promotable, false);
  ran.length = 0;
  // The leader's designation (made on an older report) arrives now.
  runner.onHeartbeat(0, { epoch: 1, seq: 1, master: 'n2', masterEpoch: 1, grant: { echoMs: 0, incarnation: 1 } }, state, true);
  step(() => 0);
  assert.deepEqual(ran.filter((x) => x.endsWith(':promote')), [], 'not even vip is promoted');
  assert.equal(runner.report(0).holding, false);
});
