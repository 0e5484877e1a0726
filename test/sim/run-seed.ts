// One seed, one run: draw a cluster, torment it, heal it, and check it.
import type { CoreParams, Message, NodeName, PeerInfo, ScriptEvent, ServiceDef } from '../../src/core/types';
import { Rng } from './rng';
import { findFlaps, flapWindowMs, LivenessJudge, type Disturbance, type Violation } from './checker';
import { World } from './world';
import { watchdogTimeoutMs } from '../../src/core/runner';

/** Give every runner of a watchdog shape its device; each koinode sets its timeout from its own timings. */
function armWatchdogs(w: World, shape: Shape, p: CoreParams): number {
  const t = shape.watchdog ? watchdogTimeoutMs(p, 100) : null;
  if (t === null) return 0;
  for (const x of shape.peers) if (x.runner) w.setWatchdog(x.name);
  return t;
}

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
    promoteMaxLag: null,
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
  /** Every runner's machine has a watchdog (koinode's rule for the timeout, in tenths of a second). */
  watchdog: boolean;
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
  // Drawn last, so every other draw of a seed stays what it was.
  const watchdog = rng.chance(0.4) && watchdogTimeoutMs(params, 100) !== null;
  return { peers, services, params, shapeClass, watchdog };
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
  /** The runners' watchdog timeout (0: no watchdogs), and how many machines it reset. */
  watchdogMs: number;
  watchdogResets: number;
  /** Not converged because electors without their saved state leave no quorum (operator's turn). */
  stateLostStuck: boolean;
  /** What the liveness class of this seed kept broken and found (null: an ordinary seed). */
  liveness: LivenessOutcome | null;
  /** Leader or master changes that no change from outside explains (every seed). */
  flaps: number;
  /** Options to give `npm run sim` with KOI_SIM_SEED to replay this run ('' for none). */
  replayArgs: string;
}

/**
 * Liveness classes: after the final heal one fault stays for good (a dead
 * machine, a link cut both ways, one way, or two links cut), or the whole
 * run has a slow network that delivers every message late.
 */
export type LivenessClass = 'dead-node' | 'link-cut' | 'one-way-cut' | 'two-links' | 'slow-network';

export const LIVENESS_CLASSES: readonly LivenessClass[] = ['dead-node', 'link-cut', 'one-way-cut', 'two-links', 'slow-network'];

/** Share of the seeds of an ordinary sweep that run a liveness class. */
export const LIVENESS_SHARE = 0.2;

export interface LivenessOutcome {
  cls: LivenessClass;
  /** What stayed broken (or the slow network's delay and timings). */
  detail: string;
  /** Slow network: one-way delay range and the timing set, for grouping. */
  slowBucket: string | null;
  /** Slow network: the delay is beyond what the timings tolerate (measured, not judged). */
  tooSlow: boolean;
  /** Stretches without a master beyond the bound while one was possible. */
  stuck: number;
  flaps: number;
  /** Elections (leader-elected) in the judged stretch, and its length. */
  elections: number;
  judgedMs: number;
  noMasterMs: number;
  /** The kept faults leave no quorum of electors with a runner, all connected both ways. */
  masterImpossible: boolean;
  /** koi confirm-down the operator had to send for a dead machine that held the role in maintenance. */
  confirmDowns: number;
  /** A stretch beyond the bound excused because electors that lost their state leave no quorum. */
  stateLostStuck: boolean;
  /** What kept the first stuck stretch from ending, in short (null: not stuck). */
  stuckCause: string | null;
  /** Beyond the bound, but waiting by design: a live machine that may hold the role, that no electable quorum reaches. */
  safetyWait: boolean;
}

export interface SeedOptions {
  durationMs?: number;
  /** Allow SIGSTOP-style freezes (overlaps with a frozen holder are excused only without a fence). */
  freezes?: boolean;
  /** Draw only this kind of cluster. */
  shape?: ShapeClass;
  /**
   * Liveness class: one for every seed ('all' draws one per seed), none, or
   * (undefined) one for LIVENESS_SHARE of the seeds, drawn per seed.
   */
  liveness?: LivenessClass | 'all' | 'none';
  /** Pass every message through this on delivery (the wire codec). */
  wire?: (msg: Message, names: ReadonlySet<NodeName>) => Message;
  /**
   * Services folders change during the storm (a service added to or removed
   * from one runner): always, never, or (undefined) for RESCAN_SHARE of
   * the seeds, drawn per seed.
   */
  rescans?: boolean;
}

