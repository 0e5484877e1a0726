// One seed, one run: draw a cluster, torment it, heal it, and check it.
import type { CoreParams, NodeName, PeerInfo, ScriptEvent, ServiceDef } from '../../src/core/types';
import { Rng } from './rng';
import type { Violation } from './checker';
import { World } from './world';

export function simParams(over: Partial<CoreParams> = {}): CoreParams {
  return {
    heartbeatIntervalMs: 100,
    leaderTimeoutMs: 500,
    masterLeaseMs: 800,
    statusIntervalMs: 1000,
    failurePromotionTimeoutMs: 5000,
    startTimeoutMs: 1000,
    stopTimeoutMs: 1000,
    statusTimeoutMs: 1000,
    promoteTimeoutMs: 600,
    demoteTimeoutMs: 600,
    failedTimeoutMs: 500,
    autoRecover: 2,
    autoRecoverWaitMs: 1000,
    failcountResetMs: 20_000,
    quorum: 2,
    killGraceMs: 100,
    takeoverSettleMs: 2000,
    safetyMarginMs: 50,
    fenceConfigured: false,
    ...over,
  };
}

export function majority(peers: PeerInfo[]): number {
  return Math.floor(peers.filter((p) => p.elector).length / 2) + 1;
}

export interface Shape {
  peers: PeerInfo[];
  services: ServiceDef[];
  params: CoreParams;
}

/** Kinds of cluster the sweep draws, so that none of them is rare. */
export type ShapeClass = 'mixed' | 'all-both' | 'split-roles' | 'five-electors' | 'two-nodes' | 'large';

export const SHAPE_CLASSES: readonly ShapeClass[] = ['mixed', 'all-both', 'split-roles', 'five-electors', 'two-nodes', 'large'];

export function drawShape(rng: Rng, forced?: ShapeClass): Shape & { shapeClass: ShapeClass } {
  const shapeClass = forced ?? rng.pick(SHAPE_CLASSES);
  const peers: PeerInfo[] = [];
  const add = (elector: boolean, runner: boolean) => peers.push({ name: `n${peers.length + 1}`, elector, runner, priority: rng.int(0, 2) });
  switch (shapeClass) {
    case 'mixed': {
      const n = rng.int(3, 5);
      for (let i = 0; i < n; i++) add(rng.chance(0.8), rng.chance(0.8));
      break;
    }
    case 'all-both':
      for (let i = rng.int(3, 5); i > 0; i--) add(true, true);
      break;
    case 'split-roles':
      // Electors that run nothing, runners that never lead.
      for (let i = rng.pick([3, 3, 5]); i > 0; i--) add(true, false);
      for (let i = rng.int(2, 3); i > 0; i--) add(false, true);
      break;
    case 'five-electors':
      for (let i = 0; i < 5; i++) add(true, i < 2 || rng.chance(0.5));
      break;
    case 'two-nodes':
      add(true, true);
      add(true, true);
      break;
    case 'large':
      for (let i = rng.int(6, 7); i > 0; i--) add(rng.chance(0.7), rng.chance(0.7));
      break;
  }
  if (!peers.some((p) => p.elector)) peers[0]!.elector = true;
  while (peers.filter((p) => p.runner).length < 2) rng.pick(peers.filter((p) => !p.runner)).runner = true;
  for (const p of peers) if (!p.elector && !p.runner) p.runner = true;
  const services: ServiceDef[] = [];
  const count = rng.int(1, 3);
  for (let i = 0; i < count; i++) services.push({ name: `s${i}`, priority: rng.pick([null, 10, 10, 20, 30]) });
  const params = simParams({
    heartbeatIntervalMs: rng.pick([50, 100, 150]),
    masterLeaseMs: rng.pick([600, 800, 1200]),
    demoteTimeoutMs: rng.pick([300, 600]),
    fenceConfigured: rng.chance(0.5),
  });
  params.leaderTimeoutMs = Math.max(params.leaderTimeoutMs, 3 * params.heartbeatIntervalMs);
  const electors = peers.filter((p) => p.elector).length;
  // Sometimes more than a majority is required (never more electors than there are).
  params.quorum = Math.min(electors, majority(peers) + (rng.chance(0.2) ? 1 : 0));
  return { peers, services, params, shapeClass };
}

