// A simulated cluster on a virtual clock: cores of real KoiNodes, a network
// that loses, delays, duplicates, reorders and partitions, scripts that are
// slow, fail or hang, machines that crash, restart or freeze. Every random
// choice comes from one seeded generator, so one seed replays one run.
import { KoiNode } from '../../src/core/node';
import { applyReady } from '../../src/daemon/effects';
import type {
  AdminCommand,
  AdminReply,
  CoreEvent,
  CoreParams,
  Message,
  NodeName,
  PeerInfo,
  PersistedState,
  RunRequest,
  ScriptEvent,
  ServiceDef,
} from '../../src/core/types';
import { assertNever } from '../../src/core/types';
import { watchdogTimeoutMs } from '../../src/core/runner';
import { Checker, type Disturbance } from './checker';
import { Rng } from './rng';

export interface ScriptModel {
  minMs: number;
  maxMs: number;
  /** Probability that a script of this event exits 1. */
  failP: Partial<Record<ScriptEvent, number>>;
  /** Probability that a script of this event hangs until it is killed. */
  hangP: Partial<Record<ScriptEvent, number>>;
  /** Probability that a hanging script dies on SIGTERM (else it needs SIGKILL). */
  termDiesP: number;
  /** Probability that a status finds its service dead (exit 92). */
  crashP: number;
}

/** Trace lines kept (the tail); KOI_SIM_TAIL asks for more when replaying a seed. */
const TRACE_KEEP = Math.max(300, Number(process.env.KOI_SIM_TAIL ?? 0));

export interface LinkState {
  cut: boolean;
  lossP: number;
  dupP: number;
  minDelayMs: number;
  maxDelayMs: number;
}

export interface WorldOptions {
  seed: number;
  peers: PeerInfo[];
  params: CoreParams;
  services: ServiceDef[];
  tickMs?: number;
  fenceOkP?: number;
  /** Check the two-masters invariant (off only for quorum-less set-ups). */
  safetyChecked?: boolean;
  /**
   * What a message becomes on its way (e.g. through the protobuf codec of
   * src/transport); identity when absent.
   */
  wire?: (msg: Message, names: ReadonlySet<NodeName>) => Message;
}

interface SimRun {
  req: RunRequest;
  incarnation: number;
  hang: boolean;
  done: boolean;
  /** Its koinode was killed: it runs on, and only the checker hears of its end. */
  orphan?: boolean;
  /** The runner stopped it early (lease ran out, services stopping): its end is no verdict. */
  cut?: boolean;
}

/** How often an open link's hello is modelled (a real one says it once per connection). */
const HELLO_MS = 500;

interface SimNode {
  peer: PeerInfo;
  core: KoiNode | null;
  frozen: boolean;
  incarnation: number;
  persisted: PersistedState | null;
  runs: Map<number, SimRun>;
  /** Inputs that arrived while frozen, delivered on thaw. */
  deferred: (() => void)[];
  frozenAtMs?: number;
  /** The machine's watchdog device, if it has one (survives koinode restarts, not machine crashes). */
  wd: SimWatchdog | null;
  /** koinode was killed (kill -9) while the machine and its scripts run on. */
  killed: boolean;
  /** Its runner held the role when koinode was killed (koinode's holding.json). */
  heldAtKill: boolean;
  /** Every service koinode knew when it last stopped, removed ones not yet forgotten included (state_dir/services.json). */
  removedKept: ServiceDef[];
}

interface SimWatchdog {
  /** The device's timeout, as the koinode that last armed it set it. */
  timeoutMs: number;
  /** A test's fixed timeout for every koinode (else each computes its own at start, as koinode does). */
  fixedMs: number | null;
  /** The running koinode's T (null: its timings leave no room for a watchdog). */
  koinodeMs: number | null;
  armed: boolean;
  /** The koinode incarnation that opened it: only that one can close it with the magic character. */
  openedBy: number;
  lastFeedMs: number;
  /** A check of the timer is scheduled. */
  checkPending: boolean;
}

/** How long a machine reset by its watchdog takes to boot again. */
const WATCHDOG_REBOOT_MS = 3000;

interface Ev {
  atMs: number;
  seq: number;
  fn: () => void;
}

/** The stall koinode tolerates before a holder lets go (its STALL_LIMIT_MS). */
const STALL_LIMIT_MS = 150;

const QUIET: LinkState = { cut: false, lossP: 0, dupP: 0, minDelayMs: 0.2, maxDelayMs: 2 };

