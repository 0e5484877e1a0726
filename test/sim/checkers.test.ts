// Every checker of the simulator, shown catching what it is there for: a core
// broken on purpose (an exported function of a core module swapped for a
// wrong one, as in sim.test.ts) or a world driven by hand into the violating
// situation. Each test also runs the correct core where that is cheap, so a
// checker that fires on everything would not pass either.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as election from '../../src/core/election';
import * as master from '../../src/core/master';
import * as services from '../../src/core/services';
import type { ScriptEvent, ServiceDef } from '../../src/core/types';
import type { Violation } from './checker';
import { adminSync, cluster, masterOf, names, settled } from './kit';
import { runSeed } from './run-seed';
import type { World } from './world';

/** Run `body` with `mod[name]` swapped for `broken(original)`, restoring it afterwards. */
function withBroken<M, K extends keyof M, R>(mod: M, name: K, broken: (original: M[K]) => M[K], body: () => R): R {
  const original = mod[name];
  (mod as Record<K, M[K]>)[name] = broken(original);
  try {
    return body();
  } finally {
    (mod as Record<K, M[K]>)[name] = original;
  }
}

/** The first seed in 1..maxSeeds whose run shows a violation of `kind`. */
function firstSeedWith(kind: Violation['kind'], maxSeeds: number): Violation | null {
  for (let seed = 1; seed <= maxSeeds; seed++) {
    const v = runSeed(seed, { durationMs: 10_000, freezes: false }).violations.find((x) => x.kind === kind);
    if (v !== undefined) return v;
  }
  return null;
}

function kinds(w: World): string[] {
  return w.checker.violations.map((v) => v.kind);
}

test('two-leaders: voters that grant every request elect two leaders in one epoch', () => {
  // Broken on purpose: a vote is granted even to a second candidate of the same epoch.
  const v = withBroken(election, 'decideVote', () => () => ({ grant: true }), () => firstSeedWith('two-leaders', 60));
  assert.ok(v !== null, 'no seed in 1..60 exposed voters that vote twice');
  assert.match(v.text, /^epoch \d+ has leaders n\d and n\d$/);
});

test('epoch-backwards: a machine that comes back without its state file starts again at epoch 0', () => {
  const w = cluster({ nodes: names(3) });
  assert.ok(w.runUntilTrue(() => settled(w), 3000));
  w.crash('n3');
  w.restart('n3');
  w.runFor(500);
  assert.deepEqual(kinds(w), [], 'a restart with its state file keeps the epoch');
  const epoch = w.core('n3')!.epoch;
  assert.ok(epoch > 0);
  w.crash('n3');
  w.nodes.get('n3')!.persisted = null; // the disk lost the state
  w.restart('n3');
  const v = w.checker.violations.find((x) => x.kind === 'epoch-backwards');
  assert.ok(v !== undefined, `violations: ${JSON.stringify(w.checker.violations)}`);
  assert.equal(v.text, `n3 went from epoch ${epoch} to 0`);
});

test('liveness: a leader that never chooses a master is reported after the heal', () => {
  assert.equal(firstSeedWith('liveness', 3), null, 'the correct core converges on the first seeds');
  // Broken on purpose: no runner is ever good enough.
  const v = withBroken(master, 'chooseMaster', () => () => null, () => firstSeedWith('liveness', 3));
  assert.ok(v !== null, 'a cluster without a master passed as converged');
  assert.match(v.text, /^not converged \d+ms after healing at \d+ms: no master designated$/);
});

test('core-threw: an exception inside the core is a violation and stops the world', () => {
  const w = cluster({ nodes: names(3) });
  assert.ok(w.runUntilTrue(() => settled(w), 3000));
  assert.deepEqual(kinds(w), []);
  // Broken on purpose: the periodic status planning throws.
  withBroken(services, 'dueStatus', () => () => {
    throw new Error('broken dueStatus');
  }, () => w.runFor(2000));
  const v = w.checker.violations.find((x) => x.kind === 'core-threw');
  assert.ok(v !== undefined, `violations: ${JSON.stringify(w.checker.violations)}`);
  assert.match(v.text, /^n\d: broken dueStatus$/);
  const at = w.runLog.length;
  w.runFor(3000);
  assert.equal(w.runLog.length, at, 'nothing runs after the core threw');
});

// ---- priority order, one direction at a time ------------------------------------

const TWO: ServiceDef[] = [
  { name: 'vip', priority: 10 },
  { name: 'db', priority: 20 },
];

/**
 * A plan whose `events` follow the priorities backwards (everything else as
 * the real plan has it): the order checker must see exactly that direction.
 */
function reversedFor(events: ScriptEvent[]): (original: typeof services.plan) => typeof services.plan {
  return (original) => (svcs, target, urgent) => {
    const mirror = svcs.map((s) => ({ ...s, def: { ...s.def, priority: s.def.priority === null ? null : -s.def.priority } }));
    const wrong = original(mirror, target, urgent)
      .filter((r) => events.includes(r.event))
      .map((r) => ({ service: svcs[mirror.indexOf(r.service)]!, event: r.event }));
    return [...original(svcs, target, urgent).filter((r) => !events.includes(r.event)), ...wrong];
  };
}