export interface SeedResult {
  seed: number;
  violations: Violation[];
  trace: string[];
  frozenExemptions: number;
  /** Excused overlaps by cause (see Checker). */
  excused: Record<string, number>;
  faults: number;
  /** How many faults of each class the nemesis applied. */
  faultClasses: Record<string, number>;
  shape: string;
  shapeClass: ShapeClass;
  fence: boolean;
  /** Not converged because electors without their saved state leave no quorum (operator's turn). */
  stateLostStuck: boolean;
}

export interface SeedOptions {
  durationMs?: number;
  /** Allow SIGSTOP-style freezes (overlaps with a frozen holder are excused only without a fence). */
  freezes?: boolean;
  /** Draw only this kind of cluster. */
  shape?: ShapeClass;
}

/** Largest relative difference between two nodes' clock rates the margin must cover. */
export const CLOCK_DRIFT = 0.005;

const EVENTS: ScriptEvent[] = ['start', 'stop', 'promote', 'demote', 'failed', 'status'];

export function runSeed(seed: number, opts: SeedOptions = {}): SeedResult {
  const shapeRng = new Rng(seed * 7919 + 1);
  const shape = drawShape(shapeRng, opts.shape);
  const w = new World({ seed, peers: shape.peers, params: shape.params, services: shape.services });
  const rng = new Rng(seed * 104729 + 3);
  // Every node's clock runs at its own rate, within the documented bound.
  for (const p of shape.peers) w.setClockRate(p.name, 1 + (rng.next() - 0.5) * CLOCK_DRIFT);
  const faultClasses: Record<string, number> = {};
  const names = shape.peers.map((p) => p.name);
  const runners = shape.peers.filter((p) => p.runner).map((p) => p.name);
  const durationMs = opts.durationMs ?? 30_000;
  const heals: { atMs: number; fn: () => void }[] = [];
  const later = (ms: number, fn: () => void) => heals.push({ atMs: w.nowMs + ms, fn });
  let faults = 0;

  w.start();
  w.runFor(rng.int(500, 3000));
  while (w.nowMs < durationMs) {
    const next = w.nowMs + rng.int(100, 1500);
    heals.sort((a, b) => a.atMs - b.atMs);
    while (heals.length > 0 && heals[0]!.atMs <= next) {
      const h = heals.shift()!;
      w.runUntil(h.atMs);
      h.fn();
    }
    w.runUntil(next);
    faults++;
    const cls = applyFault(w, rng, names, runners, later, opts.freezes ?? true);
    faultClasses[cls] = (faultClasses[cls] ?? 0) + 1;
  }

  // Heal everything, then the cluster must converge within the spec's bound.
  for (const h of heals.sort((a, b) => a.atMs - b.atMs)) h.fn();
  w.healNetwork();
  // The rolling change is finished: every node has the cluster's timings again.
  for (const n of names) w.reload(n, { masterLeaseMs: shape.params.masterLeaseMs, demoteTimeoutMs: shape.params.demoteTimeoutMs });
  w.scripts = { minMs: 5, maxMs: 80, failP: {}, hangP: {}, termDiesP: 0.7, crashP: 0 };
  for (const n of names) {
    w.thaw(n);
    w.restart(n);
  }
  const p = shape.params;
  const scriptMs = (shape.services.length * 4 + 4) * 80;
  const boundMs = p.leaderTimeoutMs + p.masterLeaseMs + p.demoteTimeoutMs + scriptMs + p.autoRecoverWaitMs + 1000;
  const healedAt = w.nowMs;
  const memo = { lastMs: -Infinity };
  const converged = w.runUntilTrue(() => {
    operate(w, runners, memo);
    return convergedView(w, runners) === null;
  }, boundMs);
  // With the saved state of so many electors lost that the rest is no quorum,
  // nobody may elect a leader: that needs the operator (docs/OPERATIONS.md).
  const withState = shape.peers.filter((x) => x.elector && w.core(x.name)?.isRejoining() === false).length;
  const stateLostStuck = !converged && withState < shape.params.quorum;
  if (!converged && !stateLostStuck) {
    w.checker.fail(w.nowMs, 'liveness', `not converged ${boundMs}ms after healing at ${healedAt}ms: ${convergedView(w, runners)}`);
  }
  return {
    seed,
    violations: w.checker.violations,
    trace: w.trace,
    frozenExemptions: w.checker.frozenExemptions,
    excused: { ...w.checker.excusedByCause },
    faults,
    faultClasses,
    shape: describeShape(shape),
    shapeClass: shape.shapeClass,
    fence: shape.params.fenceConfigured,
    stateLostStuck,
  };
}

