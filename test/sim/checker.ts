// Invariant checkers of the simulator. They watch what the simulated machines
// do (script runs, crashes, elections) and keep their own model of it, so a
// bug in the core cannot hide behind the core's own bookkeeping.
import type { AdminCommand, ClusterState, CoreEvent, CoreParams, NodeName, RunRequest, ScriptEvent, ServiceDef } from '../../src/core/types';

type OpField = 'maintenance' | 'manualMaster';

/** What the operator's commands say a field must be, once they are all answered. */
interface OpTrack {
  value: boolean | null;
  inflight: number;
  lastFailMs: number;
}

export interface Violation {
  atMs: number;
  kind: 'two-leaders' | 'epoch-backwards' | 'two-masters' | 'order' | 'state-lost' | 'liveness' | 'core-threw' | 'stuck' | 'flap';
  text: string;
}

interface SvcModel {
  priority: number | null;
  /** 0 stopped or failed, 1 started, 2 promoted. */
  level: 0 | 1 | 2;
  busy: ScriptEvent | null;
  /** A script failed; the failure sequence has not ended yet. */
  failing: boolean;
  disabled: boolean;
  /** Promotes in flight (more than one only when a killed koinode's runs on beside its successor's). */
  promoting: number;
  /** The next status is a restarted koinode's boot check: its failure means "not running", not a failure. */
  bootCheck: boolean;
  /** Its directory left the services folder: it goes down in no order, and its failures fail nothing. */
  removed: boolean;
  /** A status said 0, 90 or 91 since its last start: only then may it be promoted. */
  ready: boolean;
}

function newSvcModel(priority: number | null, bootCheck = false): SvcModel {
  return { priority, level: 0, busy: null, failing: false, disabled: false, promoting: 0, bootCheck, removed: false, ready: false };
}

interface MachineModel {
  services: Map<string, SvcModel>;
  /** Services that hold the master role (promote started, no demote/stop ended since). */
  holding: Set<string>;
  holdingSinceMs: number | null;
  /** Frozen at some point while holding. */
  frozenWhileHolding: boolean;
  /** koinode is frozen now; when it last thawed. */
  frozenNow: boolean;
  thawedAtMs: number;
  /** A fence against it failed while it held. */
  fenceFailed: boolean;
  /** A stop failed while it held: nothing proves its service let go. */
  stopFailed: boolean;
  /** Latest lease end among the grants delivered to it (its clock). */
  leaseSeenMs: number;
  /** The shortest demote time a grant delivered to it counted on. */
  demoteMs: number;
  /** Saw maintenance in a state from its leader, and when it saw it end. */
  maintenanceSeen: boolean;
  maintenanceOffMs: number;
  /** Held the role at a moment it believed maintenance on, in this life (only an operator or a fence frees that). */
  heldInMaintenance: boolean;
  /** Its watchdog is armed now, and was when it froze while holding (then no overlap is excused). */
  watchdogArmed: boolean;
  frozenArmed: boolean;
  /** Its koinode was killed while holding and started again (the holding is its predecessor's). */
  restartedHolding: boolean;
}

/** Why an overlap of two holders was not counted as a violation. */
export type ExcuseCause = 'frozen-no-fence' | 'frozen-fence-failed' | 'stop-failed';

export class Checker {
  readonly violations: Violation[] = [];
  /** Overlaps excused because a holder was frozen and nothing could stop it. */
  frozenExemptions = 0;
  /** Every excused overlap, by cause. */
  readonly excusedByCause: Record<ExcuseCause, number> = { 'frozen-no-fence': 0, 'frozen-fence-failed': 0, 'stop-failed': 0 };
  private readonly machines = new Map<NodeName, MachineModel>();
  private readonly leaderOfEpoch = new Map<number, { leader: NodeName; atMs: number }>();
  /** When each node last came back without its saved state. */
  private readonly lostStateMs = new Map<NodeName, number>();
  /** The electors (set by the world): when all of them forgot, nothing remembers an epoch. */
  electors: NodeName[] = [];
  private readonly lastEpoch = new Map<NodeName, number>();
  private readonly ops: Record<OpField, OpTrack> = {
    maintenance: { value: null, inflight: 0, lastFailMs: -Infinity },
    manualMaster: { value: null, inflight: 0, lastFailMs: -Infinity },
  };

