// The runner's side of a services-folder rescan (issue 17): a service added
// while koinode runs is asked, then brought to where the runner is in
// priority order without touching the others; a removed one goes down and
// is forgotten without failing the runner. Also maintenance freezing the
// scripts that run through it, and KOI_IS_PROMOTED while letting go.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Runner, type RunnerOutput } from '../../src/core/runner';
import { initialClusterState } from '../../src/core/state';
import type { ClusterState, RunRequest, ServiceDef } from '../../src/core/types';
import { simParams } from '../sim/run-seed';

const DB: ServiceDef = { name: 'db', priority: 10 };

/** Status says 92 until the service has been started, then 0; every other script succeeds. */
function downUntilStarted(): (r: RunRequest) => number {
  const started = new Set<string>();
  return (r) => {
    if (r.event === 'start') started.add(r.service);
    if (r.event === 'stop') started.delete(r.service);
    return r.event === 'status' && !started.has(r.service) ? 92 : 0;
  };
}
const WEB: ServiceDef = { name: 'web', priority: 20 };

/** A runner driven by hand: scripts answer what `answer` says (default 0; boot status 92). */
function harness(defs: ServiceDef[]) {
  let runId = 0;
  const runner = new Runner('n2', simParams(), defs, 1, () => ++runId, 0, false);
  let seq = 0;
  const h = {
    runner,
    now: 0,
    /** Every script run, in order, as service:event. */
    log: [] as string[],
    runs: [] as RunRequest[],
    answer: (_r: RunRequest): number => 0,
    tick(): RunnerOutput {
      const out: RunnerOutput = { runs: [], signals: [], events: [] };
      runner.tick(h.now, out);
      return out;
    },
    /** Tick and finish every script started, until nothing more runs. */
    settle(): string[] {
      const events: string[] = [];
      for (let i = 0; i < 30; i++) {
        const out = h.tick();
        if (out.runs.length === 0) break;
        for (const r of out.runs) {
          h.log.push(`${r.service}:${r.event}`);
          h.runs.push(r);
          runner.scriptDone(h.now, r.runId, h.answer(r), null, [], 1, out);
        }
        events.push(...out.events.map((e) => e.kind));
      }
      return events;
    },
    heartbeat(master: string | null, state: ClusterState = initialClusterState()): void {
      seq++;
      runner.onHeartbeat(h.now, { epoch: 1, seq, master, masterEpoch: 1, grant: master === 'n2' ? { echoMs: h.now, incarnation: 1 } : null }, state, true);
    },
  };
  // Boot: every status says stopped, then the starts run (and the status after each).
  h.answer = downUntilStarted();
  h.settle();
  h.answer = () => 0;
  h.log = [];
  return h;
}

function names(h: ReturnType<typeof harness>): string[] {
  return h.runner.report(h.now).services.map((s) => `${s.name}:${s.state}`);
}

test('a service added to a slave is asked first, then started, and nothing else runs', () => {
  const h = harness([WEB]);
  h.heartbeat('n1');
  h.settle();
  h.log = [];
  h.answer = downUntilStarted();
  h.runner.setServices([DB, WEB]);
  h.settle();
  assert.deepEqual(h.log, ['db:status', 'db:start', 'db:status'], 'web is not touched');
  assert.deepEqual(names(h), ['db:started', 'web:started']);
  assert.equal(h.runner.report(h.now).promotable, true);
});

test('a service found already running (status 0) is taken as started: its start never runs, as at boot', () => {
  const h = harness([WEB]);
  h.runner.setServices([DB, WEB]);
  h.settle();
  assert.deepEqual(h.log, ['db:status']);
  assert.deepEqual(names(h), ['db:started', 'web:started']);
});

