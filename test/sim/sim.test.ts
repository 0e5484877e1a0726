// The seeded simulator in CI: a fixed range of seeds, exact replay, and proof
// that the checkers find bugs in deliberately broken cores.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as master from '../../src/core/master';
import * as services from '../../src/core/services';
import * as election from '../../src/core/election';
import { runSeed, type SeedResult } from './run-seed';
import { report } from './report';

const single = process.env.KOI_SIM_SEED;
const FROM = single !== undefined ? Number(single) : Number(process.env.KOI_SIM_FROM ?? 1);
const SEEDS = single !== undefined ? 1 : Number(process.env.KOI_SIM_SEEDS ?? 250);

function describeFailures(rs: SeedResult[]): string {
  const lines: string[] = [];
  for (const r of rs) report(r, (s) => lines.push(s));
  return lines.join('\n');
}

test(`simulator: seeds ${FROM}..${FROM + SEEDS - 1} keep every invariant`, () => {
  const bad: SeedResult[] = [];
  for (let seed = FROM; seed < FROM + SEEDS; seed++) {
    const r = runSeed(seed);
    if (r.violations.length > 0) bad.push(r);
  }
  assert.equal(bad.length, 0, describeFailures(bad.slice(0, 3)));
});

test('simulator: one seed replays exactly', () => {
  const a = runSeed(42);
  const b = runSeed(42);
  assert.deepEqual(b.trace, a.trace);
  assert.deepEqual(b.violations, a.violations);
  assert.ok(a.faults > 5, 'the nemesis applied faults');
  const c = runSeed(43);
  assert.notDeepEqual(c.trace, a.trace, 'another seed is another run');
});

/**
 * Swap one exported function of a core module for a broken one (the core
 * calls it through the module's exports) and require that the checkers find
 * a violation of `kind` within `maxSeeds` seeds.
 */
function mustCatch<M, K extends keyof M>(mod: M, name: K, broken: (original: M[K]) => M[K], kind: string, maxSeeds: number): void {
  const original = mod[name];
  (mod as Record<K, M[K]>)[name] = broken(original);
  try {
    for (let seed = 1; seed <= maxSeeds; seed++) {
      const r = runSeed(seed, { durationMs: 20_000, freezes: false });
      if (r.violations.some((v) => v.kind === kind)) return;
    }
    assert.fail(`no seed in 1..${maxSeeds} exposed the broken ${String(name)}`);
  } finally {
    (mod as Record<K, M[K]>)[name] = original;
  }
}

test('checkers catch a core that promotes without waiting out the old lease', () => {
  // Broken on purpose: an unreachable node is assumed to hold nothing.
  mustCatch(master, 'mayHold', (original) => (ctx, name) => (master.reachable(ctx, name) ? original(ctx, name) : false), 'two-masters', 200);
});

test('checkers catch a runner that ignores service priorities', () => {
  // Broken on purpose: plan every service alone, as if it had no neighbours.
  mustCatch(services, 'plan', (original) => (svcs, target, urgent) => svcs.flatMap((one) => original([one], target, urgent)), 'order', 200);
});

test('checkers catch a new leader that forgets committed operator decisions', () => {
  // Broken on purpose: a new leader keeps its own state and ignores its voters'.
  mustCatch(election, 'newestState', () => (own) => own, 'state-lost', 300);
});

test('checkers catch a leader that ignores a runner it has not heard from yet', () => {
  // Broken on purpose: a peer whose hello has not arrived counts as no runner,
  // so a restarted leader promotes while an unheard master may still hold.
  mustCatch(master, 'mayBeRunner', () => (ctx, name) => ctx.peers.get(name)?.runner === true, 'two-masters', 1500);
});