  private static effect(c: AdminCommand): [OpField, boolean] | null {
    switch (c.kind) {
      case 'maintenance':
        return ['maintenance', c.on];
      case 'demote':
        return ['manualMaster', true];
      case 'elect':
      case 'promote':
        return ['manualMaster', false];
      default:
        return null;
    }
  }

  commandSent(c: AdminCommand): void {
    const e = Checker.effect(c);
    if (e !== null) this.ops[e[0]].inflight++;
  }

  /**
   * A command was answered. Committed (ok) answers fix the field, unless a
   * failed command on it was answered after this one was sent (it may have
   * been applied later) or others are still in flight.
   */
  commandAnswered(c: AdminCommand, outcome: 'ok' | 'not-applied' | 'unknown', sentMs: number, nowMs: number): void {
    const e = Checker.effect(c);
    if (e === null) return;
    const t = this.ops[e[0]];
    t.inflight--;
    if (outcome === 'not-applied') return;
    if (outcome === 'unknown') {
      t.lastFailMs = nowMs;
      t.value = null;
    } else if (sentMs > t.lastFailMs) {
      t.value = e[1];
    }
  }

  /** A new leader's state must hold every committed operator decision. */
  leaderState(atMs: number, leader: NodeName, s: ClusterState): void {
    for (const f of ['maintenance', 'manualMaster'] as const) {
      const t = this.ops[f];
      if (t.inflight === 0 && t.value !== null && s[f] !== t.value) {
        this.fail(atMs, 'state-lost', `new leader ${leader} has ${f}=${s[f]} but a committed command set it to ${t.value}`);
      }
    }
  }

  constructor(
    private readonly services: ServiceDef[],
    private readonly fenceConfigured: boolean,
    private readonly safetyChecked: boolean,
    private readonly demoteTimeoutMs = 0,
  ) {}

  /** A heartbeat granting `node` a lease until `untilMs` was delivered to it. */
  leaseGranted(node: NodeName, untilMs: number, demoteMs: number): void {
    const m = this.machine(node);
    m.leaseSeenMs = Math.max(m.leaseSeenMs, untilMs);
    m.demoteMs = Math.min(m.demoteMs, demoteMs);
  }

  /** A heartbeat delivered to `node` carried a state with this maintenance flag. */
  maintenanceSeen(atMs: number, node: NodeName, on: boolean): void {
    const m = this.machine(node);
    if (on) {
      m.maintenanceSeen = true;
      if (m.holding.size > 0) m.heldInMaintenance = true;
    } else if (m.maintenanceSeen) {
      m.maintenanceSeen = false;
      m.maintenanceOffMs = atMs;
    }
  }

  /**
   * The latest instant this machine may hold by the rules every leader
   * assumes: its last lease (or the end of maintenance, which a holder sat
   * out) plus demote_timeout. Infinite while it saw maintenance on.
   */
  private holdBoundMs(m: MachineModel): number {
    if (m.maintenanceSeen) return Infinity;
    return Math.max(m.leaseSeenMs, m.maintenanceOffMs) + (m.demoteMs === Infinity ? this.demoteTimeoutMs : m.demoteMs);
  }

  private machine(node: NodeName): MachineModel {
    let m = this.machines.get(node);
    if (m === undefined) {
      m = { services: new Map(), holding: new Set(), holdingSinceMs: null, frozenWhileHolding: false, frozenNow: false, thawedAtMs: -Infinity, fenceFailed: false, stopFailed: false, leaseSeenMs: -Infinity, demoteMs: Infinity, maintenanceSeen: false, maintenanceOffMs: -Infinity, heldInMaintenance: false, watchdogArmed: false, frozenArmed: false, restartedHolding: false };
      for (const s of this.services) m.services.set(s.name, newSvcModel(s.priority));
      this.machines.set(node, m);
    }
    return m;
  }