/** Share of ordinary seeds whose services folders change during the storm. */
export const RESCAN_SHARE = 0.2;

/** Whether `seed` changes services folders (its own generator: nothing else draws differently). */
export function rescansOf(seed: number, opt: boolean | undefined): boolean {
  return opt ?? new Rng(seed * 49979687 + 11).chance(RESCAN_SHARE);
}

/** The service a rescan adds or removes. */
const EXTRA = 'extra';

/**
 * The operator changes services folders: adds a service directory to one
 * runner (sometimes to every runner at once, a deployment) or removes the
 * one added before; takes one of the cluster's services out of one runner's
 * folder, or puts it back; renames one (another priority).
 */
function applyRescan(w: World, rng: Rng, runners: NodeName[]): string {
  const kind = rng.next();
  const r = rng.pick(runners);
  const now = w.servicesOf(r);
  if (kind < 0.5) {
    const targets = rng.chance(0.3) ? runners : [r];
    const priority = rng.pick([null, 5, 15, 25, 99]);
    let what = 'rescan-add';
    for (const t of targets) {
      const there = w.servicesOf(t);
      if (there.some((d) => d.name === EXTRA)) {
        w.setServices(t, there.filter((d) => d.name !== EXTRA));
        what = 'rescan-remove';
      } else w.setServices(t, [...there, { name: EXTRA, priority }]);
    }
    return what;
  }
  const base = rng.pick(w.services);
  if (kind < 0.8) {
    if (now.some((d) => d.name === base.name)) {
      w.setServices(r, now.filter((d) => d.name !== base.name));
      return 'rescan-take-out';
    }
    w.setServices(r, [...now, base]);
    return 'rescan-put-back';
  }
  if (!now.some((d) => d.name === base.name)) return 'none';
  const priority = rng.pick([null, 5, 15, 25, 35]);
  w.setServices(r, now.map((d) => (d.name === base.name ? { ...d, priority } : d)));
  return 'rescan-rename';
}

/** The liveness class of `seed` (its own generator: the shape and the storm draw as without it). */
export function livenessOf(seed: number, opt: SeedOptions['liveness']): LivenessClass | null {
  if (opt === 'none') return null;
  if (opt !== undefined && opt !== 'all') return opt;
  const r = new Rng(seed * 15485863 + 7);
  const inShare = r.chance(LIVENESS_SHARE);
  const cls = r.pick(LIVENESS_CLASSES);
  return opt === 'all' || inShare ? cls : null;
}

/** Largest relative difference between two nodes' clock rates the margin must cover. */
export const CLOCK_DRIFT = 0.005;

const EVENTS: ScriptEvent[] = ['start', 'stop', 'promote', 'demote', 'failed', 'status'];

