// A koinode killed while a script ran with the role possibly held leaves a
// service in an unknown state; its successor's edge kills the leftovers and
// names those services. The runner then counts each as promoted unless its
// status says "stopped", and demotes it before it can report itself free.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Runner, type RunnerOutput } from '../../src/core/runner';
import { simParams } from '../sim/run-seed';
import { initialClusterState } from '../../src/core/state';

function boot(interrupted: string[], scripts?: string[]) {
  let runId = 0;
  const def = scripts === undefined ? { name: 'db', priority: 10 } : { name: 'db', priority: 10, scripts: scripts as never };
  const runner = new Runner('n2', simParams(), [def], 1, () => ++runId, 0, false, interrupted);
  const step = (exit = 0): string[] => {
    const out: RunnerOutput = { runs: [], signals: [], events: [] };
    runner.tick(0, out);
    for (const r of out.runs) runner.scriptDone(0, r.runId, exit, null, [], 1, out);
    return out.runs.map((r) => r.event);
  };
  return { runner, step };
}

for (const code of [0, 91, 93, 1]) {
  test(`interrupted: a boot status of ${code} counts as master, so demote runs before the runner is free`, () => {
    const h = boot(['db']);
    assert.equal(h.runner.report(0).holding, true, 'holding until the boot status ran');
    assert.deepEqual(h.step(code), ['status']);
    assert.equal(h.runner.report(0).holding, true, 'still holding: the promote may have gone through');
    assert.equal(h.runner.report(0).failed, false, 'a failing status is not a failure here');
    assert.deepEqual(h.step(), ['demote']);
    assert.equal(h.runner.report(0).holding, false, 'free once the demote succeeded');
  });
}

test('interrupted: a status that says stopped is believed, and the service is started', () => {
  const h = boot(['db']);
  assert.deepEqual(h.step(92), ['status']);
  assert.equal(h.runner.report(0).holding, false);
  assert.deepEqual(h.step(), ['start']);
});

test('interrupted without a status script: taken as master and demoted', () => {
  const h = boot(['db'], ['start', 'stop', 'promote', 'demote']);
  assert.deepEqual(h.step(), ['demote'], 'no status to ask: demote at once');
  assert.equal(h.runner.report(0).holding, false);
});

test('not interrupted: the same boot status of 0 frees the runner at once (the rule above is what differs)', () => {
  const h = boot([]);
  assert.deepEqual(h.step(0), ['status']);
  assert.equal(h.runner.report(0).holding, false);
  assert.deepEqual(h.step(), []);
});

test('interrupted and designated at once: demoted first, asked, then promoted (its real state is unknown)', () => {
  let runId = 0;
  const runner = new Runner('n2', simParams(), [{ name: 'db', priority: 10 }], 1, () => ++runId, 0, false, ['db']);
  const state = initialClusterState();
  const events: string[] = [];
  const step = (exit = 0) => {
    const out: RunnerOutput = { runs: [], signals: [], events: [] };
    runner.tick(0, out);
    for (const r of out.runs) {
      events.push(r.event);
      runner.scriptDone(0, r.runId, exit, null, [], 1, out);
    }
  };
  step(1); // the boot status fails: unknown
  runner.onHeartbeat(0, { epoch: 1, seq: 1, master: 'n2', masterEpoch: 1, grant: { echoMs: 0, incarnation: 1 } }, state, true);
  step();
  step();
  step();
  // Nothing said the service is ready since it was found: asked again before its promote.
  assert.deepEqual(events, ['status', 'demote', 'status', 'promote']);
});