  fail(atMs: number, kind: Violation['kind'], text: string): void {
    this.violations.push({ atMs, kind, text });
  }

  /**
   * Machines that hold the role. With `atMs`, a service whose stop failed
   * stops counting once its hold bound has passed (as in a promote's check:
   * every leader frees the role then), so the liveness judge does not wait
   * for a holder that koi rightly no longer waits for.
   */
  holders(atMs?: number): NodeName[] {
    if (atMs !== undefined) for (const m of this.machines.values()) this.releasePastBound(atMs, m);
    return [...this.machines].filter(([, m]) => m.holding.size > 0).map(([n]) => n);
  }

  /** koinode started a new life on this machine (it holds nothing yet). */
  booted(node: NodeName): void {
    this.machine(node).heldInMaintenance = false;
  }

  /**
   * A rescan of `node`'s services folder reached its koinode: services new
   * to it are asked first (their failing status means "not running"), the
   * ones that left go down in no order.
   */
  setServices(node: NodeName, defs: readonly ServiceDef[]): void {
    const m = this.machine(node);
    for (const d of defs) {
      const s = m.services.get(d.name);
      if (s === undefined) m.services.set(d.name, newSvcModel(d.priority, true));
      else {
        // Forgotten by the core already (down, idle, holding nothing): it is asked again as new.
        if (s.removed && s.level === 0 && s.busy === null && !m.holding.has(d.name)) s.bootCheck = true;
        s.removed = false;
        s.priority = d.priority;
      }
    }
    for (const [name, s] of m.services) if (!defs.some((d) => d.name === name)) s.removed = true;
  }

  /**
   * A koinode starts with only what is on disk: a service removed from the
   * folder while koinode was down is unknown to it, and the operator who
   * removed it stops it by hand (docs/SERVICES.md says so).
   */
  bootServices(node: NodeName, defs: readonly ServiceDef[], kept: readonly ServiceDef[] = []): void {
    const m = this.machine(node);
    for (const [name, s] of [...m.services]) {
      // Known to the new koinode (its state_dir kept it), still running a
      // script, or still holding the role: it stays in the model, as removed
      // (the model follows the machine, not what koinode knows).
      if (defs.some((d) => d.name === name) || kept.some((d) => d.name === name) || s.busy !== null || m.holding.has(name)) continue;
      m.services.delete(name);
    }
    this.setServices(node, defs);
  }

  /** Whether the machine held the role while it believed maintenance on, in its last life. */
  heldInMaintenance(node: NodeName): boolean {
    return this.machine(node).heldInMaintenance;
  }

  /** The whole machine went down: its services stop with it. */
  machineDown(node: NodeName): void {
    const m = this.machine(node);
    m.holding.clear();
    m.holdingSinceMs = null;
    m.frozenWhileHolding = false;
    m.frozenNow = false;
    m.watchdogArmed = false;
    m.frozenArmed = false;
    m.restartedHolding = false;
    m.fenceFailed = false;
    m.stopFailed = false;
    for (const s of m.services.values()) {
      s.level = 0;
      s.busy = null;
      s.failing = false;
      s.promoting = 0;
    }
  }

  frozen(node: NodeName): void {
    const m = this.machine(node);
    m.frozenNow = true;
    if (m.holding.size > 0) {
      m.frozenWhileHolding = true;
      m.frozenArmed = m.watchdogArmed;
    }
  }

  /** The machine's watchdog was armed or disarmed by its koinode. */
  watchdogArmed(node: NodeName, armed: boolean): void {
    this.machine(node).watchdogArmed = armed;
  }

