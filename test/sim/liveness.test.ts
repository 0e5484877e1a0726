// Scenarios for the liveness findings of a review (issue "never stuck, never
// flapping"): each recipe left the cluster without a master, or moved a
// healthy master, on the code before the fix. Virtual clock: exact timing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { adminSync, assertNoViolations, cluster, eventsOf, leaderOf, masterOf, names, partition, promoteWhenReady, settled } from './kit';
import type { World } from './world';
import * as master from '../../src/core/master';
import * as state from '../../src/core/state';
import { KoiNode } from '../../src/core/node';

/** Send a command, run until answered; the whole reply. */
function adminReply(w: World, cmd: Parameters<World['admin']>[0], via?: string): { ok: boolean; note: string | null; error: string | null } {
  const id = w.admin(cmd, via);
  w.runUntilTrue(() => w.replies.has(id), 3000);
  const r = w.replies.get(id);
  assert.ok(r !== undefined, `no reply to ${JSON.stringify(cmd)}`);
  return { ok: r.ok, note: r.note ?? null, error: r.error };
}

/**
 * Finding 1b: 5 nodes, n5 down since boot and never master. A maintenance
 * round used to make n5 a "frozen holder" (it never said it was free), so
 * when the master died later nobody was ever promoted.
 */
function downSinceBootThenMasterDies(fence: boolean): World {
  const w = cluster({ nodes: names(5), params: { fenceConfigured: fence } });
  // A fence that never works: only timing can free the dead master.
  w.decideFence = () => ({ ok: false, ms: 50 });
  w.crash('n5');
  assert.ok(w.runUntilTrue(() => settled(w), 5000));
  promoteWhenReady(w, 'n2');
  assert.ok(w.runUntilTrue(() => masterOf(w) === 'n2' && settled(w), 3000));
  assert.equal(adminSync(w, { kind: 'maintenance', on: true }, 'n1'), 'ok');
  w.runFor(1000);
  assert.equal(adminSync(w, { kind: 'maintenance', on: false }, 'n1'), 'ok');
  w.runFor(1000);
  w.crash('n2');
  return w;
}

for (const fence of [false, true]) {
  test(`finding 1: a runner down since boot does not block failover after a maintenance round (${fence ? 'failing fence' : 'no fence'})`, () => {
    const w = downSinceBootThenMasterDies(fence);
    const p = w.params;
    const boundMs = p.leaderTimeoutMs + p.masterLeaseMs + p.demoteTimeoutMs + p.safetyMarginMs + 4000;
    assert.ok(w.runUntilTrue(() => settled(w) && masterOf(w) !== 'n2', boundMs), `a new master within ${boundMs}ms; waiting for ${JSON.stringify(w.core(leaderOf(w) ?? 'n1')?.blockers())}`);
    assert.ok(!(w.core('n1')!.state.designated ?? []).includes('n5'));
    assertNoViolations(w);
  });
}

test('finding 1, rule removed: freezing every runner not known to be free leaves the cluster stuck', (t) => {
  // The rules before the fix: anyone not confirmed free after maintenance may
  // block, and so may a runner no state ever named master.
  const proto = KoiNode.prototype as unknown as { maintenanceHolders: (ctx: master.MasterContext) => string[] };
  t.mock.method(proto, 'maintenanceHolders', (ctx: master.MasterContext) =>
    [...ctx.peers.keys()].filter((n) => master.mayBeRunner(ctx, n) && (n === ctx.state.master || master.mayHold(ctx, n) || !master.confirmedFree(ctx, n))),
  );
  t.mock.method(state, 'everDesignated', () => true);
  const w = downSinceBootThenMasterDies(false);
  w.runFor(20_000);
  assert.equal(masterOf(w), null, 'stuck, as the review found');
  assert.ok(w.core('n1')!.blockers().some((b) => b.node === 'n5'));
});

/** With a fence, a runner no state ever named master needs no fence before a promotion. */
function coldStartWithSlowFence(): World {
  const w = cluster({ nodes: names(5), params: { fenceConfigured: true } });
  w.decideFence = () => ({ ok: true, ms: 20_000 });
  w.crash('n5');
  w.runFor(4000);
  return w;
}

