// The order in which koinode and the simulator apply a node's decisions.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applyReady } from '../../src/daemon/effects';
import type { Ready } from '../../src/core/types';

test('kills first, then persist before any message, runs, kills of runs started now, fences, events, replies', () => {
  const ready: Ready = {
    messages: [{ to: 'n2', msg: { kind: 'vote-req', epoch: 3, takeover: false, preVote: false } }],
    runs: [{ runId: 8, service: 'db', event: 'stop', vars: { isPromoted: false, state: 'failed', epoch: 3, master: null }, urgent: false, mayHold: false }],
    signals: [
      { runId: 8, signal: 'SIGKILL' },
      { runId: 5, signal: 'SIGTERM' },
    ],
    fences: [{ fenceId: 1, node: 'n3' }],
    events: [{ kind: 'warning', text: 'w' }],
    replies: [{ requestId: 1, ok: true, error: null, code: 'ok', leader: 'n1' }],
    persist: { epoch: 3, votedFor: 'n1', state: {} as never },
  };
  const order: string[] = [];
  let advanced = false;
  applyReady(
    { ready: () => ready, advance: () => (advanced = true) },
    {
      signal: (s) => order.push(`signal ${s.runId}`),
      persist: () => order.push('persist'),
      send: (m) => order.push(`send ${m.to}`),
      run: (r) => order.push(`run ${r.runId}`),
      fence: (f) => order.push(`fence ${f.node}`),
      event: (e) => order.push(`event ${e.kind}`),
      reply: (r) => order.push(`reply ${r.requestId}`),
    },
  );
  assert.deepEqual(order, ['signal 5', 'persist', 'send n2', 'run 8', 'signal 8', 'fence n3', 'event warning', 'reply 1']);
  assert.ok(advanced);
});