  thawed(atMs: number, node: NodeName): void {
    const m = this.machine(node);
    m.frozenNow = false;
    m.thawedAtMs = atMs;
  }

  /**
   * A killed koinode was started again. Like a thaw: the new koinode lets
   * go within the demote time (its edge kills what its predecessor left
   * running first); an overlap that began while it was dead is excused
   * until then, as for a frozen one.
   */
  koinodeRestarted(atMs: number, node: NodeName): void {
    this.thawed(atMs, node);
    const m = this.machine(node);
    if (m.frozenWhileHolding) m.restartedHolding = true;
    // A failure sequence belonged to the dead koinode: the new one starts from its boot checks.
    for (const s of this.machine(node).services.values()) {
      s.bootCheck = true;
      s.failing = false;
    }
  }

  fenceFailed(node: NodeName): void {
    const m = this.machine(node);
    if (m.holding.size > 0) m.fenceFailed = true;
  }

  /**
   * Why an overlap with this holder is outside the guarantee, or null: a
   * frozen holder that no fence could power off, or a service whose stop
   * failed (nothing proves it let go; koi frees the role by timing then).
   */
  private excuse(m: MachineModel, atMs: number): ExcuseCause | null {
    // Only for that freeze: while frozen, and for the demote time after its
    // thaw (it notices its lease ran out and lets go); not for good.
    // A killed koinode started again in maintenance runs no script (its
    // predecessor's holding included) until maintenance ends: that episode
    // lasts until then. (A thawed one is not excused so: it knows its lease.)
    const letGoFromMs = m.restartedHolding ? Math.max(m.thawedAtMs, m.maintenanceOffMs) : m.thawedAtMs;
    const episode = m.frozenWhileHolding && (m.frozenNow || (m.restartedHolding && m.maintenanceSeen) || atMs - letGoFromMs <= this.demoteTimeoutMs + 100);
    // An armed watchdog resets a frozen holder before any leader frees the
    // role by timing: no excuse then.
    if (episode && m.frozenArmed) return m.stopFailed ? 'stop-failed' : null;
    if (episode && !this.fenceConfigured) return 'frozen-no-fence';
    if (episode && m.fenceFailed) return 'frozen-fence-failed';
    // A stop that failed proves nothing, so every leader frees the role by
    // timing: excused once the last lease it saw plus its demote time has
    // passed, not before. (Maintenance is left out of this bound: a runner
    // still letting go when maintenance came never held in maintenance, and
    // a leader that freed a maintenance holder by timing is caught by the
    // maintenance scenarios.)
    if (m.stopFailed && atMs >= m.leaseSeenMs + (m.demoteMs === Infinity ? this.demoteTimeoutMs : m.demoteMs)) return 'stop-failed';
    return null;
  }

  /** The node's saved state is gone: its epoch starts again from what it hears. */
  stateLost(atMs: number, node: NodeName): void {
    this.lastEpoch.delete(node);
    this.lostStateMs.set(node, atMs);
    // A committed operator decision may have lived on this disk and a
    // minority of others: from here on a new leader may rightly not have it.
    for (const t of Object.values(this.ops)) t.value = null;
  }

  epochSeen(atMs: number, node: NodeName, epoch: number): void {
    const last = this.lastEpoch.get(node) ?? 0;
    if (epoch < last) this.fail(atMs, 'epoch-backwards', `${node} went from epoch ${last} to ${epoch}`);
    this.lastEpoch.set(node, epoch);
  }

  event(atMs: number, ev: CoreEvent): void {
    if (ev.kind !== 'leader-elected') return;
    const prev = this.leaderOfEpoch.get(ev.epoch);
    const allForgot = prev !== undefined && this.electors.length > 0 && this.electors.every((e) => (this.lostStateMs.get(e) ?? -Infinity) > prev.atMs);
    if (prev !== undefined && prev.leader !== ev.leader && !allForgot) this.fail(atMs, 'two-leaders', `epoch ${ev.epoch} has leaders ${prev.leader} and ${ev.leader}`);
    this.leaderOfEpoch.set(ev.epoch, { leader: ev.leader, atMs });
  }

