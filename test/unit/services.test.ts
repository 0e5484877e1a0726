// Priority planning of service scripts, as pure functions.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { beginScript, finishScript, newService, plan, type ServiceRt } from '../../src/core/services';

function svcs(...prios: (number | null)[]): ServiceRt[] {
  return prios.map((p, i) => newService({ name: `s${i}`, priority: p }));
}

function names(rs: ReturnType<typeof plan>): string[] {
  return rs.map((r) => `${r.service.def.name}:${r.event}`).sort();
}

/** Run the planner to completion, every script succeeding, and return the batches. */
function drive(ss: ServiceRt[], target: 'stopped' | 'started' | 'promoted'): string[][] {
  const batches: string[][] = [];
  for (let guard = 0; guard < 20; guard++) {
    const step = plan(ss, target, false);
    if (step.length === 0) return batches;
    batches.push(names(step));
    let id = 1;
    for (const r of step) beginScript(r.service, r.event, id++);
    for (const r of step) finishScript(r.service, 0, null);
    // As if the status that follows every start said ready (tested on its own below).
    for (const r of step) if (r.event === 'start') r.service.ready = true;
  }
  throw new Error('planner did not settle');
}

test('start ascends by priority, equal priorities together, unprioritised at once', () => {
  const ss = svcs(20, 10, 10, null);
  assert.deepEqual(drive(ss, 'started'), [['s1:start', 's2:start', 's3:start'], ['s0:start']]);
  assert.ok(ss.every((s) => s.state === 'started'));
});

test('promote waits for every start; demote and stop descend, demotes first', () => {
  const ss = svcs(20, 10, 30);
  assert.deepEqual(drive(ss, 'promoted'), [['s1:start'], ['s0:start'], ['s2:start'], ['s1:promote'], ['s0:promote'], ['s2:promote']]);
  assert.ok(ss.every((s) => s.holding));
  assert.deepEqual(drive(ss, 'stopped'), [['s2:demote'], ['s0:demote'], ['s1:demote'], ['s2:stop'], ['s0:stop'], ['s1:stop']]);
  assert.ok(ss.every((s) => !s.holding && s.state === 'stopped'));
});

test('urgent demote drops the ordering: every holder lets go at once', () => {
  const ss = svcs(20, 10, 30);
  drive(ss, 'promoted');
  assert.deepEqual(names(plan(ss, 'started', true)), ['s0:demote', 's1:demote', 's2:demote']);
});

test('a failing script runs failed, then stop, and ends failed; others wait for it', () => {
  const ss = svcs(10, 20);
  drive(ss, 'started');
  const [low, high] = ss as [ServiceRt, ServiceRt];
  beginScript(high, 'promote', 1);
  assert.equal(finishScript(high, 1, null), true, 'reported as a new failure');
  assert.equal(high.state, 'failing');
  assert.deepEqual(names(plan(ss, 'stopped', false)), ['s1:failed'], 'the lower service waits');
  beginScript(high, 'failed', 2);
  finishScript(high, null, 'SIGKILL');
  assert.deepEqual(names(plan(ss, 'stopped', false)), ['s1:stop']);
  beginScript(high, 'stop', 3);
  assert.equal(finishScript(high, 0, null), false);
  assert.equal(high.state, 'failed');
  assert.equal(high.holding, false, 'stop ends holding');
  assert.deepEqual(names(plan(ss, 'stopped', false)), ['s0:stop']);
  void low;
});

test('an empty service list is trivially settled', () => {
  assert.deepEqual(plan([], 'promoted', false), []);
});

test('a started service is promoted only after a status since its start said it is ready, and not while it says 93', () => {
  const [s] = [newService({ name: 'db', priority: 10 })] as [ServiceRt];
  beginScript(s, 'start', 1);
  finishScript(s, 0, null);
  assert.deepEqual(names(plan([s], 'promoted', false)), [], 'not checked since its start');
  beginScript(s, 'status', 2);
  finishScript(s, 93, null);
  assert.deepEqual(names(plan([s], 'promoted', false)), [], '93: live but not promotable');
  beginScript(s, 'status', 3);
  finishScript(s, 0, null);
  assert.deepEqual(names(plan([s], 'promoted', false)), ['db:promote']);
  // Started again (after a 92): it must be asked again.
  beginScript(s, 'status', 4);
  finishScript(s, 92, null);
  assert.deepEqual(names(plan([s], 'promoted', false)), ['db:start']);
  beginScript(s, 'start', 5);
  finishScript(s, 0, null);
  assert.deepEqual(names(plan([s], 'promoted', false)), []);
  // A service without a status script cannot be asked: started is ready.
  const [n] = [newService({ name: 'null', priority: null, scripts: ['start'] })] as [ServiceRt];
  beginScript(n, 'start', 6);
  finishScript(n, 0, null);
  assert.deepEqual(names(plan([n], 'promoted', false)), ['null:promote']);
});