export function runSeed(seed: number, opts: SeedOptions = {}): SeedResult {
  const shapeRng = new Rng(seed * 7919 + 1);
  const shape = drawShape(shapeRng, opts.shape);
  const live = livenessOf(seed, opts.liveness);
  const replayArgs = [
    opts.shape ? `--shape ${opts.shape}` : '',
    opts.liveness !== undefined && opts.liveness !== 'all' ? `--liveness ${opts.liveness}` : opts.liveness === 'all' ? '--liveness all' : '',
    opts.rescans === true ? '--rescans' : opts.rescans === false ? '--no-rescans' : '',
  ]
    .filter((x) => x !== '')
    .join(' ');
  if (live === 'slow-network') return runSlowSeed(seed, shape, opts, replayArgs);
  const w = new World({ seed, peers: shape.peers, params: shape.params, services: shape.services, wire: opts.wire });
  const watchdogMs = armWatchdogs(w, shape, shape.params);
  const rng = new Rng(seed * 104729 + 3);
  // Every node's clock runs at its own rate, within the documented bound.
  for (const p of shape.peers) w.setClockRate(p.name, 1 + (rng.next() - 0.5) * CLOCK_DRIFT);
  const faultClasses: Record<string, number> = {};
  const names = shape.peers.map((p) => p.name);
  const runners = shape.peers.filter((p) => p.runner).map((p) => p.name);
  const durationMs = opts.durationMs ?? 30_000;
  const p = shape.params;
  const rescans = rescansOf(seed, opts.rescans);
  const rescanRng = new Rng(seed * 86028121 + 13);
  const scriptMs = ((shape.services.length + (rescans ? 1 : 0)) * 4 + 4) * 80;
  const liveBoundMs = livenessBoundMs(p, scriptMs, 0);
  const flapMs = flapWindowMs(p, 4, shape.peers.filter((x) => x.elector).length);
  // A liveness seed spends part of its time after the heal, watched.
  const judgeMs = liveBoundMs + flapMs;
  const stormMs = live === null ? durationMs : Math.max(durationMs / 2, durationMs - judgeMs);
  const heals: { atMs: number; fn: () => void }[] = [];
  const later = (ms: number, fn: () => void) => {
    // The fault is in effect until its heal (the flap checker reads this).
    const d: Disturbance = { atMs: w.nowMs, what: 'a lasting fault', untilMs: Infinity };
    w.disturbances.push(d);
    heals.push({
      atMs: w.nowMs + ms,
      fn: () => {
        fn();
        d.untilMs = w.nowMs;
      },
    });
  };
  let faults = 0;

  w.start();
  w.runFor(rng.int(500, 3000));
  while (w.nowMs < stormMs) {
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
    if (cls !== 'none') w.disturb(cls);
    faultClasses[cls] = (faultClasses[cls] ?? 0) + 1;
    // (Not a disturbance: a rescan must not move the leader or the master.)
    if (rescans && rescanRng.chance(0.3)) {
      const r = applyRescan(w, rescanRng, runners);
      faultClasses[r] = (faultClasses[r] ?? 0) + 1;
    }
  }

  // Heal everything, then the cluster must converge within the spec's bound.
  for (const h of heals.sort((a, b) => a.atMs - b.atMs)) h.fn();
  w.healNetwork();
  // The rolling change is finished: every node has the cluster's timings again.
  for (const n of names) w.reload(n, { masterLeaseMs: shape.params.masterLeaseMs, demoteTimeoutMs: shape.params.demoteTimeoutMs });
  // Every folder holds the cluster's services again (an added one may stay).
  if (rescans) {
    for (const r of runners) {
      const extra = w.servicesOf(r).filter((d) => d.name === EXTRA);
      const now = w.servicesOf(r);
      const want = [...w.services, ...extra];
      if (JSON.stringify(now) !== JSON.stringify(want)) w.setServices(r, want);
    }
  }
  w.scripts = { minMs: 5, maxMs: 80, failP: {}, hangP: {}, termDiesP: 0.7, crashP: 0 };
  for (const n of names) {
    w.thaw(n);
    w.restart(n);
  }
  const boundMs = p.leaderTimeoutMs + p.masterLeaseMs + p.demoteTimeoutMs + scriptMs + p.autoRecoverWaitMs + 1000;
  const healedAt = w.nowMs;
  let stateLostStuck = false;
  let liveness: LivenessOutcome | null = null;
  if (live === null) {
    const memo = { lastMs: -Infinity };
    const converged = w.runUntilTrue(() => {
      operate(w, runners, memo);
      return convergedView(w, runners) === null;
    }, boundMs);
    // With the saved state of so many electors lost that the rest is no quorum,
    // nobody may elect a leader: that needs the operator (docs/OPERATIONS.md).
    const withState = shape.peers.filter((x) => x.elector && w.core(x.name)?.isRejoining() === false).length;
    stateLostStuck = !converged && withState < shape.params.quorum;
    if (!converged && !stateLostStuck) {
      w.checker.fail(w.nowMs, 'liveness', `not converged ${boundMs}ms after healing at ${healedAt}ms: ${convergedView(w, runners)}`);
    }
  } else {
    liveness = judgeAfterHeal(w, shape, live, runners, healedAt, liveBoundMs, judgeMs, new Rng(seed * 2750159 + 9));
    stateLostStuck = liveness.stateLostStuck;
  }
  const flaps = findFlaps(w.events, w.disturbances, flapMs);
  if (flaps.length > 0) w.checker.fail(flaps[0]!.atMs, 'flap', describeFlaps(flaps, flapMs));
  if (liveness !== null) liveness.flaps = flaps.filter((f) => f.atMs >= healedAt).length;
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
    watchdogMs,
    watchdogResets: w.watchdogResets,
    stateLostStuck,
    liveness,
    flaps: flaps.length,
    replayArgs,
  };
}

