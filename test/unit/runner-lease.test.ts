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
  h.heartbeat(7, 'n2', true);
  h.runner.reportedFree(7);
  assert.deepEqual(h.step(), ['promote']);
});