test('a service added to the master is started and promoted; the master keeps its role and its services', () => {
  const h = harness([WEB]);
  h.heartbeat('n2');
  h.settle();
  assert.deepEqual(names(h), ['web:promoted']);
  h.log = [];
  h.answer = downUntilStarted();
  h.runner.setServices([DB, WEB]);
  const out = h.tick();
  assert.deepEqual(out.runs.map((r) => `${r.service}:${r.event}`), ['db:status']);
  // While it is asked and started, the runner is still the master and holds the role.
  assert.equal(h.runner.state(), 'master');
  assert.equal(h.runner.report(h.now).holding, true);
  for (const r of out.runs) {
    h.log.push(`${r.service}:${r.event}`);
    h.runner.scriptDone(h.now, r.runId, 92, null, [], 1, out);
  }
  h.heartbeat('n2');
  h.settle();
  assert.deepEqual(h.log, ['db:status', 'db:start', 'db:status', 'db:promote'], 'web is neither demoted nor restarted');
  assert.deepEqual(names(h), ['db:promoted', 'web:promoted']);
});

test('a removed service goes down and is forgotten; a failing stop of it fails nothing', () => {
  const h = harness([DB, WEB]);
  h.heartbeat('n2');
  h.settle();
  h.log = [];
  h.answer = (r) => (r.service === 'web' ? 127 : 0); // its directory is gone
  h.runner.setServices([DB]);
  h.heartbeat('n2');
  const events = h.settle();
  assert.deepEqual(h.log, ['web:demote', 'web:stop']);
  assert.ok(!events.includes('runner-failed'), `no failure: ${events.join(', ')}`);
  // Its failed demote and stop proved nothing: the runner holds for it
  // until the role moves and the hold bound has passed, then forgets it.
  assert.deepEqual(names(h), ['db:promoted', 'web:stopped']);
  const r = h.runner.report(h.now);
  assert.equal(r.failed, false);
  assert.equal(r.failcount, 0);
  h.heartbeat('n1');
  h.settle();
  assert.equal(h.runner.report(h.now).holding, true, 'web may still act as master');
  // (Past the leader's own wait too: lease, demote time and margin from the last grant.)
  h.now += simParams().masterLeaseMs + simParams().demoteTimeoutMs + simParams().safetyMarginMs + 1;
  h.settle();
  assert.deepEqual(names(h), ['db:started']);
  // Let go by timing alone, but the leader's own wait is over too: its "free" may count.
  assert.equal(h.runner.report(h.now).releasedByTime, undefined);
  assert.equal(h.runner.report(h.now).holding, false);
});

test('a removed service whose scripts still work is demoted and stopped cleanly, then forgotten at once', () => {
  const h = harness([DB, WEB]);
  h.heartbeat('n2');
  h.settle();
  h.log = [];
  h.runner.setServices([DB]);
  h.heartbeat('n2');
  h.settle();
  assert.deepEqual(h.log, ['web:demote', 'web:stop']);
  assert.deepEqual(names(h), ['db:promoted']);
  assert.equal(h.runner.state(), 'master');
});

test('a service that comes back before it was forgotten is supervised again', () => {
  const h = harness([DB, WEB]);
  h.runner.setServices([DB]);
  const out = h.tick();
  assert.deepEqual(out.runs.map((r) => `${r.service}:${r.event}`), ['web:stop']);
  h.runner.setServices([DB, WEB]);
  for (const r of out.runs) h.runner.scriptDone(h.now, r.runId, 0, null, [], 1, out);
  h.settle();
  assert.deepEqual(names(h), ['db:started', 'web:started'], 'started again');
});

test('scripts added to a directory take effect at their next run', () => {
  const h = harness([{ name: 'db', priority: 10, scripts: ['start', 'stop'] }]);
  h.heartbeat('n2');
  h.settle();
  assert.deepEqual(h.log, [], 'no promote script: nothing runs');
  h.runner.setServices([{ name: 'db', priority: 10, scripts: ['start', 'stop', 'demote'] }]);
  h.heartbeat('n1');
  h.settle();
  assert.deepEqual(h.log, ['db:demote'], 'the new demote runs');
});