  runStart(atMs: number, node: NodeName, run: RunRequest, failurePath: boolean): void {
    const m = this.machine(node);
    const s = m.services.get(run.service)!;
    if (!failurePath && !run.urgent) this.checkOrder(atMs, node, m, run.service, s, run.event);
    if (run.event === 'promote' && !s.ready && !s.removed) {
      this.fail(atMs, 'order', `${node}: promote of ${run.service} before a status said it is ready since its start`);
    }
    if (run.event === 'start') s.ready = false;
    s.busy = run.event;
    // The failure sequence begins when koinode judged a script failed (not a
    // failure it ignored: in maintenance, a removed service, a boot check).
    if (run.event === 'failed') s.failing = true;
    // A first check is the status before anything else runs.
    if (run.event !== 'status') s.bootCheck = false;
    if (run.event === 'promote') {
      s.promoting++;
      if (m.holding.size === 0) this.beginHolding(atMs, node, m);
      m.holding.add(run.service);
    }
  }

  /**
   * A service whose demote or stop failed, once its failure sequence is over
   * and it runs no script, stops holding when the hold bound has passed:
   * every leader frees the role by timing then, and the runner stops
   * claiming it. (Nothing proves it let go: that is a script outside its
   * contract, like a frozen koinode.)
   */
  private releasePastBound(atMs: number, m: MachineModel): void {
    if (m.holding.size === 0 || atMs < this.holdBoundMs(m)) return;
    for (const name of [...m.holding]) {
      const s = m.services.get(name)!;
      if (s.busy === null && s.level < 2 && !s.failing) m.holding.delete(name);
    }
    if (m.holding.size === 0) this.endHolding(m);
  }

  private beginHolding(atMs: number, node: NodeName, m: MachineModel): void {
    m.holdingSinceMs = atMs;
    if (m.maintenanceSeen) m.heldInMaintenance = true;
    this.checkOverlap(atMs, node, m, 'starts promote');
  }

  private checkOverlap(atMs: number, node: NodeName, m: MachineModel, what: string): void {
    if (!this.safetyChecked) return;
    for (const [other, om] of this.machines) {
      if (other !== node) this.releasePastBound(atMs, om);
      if (other === node || om.holding.size === 0) continue;
      const cause = this.excuse(om, atMs) ?? this.excuse(m, atMs);
      if (cause !== null) {
        this.excusedByCause[cause]++;
        if (cause !== 'stop-failed') this.frozenExemptions++;
        continue;
      }
      this.fail(atMs, 'two-masters', `${node} ${what} while ${other} holds the master role (since ${om.holdingSinceMs}ms: ${[...om.holding].join(',')})`);
    }
  }

  level(node: NodeName, service: string): 0 | 1 | 2 {
    return this.machine(node).services.get(service)!.level;
  }

  runEnd(atMs: number, node: NodeName, service: string, event: ScriptEvent, exitCode: number | null, signal: string | null, orphan = false, cut = false): void {
    // (A status that answered 90-93 said something true, cut short or not.)
    const answered = signal === null && (exitCode === 0 || (event === 'status' && exitCode !== null && exitCode >= 90 && exitCode <= 93));
    if (cut && !answered && (event === 'start' || event === 'promote' || event === 'status')) this.applyCut(node, service, event);
    else this.applyEnd(node, service, event, exitCode, signal);
    const m = this.machine(node);
    // Nobody runs a failure sequence for a killed koinode's script.
    if (orphan) m.services.get(service)!.failing = false;
    this.releasePastBound(atMs, m);
    // A killed koinode's promote that runs on and succeeds makes its service
    // master whatever happened since: as if it began now.
    if (orphan && event === 'promote' && exitCode === 0 && signal === null) {
      m.holding.add(service);
      this.checkOverlap(atMs, node, m, 'an orphaned promote of a killed koinode succeeds');
    }
  }