export class World {
  nowMs = 0;
  readonly rng: Rng;
  readonly checker: Checker;
  readonly nodes = new Map<NodeName, SimNode>();
  readonly params: CoreParams;
  readonly services: ServiceDef[];
  readonly trace: string[] = [];
  readonly replies = new Map<number, AdminReply>();
  readonly events: { atMs: number; node: NodeName; ev: CoreEvent }[] = [];
  /** Every script run started, in order. */
  readonly runLog: { atMs: number; node: NodeName; service: string; event: ScriptEvent; urgent: boolean }[] = [];
  scripts: ScriptModel = { minMs: 5, maxMs: 80, failP: {}, hangP: {}, termDiesP: 0.7, crashP: 0 };
  fenceOkP: number;
  /** Scenario hook: force a fence's outcome and duration (undefined: the random model decides). */
  decideFence?: (target: NodeName) => { ok: boolean; ms: number } | undefined;
  /** Every fence attempt started, in order. */
  readonly fenceLog: { atMs: number; by: NodeName; target: NodeName }[] = [];
  /** Scenario hook: force a script's outcome (undefined: the random model decides). */
  decide?: (node: NodeName, req: RunRequest) => { exitCode: number | 'hang'; ms?: number; score?: number; vanished?: boolean } | undefined;
  /**
   * Every change from outside the cores (crash, restart, freeze, thaw, reload,
   * admin command, disabled file, network change), for the flap checker: a
   * leader or master change needs one of these shortly before it. Drivers
   * that change links by hand say so with `disturb`.
   */
  readonly disturbances: Disturbance[] = [];
  private readonly links = new Map<string, LinkState>();
  private heap: Ev[] = [];
  private seq = 0;
  private nextIncarnation = 1;
  private nextRequestId = 1;
  private readonly tickMs: number;
  private stopped = false;
  private readonly wire: (msg: Message, names: ReadonlySet<NodeName>) => Message;
  private readonly names: ReadonlySet<NodeName>;

  constructor(opts: WorldOptions) {
    this.rng = new Rng(opts.seed);
    this.params = opts.params;
    this.services = opts.services;
    this.tickMs = opts.tickMs ?? 10;
    this.wire = opts.wire ?? ((m) => m);
    this.names = new Set(opts.peers.map((p) => p.name));
    this.fenceOkP = opts.fenceOkP ?? 0.9;
    this.checker = new Checker(opts.services, opts.params.fenceConfigured, opts.safetyChecked ?? true, opts.params.demoteTimeoutMs);
    this.checker.electors = opts.peers.filter((p) => p.elector).map((p) => p.name);
    for (const p of opts.peers) {
      this.nodes.set(p.name, { peer: p, core: null, frozen: false, incarnation: 0, persisted: null, runs: new Map(), deferred: [], wd: null, killed: false, heldAtKill: false, removedKept: [] });
    }
  }

  /** Record a change from outside the cores (see `disturbances`). */
  disturb(what: string, masterOnly = false): void {
    const last = this.disturbances[this.disturbances.length - 1];
    if (last !== undefined && last.atMs === this.nowMs && last.what === what) return;
    this.disturbances.push(masterOnly ? { atMs: this.nowMs, what, masterOnly } : { atMs: this.nowMs, what });
  }

  // ---- clock ---------------------------------------------------------------