test('maintenance freezes a running script: no time limit, and its failure is no verdict; supervision resumes with a status', () => {
  const h = harness([DB]);
  h.runner.setServices([DB, WEB]);
  h.answer = (r) => (r.event === 'status' ? 92 : 0);
  // The added web's status says stopped; its start begins and hangs.
  let out = h.tick();
  for (const r of out.runs) h.runner.scriptDone(h.now, r.runId, 92, null, [], 1, out);
  out = h.tick();
  const start = out.runs.find((r) => r.event === 'start');
  assert.ok(start !== undefined && start.service === 'web');
  const on = { ...initialClusterState(), maintenance: true };
  h.heartbeat('n1', on);
  // Far past start_timeout: no signal.
  h.now += simParams().startTimeoutMs * 3;
  h.heartbeat('n1', on);
  out = h.tick();
  assert.deepEqual(out.signals, [], 'no SIGTERM in maintenance');
  assert.deepEqual(out.runs, [], 'nothing else starts');
  // It fails during maintenance: no failure.
  h.runner.scriptDone(h.now, start.runId, 1, null, [], 1, out);
  assert.deepEqual(out.events, []);
  assert.equal(h.runner.report(h.now).failed, false);
  // Maintenance ends: a status says where each service is.
  h.heartbeat('n1', initialClusterState());
  h.log = [];
  h.answer = () => 0;
  h.settle();
  // (web's start failed in maintenance: not judged, tried again, then asked.)
  assert.deepEqual(h.log, ['db:status', 'web:start', 'web:status']);
  assert.equal(h.runner.report(h.now).failed, false);
});

test('a script still running when maintenance ends gets its whole time limit from then', () => {
  const h = harness([DB]);
  h.runner.setServices([DB, WEB]);
  let out = h.tick();
  for (const r of out.runs) h.runner.scriptDone(h.now, r.runId, 92, null, [], 1, out);
  out = h.tick();
  assert.equal(out.runs[0]?.event, 'start');
  const start = out.runs[0].runId;
  const on = { ...initialClusterState(), maintenance: true };
  h.heartbeat('n1', on);
  h.now += simParams().startTimeoutMs * 2;
  h.heartbeat('n1', initialClusterState());
  out = h.tick();
  assert.deepEqual(out.signals.filter((s) => s.runId === start), [], 'not killed the moment maintenance ends');
  h.now += simParams().startTimeoutMs;
  out = h.tick();
  assert.deepEqual(
    out.signals.filter((s) => s.runId === start).map((s) => s.signal),
    ['SIGTERM'],
    'its limit counts again from the end of maintenance',
  );
});

test('KOI_IS_PROMOTED is 0 for a demote, stop or failed script, while the journal still records that the role may be held', () => {
  const h = harness([DB]);
  h.heartbeat('n2');
  h.settle();
  const promote = h.runs.find((r) => r.event === 'promote')!;
  assert.equal(promote.vars.isPromoted, true);
  assert.equal(promote.mayHold, true);
  h.heartbeat('n1');
  h.settle();
  const demote = h.runs.find((r) => r.event === 'demote')!;
  assert.equal(demote.vars.isPromoted, false);
  assert.equal(demote.vars.state, 'master', 'it is the master until the demote is done');
  assert.equal(demote.mayHold, true);
});

test('an added service without a status script is taken as stopped and started, as at boot', () => {
  const h = harness([DB]);
  h.runner.setServices([DB, { name: 'web', priority: 20, scripts: ['start', 'stop'] }]);
  h.settle();
  assert.deepEqual(h.log, ['web:start']);
  assert.deepEqual(names(h), ['db:started', 'web:started']);
});

test('a removed service whose state is not known yet (boot check pending) is not forgotten until the check ran', () => {
  let runId = 0;
  // Maintenance from the saved state: nothing runs, the boot checks wait.
  const runner = new Runner('n2', simParams(), [DB, WEB], 1, () => ++runId, 0, true, ['web']);
  runner.setServices([DB]);
  const out: RunnerOutput = { runs: [], signals: [], events: [] };
  runner.tick(0, out);
  assert.deepEqual(out.runs, []);
  assert.deepEqual(
    runner.services.map((s) => s.def.name),
    ['db', 'web'],
    'web may be promoted (interrupted): kept until its status said',
  );
});