/**
 * The longest a cluster may go without a fully promoted master while a
 * quorum of electors and a promotable runner can reach each other, counted
 * from the change that took the master away (or the final heal):
 *   4 LT                   the loss is noticed (LT), one failed campaign and its pause, the winning one
 * + takeover_settle        one takeover by an elector that outranks the leader
 * + lease + demote + margin the old master's grants are waited out
 * + 3 LT + 3 × 220 ms       with a fence: up to two failed attempts and their pauses (LT, 2 LT)
 * + scripts                stop, demote, start and promote of every service, 80 ms each at most
 * + auto_recover_wait      a runner that failed in the storm recovers
 * + 1 s                    the operator's polling and commands
 * + 6 round trips          of the slowest link (votes, acknowledgements, the grant)
 */
export function livenessBoundMs(p: CoreParams, scriptMs: number, maxRttMs: number): number {
  const fenceMs = p.fenceConfigured ? 3 * p.leaderTimeoutMs + 3 * 220 : 0;
  return 4 * p.leaderTimeoutMs + p.takeoverSettleMs + p.masterLeaseMs + p.demoteTimeoutMs + p.safetyMarginMs + fenceMs + scriptMs + p.autoRecoverWaitMs + 1000 + 6 * maxRttMs;
}

function describeFlaps(flaps: { atMs: number; what: string; lastChange: { atMs: number; what: string } | null }[], windowMs: number): string {
  const f = flaps[0]!;
  const cause = f.lastChange === null ? 'none before it' : `the last was ${f.lastChange.what} at ${f.lastChange.atMs.toFixed(0)}ms`;
  return `${flaps.length} leader or master change(s) with no change from outside in the ${Math.round(windowMs)}ms before; first: ${f.what} (${cause})`;
}

/** The single fully promoted holder, named master by an up leader: a working master. */
export function masterPromoted(w: World): boolean {
  const hs = w.checker.holders(w.nowMs);
  if (hs.length !== 1) return false;
  const m = hs[0]!;
  if (!w.isUp(m) || !w.checker.fullyPromoted(m)) return false;
  return w.leaders().some((l) => w.core(l)!.state.master === m);
}

/** What the leader says, as `koi status` would show it: master, what it waits for, its runners. */
export function leaderStatus(w: World): string {
  const leaders = w.leaders();
  if (leaders.length === 0) {
    const roles = [...w.nodes.keys()].map((n) => {
      const c = w.core(n);
      return c === null ? `${n} down` : `${n} ${c.role}${c.leader !== null ? ` of ${c.leader}` : ''} e${c.epoch}`;
    });
    return `no leader (${roles.join(', ')})`;
  }
  return leaders
    .map((l) => {
      const c = w.core(l)!;
      const s = c.state;
      const flags = [s.maintenance ? 'maintenance' : '', s.manualMaster ? 'manual' : '', s.stopped.length > 0 ? `stopped ${s.stopped.join(',')}` : '']
        .filter((x) => x !== '')
        .join(' ');
      const frozen = (s as { frozenHolders?: string[] }).frozenHolders ?? [];
      // With what the checker knows of each blocker's machine, for the diagnosis.
      const truth = (n: NodeName) =>
        `${w.core(n) === null ? 'down' : 'up'}, ${w.checker.holders().includes(n) ? 'holds the role' : w.checker.heldInMaintenance(n) ? 'held the role in maintenance' : 'held nothing in maintenance'}`;
      const waiting = c.blockers().map((b) => `${b.reason} [truly: ${truth(b.node)}]`);
      const views = c.leaderViews();
      const runners: string[] = [];
      for (const [n, v] of views ?? []) {
        if (!c.peers.get(n)?.runner) continue;
        const heard = n === l || (v.lastReplyMs !== null && w.clock(l) - v.lastReplyMs <= c.params.leaderTimeoutMs);
        const r = v.report;
        const what = !heard ? 'unreachable' : r === null ? 'no report' : r.holding ? 'holding' : r.failed ? 'failed' : r.disabled ? 'disabled' : r.promotable ? 'promotable' : 'not promotable';
        runners.push(`${n} ${what}`);
      }
      return `leader ${l} (epoch ${c.epoch}) says master ${s.master ?? 'none'}${flags ? ` [${flags}]` : ''}${frozen.length > 0 ? `, frozenHolders ${frozen.join(',')}` : ''}; waiting for: ${waiting.length > 0 ? waiting.join('; ') : 'nothing'}; runners: ${runners.join(', ')}`;
    })
    .join(' | ');
}