test('finding 1: a cold start with one runner down does not wait for its fence', () => {
  const w = coldStartWithSlowFence();
  assert.ok(settled(w), `settled; blockers ${JSON.stringify(w.core('n1')?.blockers())}`);
  assert.equal(w.fenceLog.length, 0, 'nobody fenced');
  assertNoViolations(w);
});

test('finding 1, rule removed: without the designation history the cold start waits for the fence', (t) => {
  t.mock.method(state, 'everDesignated', () => true);
  const w = coldStartWithSlowFence();
  assert.ok(!settled(w));
  assert.ok(w.fenceLog.some((f) => f.target === 'n5'));
});

test('finding 1: a master that dies in maintenance blocks, and every command says why instead of a bare ok', () => {
  const w = cluster({ nodes: names(3), params: { fenceConfigured: true } });
  w.decideFence = () => ({ ok: false, ms: 50 });
  assert.ok(w.runUntilTrue(() => settled(w), 3000));
  promoteWhenReady(w, 'n3');
  assert.ok(w.runUntilTrue(() => masterOf(w) === 'n3' && settled(w), 3000));
  assert.equal(adminSync(w, { kind: 'maintenance', on: true }, 'n1'), 'ok');
  w.crash('n3');
  assert.equal(adminSync(w, { kind: 'maintenance', on: false }, 'n1'), 'ok');
  const t0 = w.nowMs;
  w.runFor(30_000);
  assert.equal(masterOf(w), null, 'safety kept: n3 may have held through maintenance');
  // The failing fence is retried with a growing pause, not back to back.
  const attempts = w.fenceLog.filter((f) => f.atMs >= t0 && f.target === 'n3').length;
  assert.ok(attempts >= 2 && attempts <= 8, `fence attempts in 30 s: ${attempts}`);
  const results = eventsOf(w, 'fence-result', t0).filter((e) => !e.ev.ok);
  assert.ok(results.every((e) => e.ev.retryInMs !== null && e.ev.retryInMs >= p(w).leaderTimeoutMs), 'each failure says when the next attempt comes');
  assert.equal(adminSync(w, { kind: 'maintenance', on: true }, 'n1'), 'ok');
  for (const cmd of [
    { kind: 'maintenance', on: false },
    { kind: 'stop', node: 'n3' },
    { kind: 'promote', node: 'n2' },
  ] as const) {
    const r = adminReply(w, cmd, 'n1');
    assert.ok(r.ok, `${cmd.kind}: ${r.error}`);
    assert.match(r.note ?? '', /n3/, `${JSON.stringify(cmd)} must say what it waits for, got note ${r.note}`);
  }
  assert.equal(adminSync(w, { kind: 'start', node: 'n3' }, 'n1'), 'ok');
  assert.equal(adminSync(w, { kind: 'confirm-down', node: 'n3', wallMs: 1 }, 'n1'), 'ok');
  assert.ok(w.runUntilTrue(() => settled(w), 5000), 'the operator’s way out works');
  assertNoViolations(w);
});

function p(w: World) {
  return w.params;
}

test('finding 1: a maintenance round with a live cluster leaves nobody frozen who was not holding', () => {
  const w = cluster({ nodes: names(3) });
  assert.ok(w.runUntilTrue(() => settled(w), 3000));
  const m = masterOf(w)!;
  assert.equal(adminSync(w, { kind: 'maintenance', on: true }, 'n1'), 'ok');
  assert.deepEqual(w.core('n1')!.state.maintenanceHolders, [m]);
  assert.equal(adminSync(w, { kind: 'maintenance', on: false }, 'n1'), 'ok');
  assert.ok(w.runUntilTrue(() => w.core('n1')!.state.frozenHolders.length === 0, 2000));
  assert.equal(w.core('n1')!.state.maintenanceHolders, undefined);
  assertNoViolations(w);
});

// Keep the import of master used for rule-removal tests added below.
void master;
void partition;