function describeShape(s: Shape & { shapeClass: ShapeClass }): string {
  const nodes = s.peers.map((p) => `${p.name}(${p.elector ? 'E' : ''}${p.runner ? 'R' : ''}${p.priority})`).join(' ');
  const svcs = s.services.map((x) => `${x.name}:${x.priority ?? '-'}`).join(' ');
  return `${s.shapeClass}: ${nodes} | services ${svcs} | quorum ${s.params.quorum}${s.params.fenceConfigured ? ' | fence' : ''}`;
}

/** The operator after the storm: undo maintenance, manual mode, stops and failures. */
function operate(w: World, runners: NodeName[], memo: { lastMs: number }): void {
  if (w.nowMs - memo.lastMs < 200) return;
  memo.lastMs = w.nowMs;
  for (const n of w.nodes.keys()) w.restart(n);
  const leaders = w.leaders();
  if (leaders.length !== 1) return;
  const s = w.core(leaders[0]!)!.state;
  if (s.maintenance) w.admin({ kind: 'maintenance', on: false });
  if (s.manualMaster) w.admin({ kind: 'elect' });
  for (const n of s.stopped) w.admin({ kind: 'start', node: n });
  for (const r of runners) {
    const rep = w.core(leaders[0]!)!.leaderViews()?.get(r)?.report;
    if (rep?.failed) w.admin({ kind: 'recover', node: r });
  }
}

/** null when converged, else what is missing. */
export function convergedView(w: World, runners: NodeName[]): string | null {
  const leaders = w.leaders();
  if (leaders.length !== 1) return `leaders: [${leaders.join(',')}]`;
  const L = leaders[0]!;
  for (const n of w.nodes.keys()) {
    const c = w.core(n);
    if (c !== null && c.leader !== L) return `${n} follows ${c.leader}`;
  }
  const s = w.core(L)!.state;
  if (s.maintenance || s.manualMaster || s.stopped.length > 0) return 'operator state not cleared';
  const m = s.master;
  if (m === null) return 'no master designated';
  if (!w.checker.fullyPromoted(m)) return `master ${m} not fully promoted`;
  const holders = w.checker.holders();
  if (holders.length !== 1) return `holders: [${holders.join(',')}]`;
  for (const r of runners) {
    if (r === m) continue;
    if (!w.checker.allStarted(r)) return `runner ${r} not started`;
  }
  return null;
}