/**
 * Electors that reach each other both ways, at least `quorum` of them, with a
 * runner that reaches all of them both ways: a description, or null when the
 * kept faults leave no such set (then no master is owed).
 */
export function connectedQuorum(w: World, peers: PeerInfo[], quorum: number, down: ReadonlySet<NodeName>, voters: (n: NodeName) => boolean = () => true): string | null {
  const electors = peers.filter((p) => p.elector && !down.has(p.name) && voters(p.name)).map((p) => p.name);
  const runners = peers.filter((p) => p.runner && !down.has(p.name)).map((p) => p.name);
  let best: string | null = null;
  for (let mask = 1; mask < 1 << electors.length; mask++) {
    const set = electors.filter((_, i) => (mask >> i) & 1);
    if (set.length < quorum) continue;
    if (!set.every((a) => set.every((b) => w.twoWay(a, b)))) continue;
    const r = runners.find((x) => set.every((e) => w.twoWay(x, e)));
    if (r === undefined) continue;
    best = `electors ${set.join(',')} (quorum ${quorum}) and runner ${r} reach each other both ways`;
    break;
  }
  return best;
}

/** The current master as the checker sees it (a holder), else a leader's choice. */
function currentMaster(w: World): NodeName | null {
  const hs = w.checker.holders();
  if (hs.length > 0) return hs[0]!;
  for (const l of w.leaders()) {
    const m = w.core(l)!.state.master;
    if (m !== null) return m;
  }
  return null;
}