  /**
   * A start, promote or status the runner stopped early (its lease ran out,
   * or it is stopping its services): SERVICES.md says that is no failure. A
   * promote may have gone through (the service counts as promoted, still
   * held); a start may have started it; a status changes nothing.
   */
  private applyCut(node: NodeName, service: string, event: 'start' | 'promote' | 'status'): void {
    const s = this.machine(node).services.get(service)!;
    s.busy = null;
    if (event === 'status') s.bootCheck = false;
    if (event === 'promote') {
      s.promoting = Math.max(0, s.promoting - 1);
      s.level = 2;
    }
    if (event === 'start') s.level = Math.max(s.level, 1) as 1 | 2;
  }

  private applyEnd(node: NodeName, service: string, event: ScriptEvent, exitCode: number | null, signal: string | null): void {
    const m = this.machine(node);
    const s = m.services.get(service)!;
    s.busy = null;
    const ok = exitCode === 0 && signal === null;
    if (event === 'status') {
      const code = signal === null ? exitCode : null;
      const boot = s.bootCheck;
      s.bootCheck = false;
      if (code === 0 || code === 90 || code === 91) s.ready = true;
      else if (code === 92) s.ready = false;
      if (code === 92) {
        // The service is dead: it holds nothing any more.
        s.level = 0;
        m.holding.delete(service);
        if (m.holding.size === 0) this.endHolding(m);
      } else if (code !== 0 && code !== 90 && code !== 91 && code !== 93 && s.level > 0 && boot) {
        // A restarted koinode takes a failing boot check for "not running"
        // (SERVICES.md) and starts it again: the checker follows that
        // contract, unless the service may still hold the role.
        if (!m.holding.has(service)) s.level = 0;
      }
      return;
    }
    if (event === 'promote') s.promoting = Math.max(0, s.promoting - 1);
    if (s.removed && !ok && !s.failing) {
      // A removed service's scripts may be gone: no failure sequence. Nothing
      // it did counts as done; a holder keeps holding (to its hold bound).
      if (event === 'start' || event === 'stop') s.level = 0;
      if (event === 'stop' && m.holding.has(service)) m.stopFailed = true;
      return;
    }
    // (A failure starts the failure sequence only once koinode runs `failed`:
    // see runStart.)
    // Only a demote or stop that succeeded proves the service let go (a
    // successful start too: the service was down and came up as a slave),
    // and only with no promote still running on it.
    if (ok && s.promoting === 0 && (event === 'demote' || event === 'stop' || event === 'start')) {
      m.holding.delete(service);
      if (m.holding.size === 0) this.endHolding(m);
    }
    if (!ok && event === 'stop' && m.holding.has(service)) m.stopFailed = true;
    if (event === 'failed') return;
    if (event === 'stop') {
      s.level = 0;
      // (The stop that ends a failure sequence ends it, however it went.)
      s.failing = false;
      return;
    }
    if (!ok) {
      if (event === 'demote') s.level = 1;
      return;
    }
    if (event === 'start' || event === 'demote') s.level = 1;
    else if (event === 'promote') s.level = 2;
  }

  private endHolding(m: MachineModel): void {
    m.holdingSinceMs = null;
    m.frozenWhileHolding = false;
    m.restartedHolding = false;
    m.fenceFailed = false;
    m.stopFailed = false;
  }

  /** Whether a stop of this service belongs to its failure sequence. */
  inFailure(node: NodeName, service: string): boolean {
    return this.machine(node).services.get(service)!.failing;
  }

  setDisabled(node: NodeName, service: string, disabled: boolean): void {
    // (A service removed from that node's folder may be gone from the model.)
    const s = this.machine(node).services.get(service);
    if (s !== undefined) s.disabled = disabled;
  }