/** Master n3 hands over to n2 (n3 demotes), then `koi stop n1` (a slave stops). */
function demoteThenStop(): World {
  const w = cluster({ nodes: names(3), services: TWO });
  assert.ok(w.runUntilTrue(() => settled(w), 3000));
  if (masterOf(w) !== 'n3') assert.equal(adminSync(w, { kind: 'promote', node: 'n3' }), 'ok');
  assert.ok(w.runUntilTrue(() => masterOf(w) === 'n3' && settled(w), 3000), 'n3 is master');
  w.checker.violations.length = 0; // only what follows counts
  assert.equal(adminSync(w, { kind: 'promote', node: 'n2' }), 'ok');
  assert.ok(w.runUntilTrue(() => masterOf(w) === 'n2' && settled(w), 3000), 'n2 is master');
  assert.equal(adminSync(w, { kind: 'stop', node: 'n1' }), 'ok');
  w.runFor(2000);
  return w;
}

function orderTexts(w: World): string[] {
  return w.checker.violations.filter((v) => v.kind === 'order').map((v) => v.text);
}

test('order, demote direction: demoting the lower priority first is caught, and only that', () => {
  assert.deepEqual(kinds(demoteThenStop()), [], 'the real plan keeps the order');
  const w = withBroken(services, 'plan', reversedFor(['demote']), demoteThenStop);
  const texts = orderTexts(w);
  assert.ok(texts.length > 0, 'ascending demotes passed');
  for (const t of texts) assert.match(t, /^n3: demote of vip \(priority 10\) while db \(priority 20\) is level 2/);
});

test('order, stop direction: stopping the lower priority first is caught, and only that', () => {
  const w = withBroken(services, 'plan', reversedFor(['stop']), demoteThenStop);
  const texts = orderTexts(w);
  assert.ok(texts.length > 0, 'ascending stops passed');
  for (const t of texts) assert.match(t, /^n1: stop of vip \(priority 10\) while db \(priority 20\) is level 1/);
});

// ---- the frozen holder ---------------------------------------------------------------

/**
 * Master n3's koinode freezes (SIGSTOP) while its services keep running; the
 * others go on and promote someone else.
 */
function frozenMaster(fence: 'none' | 'ok'): World {
  const w = cluster({ nodes: names(3), params: { fenceConfigured: fence !== 'none' } });
  w.fenceOkP = 1;
  assert.ok(w.runUntilTrue(() => settled(w), 3000));
  if (masterOf(w) !== 'n3') assert.equal(adminSync(w, { kind: 'promote', node: 'n3' }), 'ok');
  assert.ok(w.runUntilTrue(() => masterOf(w) === 'n3' && settled(w), 3000), 'n3 is master');
  w.freeze('n3');
  assert.ok(w.runUntilTrue(() => masterOf(w) !== 'n3' && masterOf(w) !== null && w.checker.fullyPromoted(masterOf(w)!), 5000), 'a new master');
  return w;
}

test('frozen holder without a fence: the overlap is excused, not a violation', () => {
  const w = frozenMaster('none');
  assert.deepEqual(kinds(w), []);
  assert.ok(w.checker.frozenExemptions >= 1, 'the overlap with the frozen n3 was recorded as excused');
  assert.ok(w.checker.holders().includes('n3'), 'n3 still holds: its koinode cannot demote');
});

test('frozen holder with a fence: the fence removes it first, so there is no overlap', () => {
  const w = frozenMaster('ok');
  assert.deepEqual(kinds(w), []);
  assert.equal(w.checker.frozenExemptions, 0);
  assert.equal(w.core('n3'), null, 'n3 was powered off');
});

test('frozen holder with a fence: a leader that does not wait for it is a violation, not excused', () => {
  // Broken on purpose: an unreachable node is assumed to hold nothing, so nobody fences or waits.
  const brokenMayHold = (original: typeof master.mayHold): typeof master.mayHold => (ctx, name) =>
    master.reachable(ctx, name) ? original(ctx, name) : false;
  // Without a fence the same early promote is excused: the fence setting alone makes the difference.
  const unfenced = withBroken(master, 'mayHold', brokenMayHold, () => frozenMaster('none'));
  assert.deepEqual(kinds(unfenced), []);
  assert.ok(unfenced.checker.frozenExemptions >= 1);
  const fenced = withBroken(master, 'mayHold', brokenMayHold, () => frozenMaster('ok'));
  assert.ok(fenced.core('n3') !== null, 'n3 was not fenced');
  assert.equal(fenced.checker.frozenExemptions, 0);
  const v = fenced.checker.violations.find((x) => x.kind === 'two-masters');
  assert.ok(v !== undefined, `violations: ${JSON.stringify(fenced.checker.violations)}`);
  assert.match(v.text, /while n3 holds the master role/);
});