/** Keep the class's fault after the final heal; then judge for `judgeMs`. */
function judgeAfterHeal(
  w: World,
  shape: Shape,
  live: Exclude<LivenessClass, 'slow-network'>,
  runners: NodeName[],
  healedAt: number,
  boundMs: number,
  judgeMs: number,
  lrng: Rng,
): LivenessOutcome {
  const names = shape.peers.map((x) => x.name);
  const p = shape.params;
  const down = new Set<NodeName>();
  // Half the time the fault is aimed at the master (the interesting case), else anywhere.
  const aim = (): [NodeName, NodeName] => {
    const m = currentMaster(w);
    const a = m !== null && lrng.chance(0.5) ? m : lrng.pick(names);
    return [a, lrng.pick(names.filter((x) => x !== a))];
  };
  const cut = (a: NodeName, b: NodeName, twoWay: boolean): string => {
    w.link(a, b).cut = true;
    if (twoWay) w.link(b, a).cut = true;
    return twoWay ? `${a}<->${b}` : `${a}->${b}`;
  };
  let detail: string;
  switch (live) {
    case 'dead-node': {
      const m = currentMaster(w);
      const d = m !== null && lrng.chance(0.5) ? m : lrng.pick(names);
      w.crash(d);
      down.add(d);
      detail = `${d} dead${d === m ? ' (the master)' : ''}`;
      break;
    }
    case 'link-cut': {
      const [a, b] = aim();
      detail = `cut ${cut(a, b, true)}`;
      break;
    }
    case 'one-way-cut': {
      const [a, b] = aim();
      detail = `cut ${lrng.chance(0.5) ? cut(a, b, false) : cut(b, a, false)}`;
      break;
    }
    case 'two-links': {
      const [a, b] = aim();
      let [c, d] = aim();
      for (let i = 0; i < 10 && ((c === a && d === b) || (c === b && d === a)); i++) [c, d] = aim();
      const one = cut(a, b, lrng.chance(0.5));
      const two = lrng.chance(0.5) ? cut(c, d, true) : cut(c, d, false);
      detail = `cut ${one} and ${two}`;
      break;
    }
  }
  w.disturb(`kept broken: ${detail}`);
  const possible = connectedQuorum(w, shape.peers, p.quorum, down);
  const judge = new LivenessJudge(boundMs, healedAt);
  const electionsBefore = w.events.filter((e) => e.ev.kind === 'leader-elected').length;
  const memo = { lastMs: -Infinity };
  const blockedSince = new Map<NodeName, number>();
  let confirmDowns = 0;
  let stateLostStuck = false;
  let stuckCause: string | null = null;
  let safetyWait = false;
  // Runners some leader named master: with those that held the role in
  // maintenance, the only ones that may block after it (issue 18).
  const designated = new Set<NodeName>();
  let seenEvents = 0;
  // As `koi status` tells her, the operator confirms a machine that is
  // really off down, where nothing else frees its role: no fence, and it may
  // have held the role (named master once, or held it in maintenance). Not
  // before timing alone would have freed any other node. A dead machine that
  // could not have held the role gets no such help: blocking on it is stuck.
  const patienceMs = p.leaderTimeoutMs + p.masterLeaseMs + p.demoteTimeoutMs + p.safetyMarginMs;
  const confirmable = (n: NodeName) => down.has(n) && !p.fenceConfigured && (designated.has(n) || w.checker.heldInMaintenance(n));
  w.runUntilTrue(() => {
    operate(w, runners, memo, down);
    for (; seenEvents < w.events.length; seenEvents++) {
      const ev = w.events[seenEvents]!.ev;
      if (ev.kind === 'master-designated') designated.add(ev.master);
    }
    const leader = w.leaders()[0];
    const blockers = leader === undefined ? [] : w.core(leader)!.blockers().map((b) => b.node);
    for (const n of [...blockedSince.keys()]) if (!blockers.includes(n)) blockedSince.delete(n);
    for (const n of blockers) {
      if (!confirmable(n)) continue;
      const since = blockedSince.get(n) ?? w.nowMs;
      blockedSince.set(n, since);
      if (w.nowMs - since >= patienceMs && memo.lastMs === w.nowMs) {
        w.admin({ kind: 'confirm-down', node: n, wallMs: Math.round(w.nowMs) });
        confirmDowns++;
        judge.operatorActed(w.nowMs);
        blockedSince.set(n, w.nowMs);
      }
    }
    judge.observe(
      w.nowMs,
      masterPromoted(w),
      () => {
        if (possible === null) return null;
        // Electors still rejoining after a lost state do not vote: without
        // them, is there still such a quorum? If not, it is the operator's turn.
        const voting = connectedQuorum(w, shape.peers, p.quorum, down, (n) => w.core(n)?.isRejoining() === false);
        if (voting === null) stateLostStuck = true;
        // Safety first: without a fence, a live machine that may have held the
        // role in maintenance blocks until a leader reaches it. If no quorum
        // that reaches it both ways can form, that wait is by design.
        const leader = w.leaders()[0];
        for (const b of leader === undefined ? [] : w.core(leader)!.blockers().map((x) => x.node)) {
          if (down.has(b) || p.fenceConfigured || !(designated.has(b) || w.checker.heldInMaintenance(b))) continue;
          if (connectedQuorum(w, shape.peers, p.quorum, down, (n) => w.core(n)?.isRejoining() === false && w.twoWay(n, b)) === null) {
            safetyWait = true;
            return null;
          }
        }
        return voting;
      },
      () => {
        stuckCause ??= stuckCauseOf(w, down);
        return leaderStatus(w);
      },
    );
    return false;
  }, judgeMs);
  for (const v of judge.stuck) w.checker.fail(v.atMs, v.kind, `after ${detail}: ${v.text}`);
  return {
    cls: live,
    detail,
    slowBucket: null,
    tooSlow: false,
    stuck: judge.stuck.length,
    flaps: 0,
    elections: w.events.filter((e) => e.ev.kind === 'leader-elected').length - electionsBefore,
    judgedMs: w.nowMs - healedAt,
    noMasterMs: judge.noMasterMs,
    masterImpossible: possible === null,
    confirmDowns,
    stateLostStuck: stateLostStuck && judge.stuck.length === 0,
    stuckCause,
    safetyWait: safetyWait && judge.stuck.length === 0,
  };
}