  private checkOrder(atMs: number, node: NodeName, m: MachineModel, name: string, s: SvcModel, event: ScriptEvent): void {
    // A disabled or removed service goes down on its own and holds nobody up.
    if (s.priority === null || s.disabled || s.removed || event === 'status' || event === 'failed') return;
    const p = s.priority;
    for (const [oname, o] of m.services) {
      if (oname === name || o.priority === null || o.disabled || o.removed) continue;
      // A service being asked for the first time runs nothing it holds up.
      const busy = o.busy !== null && !(o.busy === 'status' && o.level === 0 && o.bootCheck);
      let bad = false;
      switch (event) {
        case 'start':
          bad = o.priority < p && (o.level < 1 || o.busy !== null || o.failing);
          break;
        case 'promote':
          bad = o.priority < p && (o.level < 2 || o.busy !== null);
          break;
        case 'demote':
          bad = o.priority > p && (o.level > 1 || busy || o.failing);
          break;
        case 'stop':
          bad = o.priority > p && (o.level > 0 || busy || o.failing);
          break;
      }
      if (bad) {
        this.fail(atMs, 'order', `${node}: ${event} of ${name} (priority ${p}) while ${oname} (priority ${o.priority}) is level ${o.level}${o.busy ? ` running ${o.busy}` : ''}${o.failing ? ' failing' : ''}`);
      }
    }
  }

  /** Fully promoted: every service of the machine reached promoted and nothing runs. */
  fullyPromoted(node: NodeName): boolean {
    return [...this.machine(node).services.values()].every((s) => s.removed || (s.level === 2 && s.busy === null));
  }

  allStarted(node: NodeName): boolean {
    return [...this.machine(node).services.values()].every((s) => s.removed || (s.level === 1 && s.busy === null));
  }
}

// ---- liveness: stuck and flapping ------------------------------------------

/**
 * How long after a change from outside (crash, restart, cut, heal, command,
 * reload, stall) a leader stepping down or a master being revoked may still
 * be its consequence. The slowest legitimate chains, with LT = leader_timeout:
 *  - an elector that came back outranking the leader follows it for
 *    takeover_settle (plus leader_timeout per higher-ranked elector), then campaigns (pre-vote and vote, up to LT each): the
 *    leader steps down by settle + 2 LT;
 *  - a leader cut from its voters sees no quorum for the quorum window, then
 *    steps down after LT: by 2 LT;
 *  - a master cut from the leader is revoked LT after its last answer, and a
 *    leadership that began late (the takeover above) waits LT of its own
 *    first: by settle + 3 LT.
 * Plus a heartbeat period (a pre-vote waits that long for higher-ranked
 * electors) and six round trips of the slowest link: the pre-vote and the
 * vote of the election before and of the takeover, the heartbeat that makes
 * a node follow, and a message in flight when the change happened.
 */
export function flapWindowMs(p: CoreParams, maxRttMs = 4, electors = 1): number {
  // An elector of rank r (0 the highest) waits r more leader_timeouts before
  // its takeover, so that takers do not split the vote.
  const stagger = Math.max(0, electors - 1) * p.leaderTimeoutMs;
  return p.takeoverSettleMs + stagger + 3 * p.leaderTimeoutMs + p.heartbeatIntervalMs + 6 * maxRttMs;
}

/** A leader that stepped down or a master that was revoked with no change from outside before it. */
export interface Flap {
  atMs: number;
  what: string;
  /** The latest change from outside before it (null: none at all). */
  lastChange: { atMs: number; what: string } | null;
}

export interface Disturbance {
  atMs: number;
  what: string;
  /** A fault that lasts (a cut, a freeze, lossy links): in effect until then. */
  untilMs?: number;
  /** Only a master may change because of it (a status saying "not promotable"). */
  masterOnly?: boolean;
}