function applyFault(
  w: World,
  rng: Rng,
  names: NodeName[],
  runners: NodeName[],
  later: (ms: number, fn: () => void) => void,
  freezes: boolean,
): string {
  const a = rng.pick(names);
  const b = rng.pick(names.filter((x) => x !== a));
  const dur = rng.int(300, 6000);
  const choice = rng.int(0, 22);
  switch (choice) {
    case 0: {
      const group = new Set(rng.shuffle([...names]).slice(0, rng.int(1, names.length - 1)));
      for (const x of names) for (const y of names) if (group.has(x) !== group.has(y)) w.link(x, y).cut = true;
      later(dur, () => {
        for (const x of names) for (const y of names) if (group.has(x) !== group.has(y)) w.link(x, y).cut = false;
      });
      return 'partition';
    }
    case 1:
      w.link(a, b).cut = true;
      w.link(b, a).cut = true;
      later(dur, () => {
        w.link(a, b).cut = false;
        w.link(b, a).cut = false;
      });
      return 'link-cut';
    case 2:
      w.link(a, b).cut = true;
      later(dur, () => {
        w.link(a, b).cut = false;
      });
      return 'one-way-cut';
    case 3: {
      const loss = 0.2 + rng.next() * 0.6;
      for (const y of names) if (y !== a) w.link(a, y).lossP = loss;
      later(dur, () => {
        for (const y of names) if (y !== a) w.link(a, y).lossP = 0;
      });
      return 'loss';
    }
    case 4: {
      const l = w.link(a, b);
      l.minDelayMs = 0;
      l.maxDelayMs = rng.int(50, 900);
      l.dupP = rng.chance(0.5) ? 0.3 : 0;
      later(dur, () => {
        l.minDelayMs = 0.2;
        l.maxDelayMs = 2;
        l.dupP = 0;
      });
      return 'delay-dup';
    }
    case 5:
    case 6: {
      w.crash(a);
      // Now and then the machine comes back without its state_dir.
      const loseState = rng.chance(0.05);
      // Now and then the machine stays down until the final heal.
      if (!rng.chance(0.1)) later(rng.int(200, 5000), () => w.restart(a, loseState));
      return 'crash';
    }
    case 7:
      if (!freezes) return 'none';
      w.freeze(a);
      later(rng.int(200, 4000), () => w.thaw(a));
      return 'freeze';
    case 8: {
      const ev = rng.pick(EVENTS);
      w.scripts.failP[ev] = 0.5;
      later(dur, () => {
        w.scripts.failP[ev] = 0;
      });
      return 'script-fail';
    }
    case 9: {
      const ev = rng.pick(EVENTS);
      w.scripts.hangP[ev] = 0.4;
      later(dur, () => {
        w.scripts.hangP[ev] = 0;
      });
      return 'script-hang';
    }
    case 10:
    case 11:
      w.admin({ kind: 'promote', node: rng.pick(runners) });
      return 'admin-promote';
    case 12:
      w.admin({ kind: 'demote' });
      later(dur, () => w.admin({ kind: 'elect' }));
      return 'admin-demote';
    case 13:
      w.admin({ kind: 'maintenance', on: true });
      later(dur, () => w.admin({ kind: 'maintenance', on: false }));
      return 'maintenance';
    case 14: {
      const r = rng.pick(runners);
      w.admin({ kind: 'stop', node: r });
      later(dur, () => w.admin({ kind: 'start', node: r }));
      return 'admin-stop';
    }
    case 15:
      w.admin({ kind: 'recover', node: rng.pick(runners) });
      return 'admin-recover';
    case 16:
      w.scripts.crashP = 0.02;
      later(dur, () => {
        w.scripts.crashP = 0;
      });
      return 'service-crash';
    case 17: {
      const svc = rng.pick(w.services).name;
      w.setDisabled(a, svc, true);
      later(dur, () => w.setDisabled(a, svc, false));
      return 'disabled';
    }
    case 18: {
      // Right after the next election, the new leader stops reaching someone.
      const since = w.events.length;
      w.runUntilTrue(() => w.events.slice(since).some((e) => e.ev.kind === 'leader-elected'), 5000);
      const l = w.leaders()[0];
      if (l === undefined) return 'cut-after-vote';
      const other = rng.pick(names.filter((x) => x !== l));
      w.link(l, other).cut = true;
      later(dur, () => {
        w.link(l, other).cut = false;
      });
      return 'cut-after-vote';
    }
    case 19: {
      // The leader dies right after a lease grant reached its master.
      const seen = w.grantsDelivered;
      w.runUntilTrue(() => w.grantsDelivered > seen, 3000);
      const l = w.leaders()[0];
      if (l === undefined) return 'crash-after-grant';
      w.crash(l);
      later(rng.int(200, 5000), () => w.restart(l, rng.chance(0.05)));
      return 'crash-after-grant';
    }
    case 20:
      // A short event-loop stall (GC, a slow fsync): scripts run on.
      if (!freezes) return 'none';
      w.freeze(a);
      later(rng.int(20, 400), () => w.thaw(a));
      return 'stall';
    case 22: {
      // A rolling change of the safety timings: one node reloads others' values.
      w.reload(a, { masterLeaseMs: rng.pick([600, 800, 1200]), demoteTimeoutMs: rng.pick([300, 600]) });
      return 'reload-timings';
    }
    case 21: {
      // Fences that are slow, fail, or succeed late.
      const okP = rng.next();
      w.decideFence = () => ({ ok: rng.chance(okP), ms: rng.int(100, 4000) });
      later(dur, () => {
        w.decideFence = undefined;
      });
      return 'slow-fence';
    }
  }
  return 'none';
}