/** In a few words, what keeps the cluster without a master (for the sweep's counts). */
function stuckCauseOf(w: World, down: ReadonlySet<NodeName>): string {
  const l = w.leaders()[0];
  if (l === undefined) return 'no leader';
  const c = w.core(l)!;
  const blockers = c.blockers().map((b) => b.node);
  if (c.state.master === null && blockers.length > 0) {
    const b = blockers[0]!;
    if (down.has(b)) return w.checker.heldInMaintenance(b) ? 'waits for a dead machine that held the role in maintenance' : 'waits for a dead machine that held nothing in maintenance';
    return w.checker.holders().includes(b) ? 'waits for a holder it cannot reach' : 'waits for a live machine it cannot reach, holding nothing';
  }
  const views = c.leaderViews();
  const reached = [...(views ?? new Map())].filter(([n, v]) => c.peers.get(n)?.runner && (n === l || (v.lastReplyMs !== null && w.clock(l) - v.lastReplyMs <= c.params.leaderTimeoutMs)));
  if (reached.length === 0) return 'leader reaches no runner';
  if (c.state.master !== null) return 'master designated, not fully promoted';
  return 'no master chosen, nothing waited for';
}

interface SlowTimings {
  name: string;
  heartbeatIntervalMs: number;
  leaderTimeoutMs: number;
  masterLeaseMs: number;
}

/** The simulator's own timings, koi's defaults, and defaults doubled (takeover_settle is 4 LT, as koinode sets it). */
const SLOW_TIMINGS: readonly SlowTimings[] = [
  { name: 'sim', heartbeatIntervalMs: 100, leaderTimeoutMs: 500, masterLeaseMs: 800 },
  { name: 'default', heartbeatIntervalMs: 200, leaderTimeoutMs: 1000, masterLeaseMs: 1500 },
  { name: 'long', heartbeatIntervalMs: 200, leaderTimeoutMs: 2000, masterLeaseMs: 3000 },
];

/** One-way delay ranges of the slow network (every message delivered, reordered within the range). */
const SLOW_DELAYS: readonly [number, number][] = [
  [60, 120],
  [120, 200],
  [240, 300],
  [320, 400],
];

const TICK_MS = 10;

/**
 * Whether timings tolerate a round trip: a leader must hear a quorum answer
 * a heartbeat within leader_timeout of sending it, and heartbeats go out
 * every heartbeat_interval, so round trip + interval + a tick must fit in
 * leader_timeout (the same makes a campaign's votes arrive in time); and a
 * grant echoes the runner's clock from one round trip and an interval
 * before it arrives, and must arrive with lease left until the next one.
 * null when tolerated, else why not.
 */
export function tooSlowFor(p: CoreParams, maxOneWayMs: number): string | null {
  const rtt = 2 * maxOneWayMs;
  // The rule docs/ARCHITECTURE.md states (the acknowledgement window must fit in leader_timeout).
  const toleratedMs = (p.leaderTimeoutMs - p.heartbeatIntervalMs) / 1.25;
  if (rtt > toleratedMs) return `round trip ${rtt}ms > (leader_timeout - heartbeat) / 1.25 = ${Math.floor(toleratedMs)}ms`;
  if (rtt + p.heartbeatIntervalMs + TICK_MS > p.leaderTimeoutMs) {
    return `round trip ${rtt}ms + heartbeat ${p.heartbeatIntervalMs}ms > leader_timeout ${p.leaderTimeoutMs}ms`;
  }
  if (rtt + 2 * p.heartbeatIntervalMs + 2 * TICK_MS > p.masterLeaseMs - p.safetyMarginMs) {
    return `round trip ${rtt}ms + 2 heartbeats > master_lease ${p.masterLeaseMs}ms - margin`;
  }
  return null;
}