/**
 * Leader and master changes from `fromMs` on that no change from outside
 * explains: none happened, and no lasting fault was in effect, in the
 * `windowMs` before. Elections themselves are not judged (one follows every
 * loss of a leader, however late); what is judged is a working leader or
 * master being given up.
 */
export function findFlaps(
  events: readonly { atMs: number; node: NodeName; ev: CoreEvent }[],
  disturbances: readonly Disturbance[],
  windowMs: number,
  fromMs = 0,
): Flap[] {
  const flaps: Flap[] = [];
  for (const e of events) {
    if (e.atMs < fromMs) continue;
    let what: string;
    if (e.ev.kind === 'stepped-down') what = `${e.node} stepped down (${e.ev.reason})`;
    else if (e.ev.kind === 'master-revoked') what = `${e.node} revoked master ${e.ev.master} (${e.ev.reason})`;
    else continue;
    let cause: { atMs: number; what: string } | null = null;
    for (const d of disturbances) {
      if (d.atMs > e.atMs) continue;
      if (d.masterOnly && e.ev.kind !== 'master-revoked') continue;
      // A lasting fault counts until it ended.
      const effectMs = Math.min(e.atMs, d.untilMs ?? d.atMs);
      if (cause === null || effectMs >= cause.atMs) cause = { atMs: effectMs, what: d.what };
    }
    if (cause === null || e.atMs - cause.atMs > windowMs) flaps.push({ atMs: e.atMs, what, lastChange: cause });
  }
  return flaps;
}

/**
 * Watches, tick by tick, whether a master is fully promoted while the
 * cluster can have one. A stretch without one that outlasts `boundMs` while
 * `expected` holds is reported once, as stuck, with the leader's status.
 */
export class LivenessJudge {
  /** When the current stretch without a master began (null: there is one). */
  private gapStartMs: number | null;
  /** The bound counts from here: the stretch's start, or an operator's later action. */
  private deadlineBaseMs: number;
  private reported = false;
  private lastMs: number;
  /** Stretches that outlasted the bound while a master was possible (counted when not judging too). */
  episodes = 0;
  noMasterMs = 0;
  longestGapMs = 0;
  readonly stuck: Violation[] = [];

  constructor(
    readonly boundMs: number,
    startMs: number,
    /** Record violations (false: the run is outside what the timings allow; only measure). */
    private readonly judging = true,
  ) {
    this.gapStartMs = startMs;
    this.deadlineBaseMs = startMs;
    this.lastMs = startMs;
  }

  /** The operator acted (e.g. koi confirm-down): the bound counts again from now. */
  operatorActed(nowMs: number): void {
    if (this.gapStartMs !== null) this.deadlineBaseMs = Math.max(this.deadlineBaseMs, nowMs);
  }

  observe(nowMs: number, promoted: boolean, expected: () => string | null, status: () => string): void {
    if (this.gapStartMs !== null) this.noMasterMs += nowMs - this.lastMs;
    this.lastMs = nowMs;
    if (promoted) {
      if (this.gapStartMs !== null) this.longestGapMs = Math.max(this.longestGapMs, nowMs - this.gapStartMs);
      this.gapStartMs = null;
      this.reported = false;
      return;
    }
    if (this.gapStartMs === null) {
      this.gapStartMs = nowMs;
      this.deadlineBaseMs = nowMs;
    }
    this.longestGapMs = Math.max(this.longestGapMs, nowMs - this.gapStartMs);
    if (this.reported || nowMs - this.deadlineBaseMs <= this.boundMs) return;
    // `expected` says why the cluster can have a master (null: it cannot).
    const why = expected();
    if (why === null) return;
    this.reported = true;
    this.episodes++;
    const v: Violation = {
      atMs: nowMs,
      kind: 'stuck',
      text: `no master fully promoted for ${Math.round(nowMs - this.gapStartMs)}ms (bound ${Math.round(this.boundMs)}ms) although ${why}; ${status()}`,
    };
    if (this.judging) this.stuck.push(v);
  }
}