  private at(atMs: number, fn: () => void): void {
    const ev = { atMs, seq: this.seq++, fn };
    const h = this.heap;
    h.push(ev);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (less(h[parent]!, ev)) break;
      h[i] = h[parent]!;
      i = parent;
    }
    h[i] = ev;
  }

  private pop(): Ev | undefined {
    const h = this.heap;
    if (h.length === 0) return undefined;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length === 0) return top;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      let best = last;
      if (l < h.length && less(h[l]!, best)) {
        m = l;
        best = h[l]!;
      }
      if (r < h.length && less(h[r]!, best)) m = r;
      if (m === i) break;
      h[i] = h[m]!;
      i = m;
    }
    h[i] = last;
    return top;
  }

  start(): void {
    for (const name of this.nodes.keys()) this.boot(name);
    // Links (re)connect and say hello: modelled as a hello on every open link every HELLO_MS.
    const hellos = () => {
      if (this.stopped) return;
      for (const a of this.nodes.keys()) for (const b of this.nodes.keys()) if (a !== b) this.sendHello(a, b);
      this.at(this.nowMs + HELLO_MS, hellos);
    };
    this.at(this.nowMs, hellos);
    const tick = () => {
      if (this.stopped) return;
      for (const n of this.nodes.values()) {
        if (n.core === null || n.frozen) continue;
        this.call(n, () => n.core!.tick(this.clock(n.peer.name)));
        this.watchdogStep(n);
      }
      this.at(this.nowMs + this.tickMs, tick);
    };
    this.at(this.nowMs, tick);
  }

  runUntil(tMs: number): void {
    while (this.heap.length > 0 && this.heap[0]!.atMs <= tMs) {
      const ev = this.pop()!;
      this.nowMs = ev.atMs;
      ev.fn();
    }
    // Never backwards: a scenario may ask for an instant that has passed.
    this.nowMs = Math.max(this.nowMs, tMs);
  }

  runFor(ms: number): void {
    this.runUntil(this.nowMs + ms);
  }

  /** Run until `pred` holds (checked every tick); false if it never did. */
  runUntilTrue(pred: () => boolean, maxMs: number): boolean {
    const end = this.nowMs + maxMs;
    while (this.nowMs < end) {
      if (pred()) return true;
      this.runFor(this.tickMs);
    }
    return pred();
  }

  // ---- nodes -----------------------------------------------------------------

  private log(text: string): void {
    this.trace.push(`${this.nowMs.toFixed(1).padStart(9)} ${text}`);
    if (this.trace.length > TRACE_KEEP + 100) this.trace.splice(0, this.trace.length - TRACE_KEEP);
  }

  private boot(name: NodeName, stateLost = false, interrupted: string[] = []): void {
    const n = this.nodes.get(name)!;
    n.incarnation = this.nextIncarnation++;
    n.frozen = false;
    n.deferred = [];
    n.runs.clear();
    this.log(`${name} boots (incarnation ${n.incarnation})`);
    this.disturb(`${name} boots`);
    this.checker.booted(name);
    const defs = this.servicesOf(name);
    const kept = n.removedKept.filter((d) => !defs.some((x) => x.name === d.name));
    this.checker.bootServices(name, defs, kept);
    for (const d of defs) this.checker.setDisabled(name, d.name, this.disabled.get(name)?.has(d.name) ?? false);
    n.core = new KoiNode({
      self: name,
      // Like koinode: its own roles it knows, a peer's only once it hears from it.
      peers: [...this.nodes.values()].map((x) => (x.peer.name === name ? this.helloOf(name) : { name: x.peer.name, elector: false, runner: false, priority: 0 })),
      params: this.paramsOf(name),
      services: defs.map((d) => ({ ...d, disabled: this.disabled.get(name)?.has(d.name) ?? false })),
      removed: kept,
      incarnation: n.incarnation,
      nowMs: this.clock(name),
      persisted: n.persisted,
      stateLost,
      interrupted,
    });
    // A leader's heartbeats to itself never cross the network: watch them too.
    const core = n.core as unknown as { send(to: NodeName, msg: Message): void };
    const send = core.send.bind(core);
    const inc = n.incarnation;
    core.send = (to, msg) => {
      if (to === name) this.observeDelivery(name, inc, msg);
      send(to, msg);
    };
    // Like koinode's edge: its T from its own timings at start, and a device
    // it can use reported before the first tick (it cannot tell whether a
    // predecessor left it running, and does not touch it).
    if (n.wd !== null) n.wd.koinodeMs = n.wd.fixedMs ?? watchdogTimeoutMs(this.paramsOf(name), 100);
    if (n.wd !== null && n.wd.koinodeMs !== null && n.core.runner !== null) n.core.step({ kind: 'watchdog', state: 'ready' }, this.clock(name));
    this.flush(n);
  }

  /**
   * What koinode's edge does at start after a kill (src/daemon/run-journal.ts):
   * kill the scripts its predecessor left running, and name the services
   * that may be promoted. Off only in tests that remove the rule.
   */
  reapOrphans = true;
  /** koinode's holding.json: a predecessor killed while holding makes every service suspect. */
  recordHolding = true;

  /** kill -9 of koinode alone: the machine, its services and running scripts carry on. */
  killKoinode(name: NodeName): void {
    const n = this.nodes.get(name)!;
    if (n.core === null) return;
    this.log(`${name}'s koinode is killed (${n.runs.size} scripts run on)`);
    this.disturb(`${name}'s koinode is killed`);
    n.heldAtKill = n.core.runner?.mayHold() ?? false;
    n.removedKept = this.keepRemoved ? this.knownOf(n) : [];
    n.core = null;
    // Linux pings a watchdog closed without the magic character.
    const wd = n.wd;
    if (wd !== null && wd.armed) {
      wd.lastFeedMs = this.nowMs;
      wd.openedBy = 0;
      this.scheduleWatchdogCheck(n, wd);
    }
    n.frozen = false;
    n.deferred = [];
    n.killed = true;
    for (const r of n.runs.values()) r.orphan = true;
    // Like a frozen koinode: nothing demotes its services now.
    this.checker.frozen(name);
  }

  /** The whole machine goes down: koinode and every service on it. */
  crash(name: NodeName): void {
    const n = this.nodes.get(name)!;
    if (n.killed) {
      // Down with its orphaned scripts.
      n.killed = false;
      for (const r of n.runs.values()) r.done = true;
      n.runs.clear();
      this.log(`${name} crashes`);
      this.disturb(`${name} crashes`);
      if (n.wd !== null) n.wd = { ...n.wd, armed: false, openedBy: 0, lastFeedMs: -Infinity, checkPending: false };
      this.checker.machineDown(name);
      return;
    }
    if (n.core === null) return;
    this.log(`${name} crashes`);
    this.disturb(`${name} crashes`);
    n.removedKept = this.keepRemoved ? this.knownOf(n) : [];
    n.core = null;
    n.frozen = false;
    n.deferred = [];
    for (const r of n.runs.values()) r.done = true;
    n.runs.clear();
    // The device resets with the machine.
    if (n.wd !== null) n.wd = { ...n.wd, armed: false, openedBy: 0, lastFeedMs: -Infinity, checkPending: false };
    this.checker.machineDown(name);
  }

  /** Boot koinode again; `loseState`: its state_dir was lost with the machine. */
  restart(name: NodeName, loseState = false): void {
    const n = this.nodes.get(name)!;
    if (n.core !== null) return;
    let interrupted: string[] = [];
    if (n.killed) {
      n.killed = false;
      if (this.reapOrphans) {
        const suspect = new Set<string>();
        for (const r of [...n.runs.values()]) {
          if (r.done) continue;
          if (r.req.mayHold || r.req.event === 'promote' || r.req.event === 'demote') suspect.add(r.req.service);
          this.endRun(n, r, null, 'SIGKILL');
        }
        interrupted = [...suspect];
      }
      // (Like koinode: every service it knows, those kept as removed included.)
      if (this.recordHolding && n.heldAtKill) interrupted = [...this.servicesOf(name), ...n.removedKept].map((d) => d.name);
      // After the reaping: the orphans' ends are not the new koinode's boot checks.
      this.checker.koinodeRestarted(this.nowMs, name);
    }
    if (loseState) {
      this.log(`${name} lost its saved state`);
      n.persisted = null;
      this.checker.stateLost(this.nowMs, name);
      this.stateLosses++;
    }
    this.boot(name, loseState, interrupted);
  }

  /** Restarts that came back without their saved state. */
  stateLosses = 0;
  /** Lease grants that reached their runner. */
  grantsDelivered = 0;
  private readonly clockRates = new Map<NodeName, number>();

  /** Node `name`'s clock runs at `rate` × real time (1: exact). */
  setClockRate(name: NodeName, rate: number): void {
    this.clockRates.set(name, rate);
  }

  private readonly nodeParams = new Map<NodeName, Partial<CoreParams>>();

  /** Node `name`'s own settings: the cluster's, with what was changed for it alone. */
  paramsOf(name: NodeName): CoreParams {
    return { ...this.params, ...this.nodeParams.get(name) };
  }

  /** A reload on `name` changes some of its settings (the others keep theirs). */
  reload(name: NodeName, over: Partial<CoreParams>): void {
    this.nodeParams.set(name, { ...this.nodeParams.get(name), ...over });
    this.helloCache.delete(name);
    this.log(`${name} reloads ${JSON.stringify(over)}`);
    this.disturb(`${name} reloads`);
    const n = this.nodes.get(name)!;
    this.input(n, n.incarnation, () => n.core!.updateParams(this.paramsOf(name)));
  }

  /** What `name` says of itself in a hello: roles, rank and safety timings. */
  private helloOf(name: NodeName): PeerInfo {
    // Built once per node and settings: every message carries it (a tenth of the sweep's time before).
    let h = this.helloCache.get(name);
    if (h === undefined) {
      const p = this.paramsOf(name);
      h = Object.freeze({ ...this.nodes.get(name)!.peer, masterLeaseMs: p.masterLeaseMs, demoteTimeoutMs: p.demoteTimeoutMs });
      this.helloCache.set(name, h);
    }
    return h;
  }

  private readonly helloCache = new Map<NodeName, PeerInfo>();

  /** What `name`'s monotonic clock reads now. */
  clock(name: NodeName): number {
    return this.nowMs * (this.clockRates.get(name) ?? 1);
  }

  private realTime(name: NodeName, clockMs: number): number {
    return clockMs / (this.clockRates.get(name) ?? 1);
  }

  /** koinode stops (SIGSTOP) while its services keep running. */
  freeze(name: NodeName): void {
    const n = this.nodes.get(name)!;
    if (n.core === null || n.frozen) return;
    this.log(`${name} freezes`);
    this.disturb(`${name} freezes`);
    n.frozen = true;
    n.frozenAtMs = this.nowMs;
    this.checker.frozen(name);
  }

  thaw(name: NodeName): void {
    const n = this.nodes.get(name)!;
    if (!n.frozen) return;
    this.log(`${name} thaws (${n.deferred.length} inputs waiting)`);
    this.disturb(`${name} thaws`);
    n.frozen = false;
    this.checker.thawed(this.nowMs, name);
    // Like koinode, it sees how late its tick is, and says so when past the limit.
    const stalledMs = this.nowMs - (n.frozenAtMs ?? this.nowMs);
    if (stalledMs > this.tickMs + STALL_LIMIT_MS) this.call(n, () => n.core!.step({ kind: 'loop-stalled', stalledMs }, this.clock(name)));
    this.call(n, () => n.core!.tick(this.clock(n.peer.name)));
    this.watchdogStep(n);
    const waiting = n.deferred;
    n.deferred = [];
    for (const f of waiting) f();
  }

  /**
   * Give `name`'s machine a watchdog device that resets it `timeoutMs` after
   * the last keepalive while armed (call before start).
   */
  setWatchdog(name: NodeName, timeoutMs?: number): void {
    const fixed = timeoutMs ?? null;
    this.nodes.get(name)!.wd = { timeoutMs: fixed ?? 0, fixedMs: fixed, koinodeMs: fixed, armed: false, openedBy: 0, lastFeedMs: -Infinity, checkPending: false };
  }

  /** Watchdog resets so far. */
  watchdogResets = 0;

  /** What koinode's edge does after each pass of its loop: arm, feed, starve or disarm. */
  private watchdogStep(n: SimNode): void {
    const wd = n.wd;
    const core = n.core;
    if (wd === null || core === null || core.runner === null || wd.koinodeMs === null) return;
    const name = n.peer.name;
    const demand = core.runner.watchdogDemand(this.clock(name), wd.koinodeMs);
    switch (demand) {
      case 'feed':
        wd.lastFeedMs = this.nowMs;
        if (wd.openedBy !== n.incarnation) {
          // Setting the timeout and opening it (again: a predecessor may have left it running) arms it.
          wd.armed = true;
          wd.openedBy = n.incarnation;
          wd.timeoutMs = wd.koinodeMs;
          this.log(`${name} arms its watchdog`);
          this.checker.watchdogArmed(name, true);
          this.call(n, () => core.step({ kind: 'watchdog', state: 'armed' }, this.clock(name)));
        }
        this.scheduleWatchdogCheck(n, wd);
        return;
      case 'starve':
        return;
      case 'disarm':
        // Only the process that opened it can close it: a predecessor's stays as it is.
        if (wd.armed && wd.openedBy === n.incarnation) {
          wd.armed = false;
          wd.openedBy = 0;
          this.log(`${name} disarms its watchdog`);
          this.checker.watchdogArmed(name, false);
          this.call(n, () => core.step({ kind: 'watchdog', state: 'ready' }, this.clock(name)));
        }
        return;
      default:
        assertNever(demand);
    }
  }

  /** One pending check per device: at the expiry of the last keepalive (moved on by later ones). */
  private scheduleWatchdogCheck(n: SimNode, wd: SimWatchdog): void {
    if (wd.checkPending) return;
    wd.checkPending = true;
    this.at(wd.lastFeedMs + wd.timeoutMs, () => {
      wd.checkPending = false;
      if (!wd.armed || n.wd !== wd) return;
      if (this.nowMs < wd.lastFeedMs + wd.timeoutMs) {
        this.scheduleWatchdogCheck(n, wd);
        return;
      }
      const name = n.peer.name;
      this.log(`${name}'s watchdog fires: the machine resets`);
      this.watchdogResets++;
      this.crash(name);
      this.at(this.nowMs + WATCHDOG_REBOOT_MS, () => this.restart(name));
    });
  }

  isUp(name: NodeName): boolean {
    const n = this.nodes.get(name)!;
    return n.core !== null && !n.frozen;
  }

  core(name: NodeName): KoiNode | null {
    return this.nodes.get(name)!.core;
  }

  /** Up, unfrozen nodes that are leaders right now. */
  leaders(): NodeName[] {
    return [...this.nodes.values()].filter((n) => n.core !== null && !n.frozen && n.core.isLeader()).map((n) => n.peer.name);
  }

  /** Run a core call, turning a thrown invariant into a violation. */
  private call(n: SimNode, fn: () => void): void {
    try {
      fn();
    } catch (e) {
      this.checker.fail(this.nowMs, 'core-threw', `${n.peer.name}: ${(e as Error).message}`);
      this.stopped = true;
      return;
    }
    this.flush(n);
  }

  private input(n: SimNode, incarnation: number, fn: () => void): void {
    if (n.core === null || n.incarnation !== incarnation) return;
    if (n.frozen) n.deferred.push(() => this.input(n, incarnation, fn));
    else this.call(n, fn);
  }

  private flush(n: SimNode): void {
    const core = n.core;
    if (core === null) return;
    const name = n.peer.name;
    // The daemon's own effect loop, with simulated I/O.
    applyReady(core, {
      signal: (s) => this.signal(n, s.runId, s.signal, s.cut === true),
      persist: (p) => {
        n.persisted = p;
      },
      send: (m) => this.sendMessage(name, m.to, m.msg),
      run: (run) => this.startRun(n, run),
      fence: (f) => this.fence(n, f.fenceId, f.node),
      event: (ev) => {
        this.events.push({ atMs: this.nowMs, node: name, ev });
        if (ev.kind !== 'dropped') this.log(`${name} ${describe(ev)}`);
        this.checker.event(this.nowMs, ev);
        if (ev.kind === 'leader-elected') this.checker.leaderState(this.nowMs, name, core.state);
      },
      reply: (rep) => this.onReply(n, rep),
    });
    this.checker.epochSeen(this.nowMs, name, core.epoch);
  }

  // ---- network -------------------------------------------------------------------

  link(from: NodeName, to: NodeName): LinkState {
    const key = `${from}>${to}`;
    let l = this.links.get(key);
    if (l === undefined) {
      l = { ...QUIET };
      this.links.set(key, l);
    }
    return l;
  }

  healNetwork(): void {
    for (const l of this.links.values()) Object.assign(l, QUIET);
    this.disturb('network healed');
  }

  /** Both directions between `a` and `b` are open (loss and delay aside). */
  twoWay(a: NodeName, b: NodeName): boolean {
    return a === b || (!this.link(a, b).cut && !this.link(b, a).cut);
  }

  /** The roles of `from` reach `to` (a link came up), unless the link is cut. */
  private sendHello(from: NodeName, to: NodeName): void {
    const src = this.nodes.get(from)!;
    if (src.core === null || src.frozen || this.link(from, to).cut) return;
    const l = this.link(from, to);
    const dest = this.nodes.get(to)!;
    const inc = dest.incarnation;
    const hello = this.helloOf(from);
    this.at(this.nowMs + l.minDelayMs, () => this.input(dest, inc, () => dest.core!.setPeerInfo(hello)));
  }

  private sendMessage(from: NodeName, to: NodeName, msg: Message): void {
    const l = this.link(from, to);
    if (l.cut || this.rng.chance(l.lossP)) return;
    const copies = this.rng.chance(l.dupP) ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      const delay = l.minDelayMs + this.rng.next() * (l.maxDelayMs - l.minDelayMs);
      const dest = this.nodes.get(to)!;
      const inc = dest.incarnation;
      const hello = this.helloOf(from);
      // As on a real link, the sender's hello (its roles) comes before its first message.
      this.at(this.nowMs + delay, () =>
        this.input(dest, inc, () => {
          this.observeDelivery(to, dest.incarnation, msg);
          dest.core!.setPeerInfo(hello);
          dest.core!.step({ kind: 'message', from, msg: this.wire(msg, this.names) }, this.clock(to));
        }),
      );
    }
  }

  /** What the checker learns from a heartbeat as it reaches its runner (not from the core). */
  private observeDelivery(to: NodeName, incarnation: number, msg: Message): void {
    if (msg.kind !== 'heartbeat') return;
    if (msg.grant !== null && msg.master === to && msg.grant.incarnation === incarnation) {
      this.grantsDelivered++;
      // The lease ends on the runner's clock; the checker counts in real time.
      // The runner keeps to the shorter of its own timings and the grant's.
      const own = this.paramsOf(to);
      const leaseMs = Math.min(own.masterLeaseMs, msg.grant.leaseMs ?? Infinity);
      const demoteMs = Math.min(own.demoteTimeoutMs, msg.grant.demoteMs ?? Infinity);
      this.checker.leaseGranted(to, this.realTime(to, msg.grant.echoMs + leaseMs), demoteMs);
    }
    if (msg.state !== null) this.checker.maintenanceSeen(this.nowMs, to, msg.state.maintenance);
  }

  // ---- scripts -------------------------------------------------------------------

  private startRun(n: SimNode, req: RunRequest): void {
    const name = n.peer.name;
    const failurePath = req.event === 'failed' || (req.event === 'stop' && this.checker.inFailure(name, req.service));
    this.checker.runStart(this.nowMs, name, req, failurePath);
    this.runLog.push({ atMs: this.nowMs, node: name, service: req.service, event: req.event, urgent: req.urgent });
    const m = this.scripts;
    const forced = this.decide?.(name, req);
    if (forced !== undefined) {
      const run: SimRun = { req, incarnation: n.incarnation, hang: forced.exitCode === 'hang', done: false };
      n.runs.set(req.runId, run);
      this.log(`${name} run ${req.runId} ${req.service}/${req.event} [decided: ${forced.exitCode}]`);
      const code = forced.exitCode;
      if (code !== 'hang') this.at(this.nowMs + (forced.ms ?? 20), () => this.endRun(n, run, code, null, forced.score ?? null, forced.vanished === true));
      return;
    }
    const hang = this.rng.chance(m.hangP[req.event] ?? 0);
    const fail = this.rng.chance(m.failP[req.event] ?? 0);
    const run: SimRun = { req, incarnation: n.incarnation, hang, done: false };
    n.runs.set(req.runId, run);
    this.log(`${name} run ${req.runId} ${req.service}/${req.event}${req.urgent ? ' (urgent)' : ''}${hang ? ' [hangs]' : fail ? ' [fails]' : ''}`);
    if (!hang) {
      const ms = m.minMs + this.rng.next() * (m.maxMs - m.minMs);
      const roll = this.rng.next();
      this.at(this.nowMs + ms, () => {
        // (A run of a koinode that crashed since ends with nothing to say.)
        if (run.done || (run.orphan !== true && n.incarnation !== run.incarnation)) return;
        this.endRun(n, run, req.event === 'status' ? this.statusExit(name, req.service, fail, roll) : fail ? 1 : 0, null);
      });
    }
  }

  /** What a status script says, consistent with what the machine really runs. */
  private statusExit(node: NodeName, service: string, fail: boolean, roll: number): number {
    const level = this.checker.level(node, service);
    if (level === 0) return 92;
    if (fail) return 1;
    if (roll < this.scripts.crashP) return 92; // the service died by itself
    if (roll < 0.05) {
      // "Live but not promotable": a designated master that is not holding yet is revoked for it.
      this.disturb(`${node} ${service} status: not promotable`, true);
      return 93;
    }
    if (roll < 0.1) return level === 2 ? 90 : 91;
    return 0;
  }

  private signal(n: SimNode, runId: number, signal: 'SIGTERM' | 'SIGKILL', cut: boolean): void {
    const run = n.runs.get(runId);
    if (run === undefined || run.done) return;
    if (cut) run.cut = true;
    if (signal === 'SIGKILL') {
      this.at(this.nowMs, () => this.endRun(n, run, null, 'SIGKILL'));
    } else if (!run.hang || this.rng.chance(this.scripts.termDiesP)) {
      this.at(this.nowMs + 1 + this.rng.next() * 20, () => this.endRun(n, run, null, 'SIGTERM'));
    }
  }

  private endRun(n: SimNode, run: SimRun, exitCode: number | null, signal: string | null, score: number | null = null, vanished = false): void {
    if (run.orphan === true) {
      if (run.done) return;
      run.done = true;
      n.runs.delete(run.req.runId);
      this.log(`${n.peer.name} orphan end ${run.req.runId} ${run.req.service}/${run.req.event} ${signal ?? `exit=${exitCode}`}`);
      this.checker.runEnd(this.nowMs, n.peer.name, run.req.service, run.req.event, exitCode, signal, true);
      return;
    }
    if (run.done || n.incarnation !== run.incarnation || n.core === null) return;
    run.done = true;
    n.runs.delete(run.req.runId);
    const ok = exitCode === 0 && signal === null;
    this.log(`${n.peer.name} end ${run.req.runId} ${run.req.service}/${run.req.event} ${ok ? 'ok' : `exit=${exitCode} signal=${signal}`}`);
    this.checker.runEnd(this.nowMs, n.peer.name, run.req.service, run.req.event, exitCode, signal, false, run.cut === true);
    const wallMs = Math.round(this.nowMs);
    this.input(n, run.incarnation, () =>
      n.core!.step({ kind: 'script-done', runId: run.req.runId, exitCode, signal, output: [], wallMs, score, vanished }, this.clock(n.peer.name)),
    );
  }

  private fence(n: SimNode, fenceId: number, target: NodeName): void {
    const inc = n.incarnation;
    this.fenceLog.push({ atMs: this.nowMs, by: n.peer.name, target });
    const forced = this.decideFence?.(target);
    const ok = forced?.ok ?? this.rng.chance(this.fenceOkP);
    const ms = forced?.ms ?? 20 + this.rng.next() * 200;
    this.at(this.nowMs + ms, () => {
      if (ok) this.crash(target);
      else this.checker.fenceFailed(target);
      this.log(`fence of ${target} by ${n.peer.name}: ${ok ? 'powered off' : 'failed'}`);
      this.input(n, inc, () => n.core!.step({ kind: 'fence-done', fenceId, ok }, this.clock(n.peer.name)));
    });
  }

  // ---- operator --------------------------------------------------------------------

  /** Send an admin command to `via` (or any up node); forwarded to the leader like the edge does. */
  /** A `disabled` file appears in (or disappears from) a service directory of `node`. */
  setDisabled(node: NodeName, service: string, disabled: boolean): void {
    let set = this.disabled.get(node);
    if (set === undefined) this.disabled.set(node, (set = new Set()));
    if (disabled) set.add(service);
    else set.delete(service);
    this.log(`${node} ${service} ${disabled ? 'disabled' : 'enabled'}`);
    this.disturb(`${node} ${service} ${disabled ? 'disabled' : 'enabled'}`);
    const n = this.nodes.get(node)!;
    // The checker learns it when koinode does (a frozen koinode learns it late).
    this.input(n, n.incarnation, () => {
      this.checker.setDisabled(node, service, disabled);
      n.core!.step({ kind: 'service-disabled', service, disabled }, this.clock(node));
    });
  }

  private readonly disabled = new Map<NodeName, Set<string>>();

  /** koinode keeps the services it knows in state_dir (a scenario may turn it off to show why). */
  keepRemoved = true;

  private knownOf(n: SimNode): ServiceDef[] {
    return (n.core?.runner?.services ?? []).map((s) => ({ name: s.def.name, priority: s.def.priority }));
  }

  /** Services folders that differ from the cluster's list (a rescan changed them). */
  private readonly folders = new Map<NodeName, ServiceDef[]>();

  /** What `node`'s services folder holds now. */
  servicesOf(node: NodeName): ServiceDef[] {
    return this.folders.get(node) ?? this.services;
  }

  /**
   * The operator adds or removes service directories on `node`; its koinode
   * rescans (every status round, SIGHUP, koi reconfigure). A koinode that is
   * down finds the folder as it is when it starts.
   */
  setServices(node: NodeName, defs: ServiceDef[]): void {
    this.folders.set(node, defs);
    this.log(`${node} services folder: ${defs.map((d) => `${d.name}(${d.priority ?? '-'})`).join(' ')}`);
    const n = this.nodes.get(node)!;
    this.input(n, n.incarnation, () => {
      this.checker.setServices(node, defs);
      // (A disabled file may be in a directory put back.)
      for (const d of defs) this.checker.setDisabled(node, d.name, this.disabled.get(node)?.has(d.name) ?? false);
      n.core!.step({ kind: 'services-found', services: defs.map((d) => ({ ...d, disabled: this.disabled.get(node)?.has(d.name) ?? false })) }, this.clock(node));
    });
  }

  admin(command: AdminCommand, via?: NodeName): number {
    const requestId = this.nextRequestId++;
    const up = [...this.nodes.keys()].filter((x) => this.isUp(x));
    const target = via ?? this.rng.pick(up.length > 0 ? up : [...this.nodes.keys()]);
    this.log(`admin ${JSON.stringify(command)} via ${target} (request ${requestId})`);
    this.disturb(`admin ${command.kind}`);
    this.sendAdmin(requestId, command, target, 2);
    return requestId;
  }

  private readonly adminCommands = new Map<number, AdminCommand>();

  private readonly adminSentMs = new Map<number, number>();

  private sendAdmin(requestId: number, command: AdminCommand, target: NodeName, hops: number): void {
    if (!this.adminCommands.has(requestId)) {
      this.adminSentMs.set(requestId, this.nowMs);
      this.checker.commandSent(command);
    }
    this.adminCommands.set(requestId, command);
    const n = this.nodes.get(target)!;
    if (n.core === null) {
      this.answered({ requestId, ok: false, code: 'not-leader', error: 'node down', leader: null });
      return;
    }
    this.forwardHops.set(requestId, hops);
    this.input(n, n.incarnation, () => n.core!.step({ kind: 'admin', requestId, command }, this.clock(target)));
  }

  private readonly forwardHops = new Map<number, number>();

  private onReply(n: SimNode, rep: AdminReply): void {
    const hops = this.forwardHops.get(rep.requestId) ?? 0;
    if (rep.code === 'not-leader' && rep.leader !== null && rep.leader !== n.peer.name && hops > 0) {
      const cmd = this.adminCommands.get(rep.requestId)!;
      const to = rep.leader;
      this.at(this.nowMs + 1, () => this.sendAdmin(rep.requestId, cmd, to, hops - 1));
      return;
    }
    this.log(`reply ${rep.requestId}: ${rep.code}${rep.error ? ` (${rep.error})` : ''}`);
    this.answered(rep);
  }

  private answered(rep: AdminReply): void {
    if (this.replies.has(rep.requestId)) return;
    this.replies.set(rep.requestId, rep);
    // Refusals and "no leader" change nothing; "not committed" may or may not have been applied.
    const cmd = this.adminCommands.get(rep.requestId)!;
    const outcome = rep.ok ? 'ok' : rep.code === 'refused' || rep.code === 'not-leader' ? 'not-applied' : 'unknown';
    this.checker.commandAnswered(cmd, outcome, this.adminSentMs.get(rep.requestId)!, this.nowMs);
  }

  command(requestId: number): AdminCommand | undefined {
    return this.adminCommands.get(requestId);
  }
}

function less(a: Ev, b: Ev): boolean {
  return a.atMs < b.atMs || (a.atMs === b.atMs && a.seq < b.seq);
}

function describe(ev: CoreEvent): string {
  const { kind, ...rest } = ev;
  return `${kind} ${JSON.stringify(rest)}`;
}