/** A whole run on a network that delivers everything, late; no other fault. */
function runSlowSeed(seed: number, shape: Shape & { shapeClass: ShapeClass }, opts: SeedOptions, replayArgs: string): SeedResult {
  const lrng = new Rng(seed * 2750159 + 9);
  const t = lrng.pick(SLOW_TIMINGS);
  const [minMs, maxMs] = lrng.pick(SLOW_DELAYS);
  const p: CoreParams = {
    ...shape.params,
    heartbeatIntervalMs: t.heartbeatIntervalMs,
    leaderTimeoutMs: t.leaderTimeoutMs,
    masterLeaseMs: t.masterLeaseMs,
    takeoverSettleMs: 4 * t.leaderTimeoutMs,
  };
  const w = new World({ seed, peers: shape.peers, params: p, services: shape.services, wire: opts.wire });
  const watchdogMs = armWatchdogs(w, shape, p);
  const rng = new Rng(seed * 104729 + 3);
  for (const x of shape.peers) w.setClockRate(x.name, 1 + (rng.next() - 0.5) * CLOCK_DRIFT);
  for (const a of shape.peers) {
    for (const b of shape.peers) {
      if (a === b) continue;
      const l = w.link(a.name, b.name);
      l.minDelayMs = minMs;
      l.maxDelayMs = maxMs;
    }
  }
  const slow = tooSlowFor(p, maxMs);
  const scriptMs = (shape.services.length * 4 + 4) * 80;
  const boundMs = livenessBoundMs(p, scriptMs, 2 * maxMs);
  const flapMs = flapWindowMs(p, 2 * maxMs, shape.peers.filter((x) => x.elector).length);
  // Twice the usual length: the first stretch is the boot, the rest shows churn.
  const runMs = 2 * (opts.durationMs ?? 30_000);
  const detail = `one-way delay ${minMs}-${maxMs}ms, timings ${t.name} (heartbeat ${t.heartbeatIntervalMs}, leader_timeout ${t.leaderTimeoutMs}, lease ${t.masterLeaseMs})${slow !== null ? `: too slow for the timings (${slow})` : ''}`;
  const judge = new LivenessJudge(boundMs, 0, slow === null);
  w.start();
  w.runUntilTrue(() => {
    judge.observe(w.nowMs, masterPromoted(w), () => 'a full mesh of every node is up', () => leaderStatus(w));
    return false;
  }, runMs);
  for (const v of judge.stuck) w.checker.fail(v.atMs, v.kind, `${detail}: ${v.text}`);
  const flaps = findFlaps(w.events, w.disturbances, flapMs);
  if (flaps.length > 0 && slow === null) w.checker.fail(flaps[0]!.atMs, 'flap', `${detail}: ${describeFlaps(flaps, flapMs)}`);
  return {
    seed,
    violations: w.checker.violations,
    trace: w.trace,
    frozenExemptions: w.checker.frozenExemptions,
    excused: { ...w.checker.excusedByCause },
    faults: 0,
    faultClasses: {},
    shape: describeShape(shape),
    shapeClass: shape.shapeClass,
    fence: p.fenceConfigured,
    watchdogMs,
    watchdogResets: w.watchdogResets,
    stateLostStuck: false,
    liveness: {
      cls: 'slow-network',
      detail,
      slowBucket: `${minMs}-${maxMs}ms ${t.name} ${t.heartbeatIntervalMs}/${t.leaderTimeoutMs}/${t.masterLeaseMs}`,
      tooSlow: slow !== null,
      stuck: judge.episodes,
      flaps: flaps.length,
      elections: w.events.filter((e) => e.ev.kind === 'leader-elected').length,
      judgedMs: runMs,
      noMasterMs: judge.noMasterMs,
      masterImpossible: false,
      confirmDowns: 0,
      stateLostStuck: false,
      stuckCause: null,
      safetyWait: false,
    },
    flaps: flaps.length,
    replayArgs,
  };
}

function describeShape(s: Shape & { shapeClass: ShapeClass }): string {
  const nodes = s.peers.map((p) => `${p.name}(${p.elector ? 'E' : ''}${p.runner ? 'R' : ''}${p.priority})`).join(' ');
  const svcs = s.services.map((x) => `${x.name}:${x.priority ?? '-'}`).join(' ');
  return `${s.shapeClass}: ${nodes} | services ${svcs} | quorum ${s.params.quorum}${s.params.fenceConfigured ? ' | fence' : ''}${s.watchdog ? ' | watchdogs' : ''}`;
}

/** The operator after the storm: undo maintenance, manual mode, stops and failures; boot what is down (but the machines kept dead). */
function operate(w: World, runners: NodeName[], memo: { lastMs: number }, dead: ReadonlySet<NodeName> = new Set()): void {
  if (w.nowMs - memo.lastMs < 200) return;
  memo.lastMs = w.nowMs;
  for (const n of w.nodes.keys()) if (!dead.has(n)) w.restart(n);
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
      if (choice === 6 && rng.chance(0.5)) {
        // kill -9 of koinode alone: its scripts run on until it is started again.
        w.killKoinode(a);
        later(rng.int(200, 4000), () => w.restart(a));
        return 'koinode-kill';
      }
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
