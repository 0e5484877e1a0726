// Runner side: turns what the leader says (designation, lease, maintenance,
// stop, recover) into script runs, enforces every script's time limit, and
// makes sure a runner never holds the master role past its lease plus
// demote_timeout.
import type {
  ClusterState,
  CoreEvent,
  CoreParams,
  FailureRecord,
  LeaseGrant,
  NodeName,
  RunRequest,
  RunnerReport,
  RunnerState,
  ScriptEvent,
  ServiceDef,
  SignalRequest,
  WatchdogDemand,
  WatchdogState,
} from './types';
import { assertNever, STATUS_MASTER, STATUS_NOT_PROMOTABLE, STATUS_SLAVE, STATUS_STOPPED } from './types';
import type { ServiceRt, ServiceTarget } from './services';
import { abandonScript, allSettledDown, answered, allStarted, beginScript, dueStatus, finishScript, hasScript, newService, plan, promotableService, serviceReport, unrunScript } from './services';

interface RunRecord {
  runId: number;
  service: ServiceRt;
  event: ScriptEvent;
  startedMs: number;
  termAtMs: number;
  killAtMs: number;
  termSent: boolean;
  killSent: boolean;
  /** Cut short because the lease ran out or the services are being stopped: its end is no verdict on the service. */
  cut?: boolean;
}

/**
 * A boot or post-interruption status: what it says decides whether the
 * service may hold the role, so it is never cut short (it keeps its own
 * time limit); cutting it would leave a service taken as free that may be
 * promoted.
 */
function reconciling(r: RunRecord): boolean {
  return r.event === 'status' && r.service.check !== null;
}

/** Failures a runner keeps until a leader records them. */
const MAX_PENDING_FAILURES = 100;

export interface RunnerOutput {
  runs: RunRequest[];
  signals: SignalRequest[];
  events: CoreEvent[];
}

export interface LeaderView {
  epoch: number;
  /** The heartbeat's sequence number in its leadership. */
  seq: number;
  master: NodeName | null;
  masterEpoch: number;
  grant: LeaseGrant | null;
}

/**
 * The watchdog timeout T for these timings, in whole `stepMs` (devices take
 * whole seconds), or null when not even one step fits. Two bounds:
 * - 2T ≤ (lease + demote_timeout − margin) × 2/3: a keepalive needs 2T of
 *   room before the hold deadline (see watchdogDemand), and a third is left
 *   for the age of the clock reading a renewed lease starts from;
 * - 2T ≤ demote_timeout − margin: in maintenance keepalives are not limited
 *   by a lease, and when maintenance ends the hold deadline is only
 *   demote_timeout away.
 */
export function watchdogTimeoutMs(p: Pick<CoreParams, 'masterLeaseMs' | 'demoteTimeoutMs' | 'safetyMarginMs'>, stepMs = 1000): number | null {
  const raw = Math.min((p.masterLeaseMs + p.demoteTimeoutMs - p.safetyMarginMs) / 3, (p.demoteTimeoutMs - p.safetyMarginMs) / 2);
  const ms = Math.floor(raw / stepMs) * stepMs;
  return ms >= stepMs ? ms : null;
}

/**
 * A service that may still hold the role but that nothing more will be run
 * for: settled below promoted (its demote or stop failed, or it was removed
 * and its scripts are gone). It stops counting at the runner's hold bound.
 */
function stuckHolder(s: ServiceRt): boolean {
  return s.holding && s.running === null && s.failurePath === 'none' && !s.stopNow && s.check === null && s.state !== 'promoted' && s.state !== 'promoting';
}

/** The automatic recovery wait doubles per failure up to this (docs/SERVICES.md). */
const MAX_AUTO_RECOVER_WAIT_MS = 10 * 60_000;

/** A duration for people: 40.0s, 812s, 30m. */
function span(ms: number): string {
  if (ms >= 60_000 && ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms >= 100_000) return `${Math.round(ms / 1000)}s`;
  return `${(ms / 1000).toFixed(1)}s`;
}

export class Runner {
  readonly services: ServiceRt[];
  private readonly runs = new Map<number, RunRecord>();
  private leaseUntilMs = -Infinity;
  private designated = false;
  private master: NodeName | null = null;
  private masterEpoch = 0;
  private epoch = 0;
  private maintenance = false;
  /** When this runner learned maintenance was off (its frozen time counts as lease). */
  private maintenanceOffMs = -Infinity;
  /**
   * Maintenance arrived while this runner held the role past its lease (it
   * was letting go): the leader that turned maintenance on did not count it
   * as a holder, so it finishes letting go (failure sequence included) and
   * only then stands still.
   */
  private maintenancePending = false;
  /**
   * Maintenance came from the saved state at start, and no leader has
   * confirmed it yet: it may never have been committed (its leader reached
   * only us, and a later leader frees our role by timing). Until a leader
   * confirms it, it stops scripts as maintenance does, but the watchdog is
   * not fed for it (and a graceful stop does not disarm for it).
   */
  private maintenanceUnconfirmed = false;
  private adminStopped = false;
  private failed = false;
  private failcount = 0;
  private lastFailureMs: number | null = null;
  private recoverAtMs: number | null = null;
  private recoverTokenSeen: number | null = null;
  private startedSinceMs: number | null = null;
  private urgent = false;
  private following = false;
  private pendingFailures: FailureRecord[] = [];
  /** Bumped whenever something the leader sees in a report may have changed. */
  changes = 0;

  constructor(
    private readonly name: NodeName,
    private readonly params: CoreParams,
    defs: ServiceDef[],
    private readonly incarnation: number,
    private readonly allocRunId: () => number,
    bootMs: number,
    maintenance: boolean,
    interrupted: readonly string[] = [],
    removed: readonly ServiceDef[] = [],
  ) {
    // Services may still run from an earlier koinode: ask each one first.
    // Those whose scripts it left running while it may have held the role
    // (killed by this koinode's edge before we got here) count as promoted
    // unless their status says they are stopped.
    this.services = defs.map((d) => newService(d, interrupted.includes(d.name) ? 'interrupted' : 'boot'));
    // Removed before the restart and not yet down: asked like the others, then taken down.
    for (const d of removed) {
      if (defs.some((x) => x.name === d.name)) continue;
      this.services.push({ ...newService(d, interrupted.includes(d.name) ? 'interrupted' : 'boot'), removed: true });
    }
    // Anything found promoted at boot must be let go within demote_timeout.
    this.leaseUntilMs = bootMs;
    this.maintenance = maintenance;
    this.maintenanceUnconfirmed = maintenance;
  }

  /** Maintenance a leader has confirmed (committed) in this process's life. */
  inMaintenance(): boolean {
    return this.maintenance && !this.maintenanceUnconfirmed;
  }

  private shuttingDown = false;

  shutDown(): void {
    this.shuttingDown = true;
    this.changes++;
  }

  /** Every service is down and nothing runs: a stopping koinode may exit. */
  quiescent(): boolean {
    return this.runs.size === 0 && allSettledDown(this.services);
  }

  private watchdog: WatchdogState = 'off';
  /**
   * This process knows the bound it holds under: a grant reached it, or it
   * saw maintenance end (which starts a lease of its own), not just an
   * earlier koinode of this node.
   */
  private leaseKnown = false;

  setWatchdog(state: WatchdogState): void {
    if (state !== this.watchdog) this.changes++;
    this.watchdog = state;
  }

  /**
   * What the watchdog needs now, for a device that resets the machine
   * `timeoutMs` (T) after its last keepalive. A keepalive at `nowMs` is
   * allowed only while now + 2T ≤ hold deadline − safety margin, the
   * deadline less the margin being the earliest instant a leader may free
   * the role by timing. Why 2T: Linux pings a watchdog that is closed
   * without the magic character, so a koinode killed while starving (or
   * killed by systemd's WatchdogSec) gives one more keepalive at its death;
   * with the last real one at most deadline − margin − 2T, the device fires
   * before deadline − margin − T, and a death before that resets the
   * machine by deadline − margin. Past the limit the edge stops feeding:
   * only letting go in time ('disarm') spares the machine. In maintenance
   * no leader frees the role by timing, so a healthy loop keeps feeding
   * (and T ≤ (demote_timeout − margin) / 2 covers the moment it ends).
   */
  watchdogDemand(nowMs: number, timeoutMs: number): WatchdogDemand {
    if (!this.holding() && !this.unreconciled() && !this.wantsRole(nowMs)) return 'disarm';
    // Free feeding in maintenance needs 2T ≤ demote − margin (a reload may
    // have shortened demote_timeout below what the device was set for).
    if (this.inMaintenance() && 2 * timeoutMs <= Math.min(this.params.demoteTimeoutMs, this.grantDemoteMs) - this.params.safetyMarginMs) return 'feed';
    if (this.maintenance) return 'starve';
    // Holding inherited from an earlier koinode (found at boot) runs on that
    // one's grants, which this process does not know: a watchdog it left
    // armed must fire by their bound unless the demote finishes first.
    if (!this.leaseKnown) return 'starve';
    return nowMs + 2 * timeoutMs <= this.holdDeadlineMs() - this.params.safetyMarginMs ? 'feed' : 'starve';
  }

  /** Holding, or not sure yet (boot status pending): what koinode records for its successor. */
  mayHold(): boolean {
    return this.holding() || this.unreconciled();
  }

  /**
   * The services folder as found now (a rescan): a new service is asked
   * with a status, then brought to where the runner is, in priority order,
   * without touching the others; a removed one goes down with the scripts
   * known of it and is forgotten once stopped; a changed one (scripts
   * added or removed, priority) takes effect for its next script.
   */
  setServices(defs: readonly ServiceDef[]): void {
    for (const d of defs) {
      const s = this.services.find((x) => x.def.name === d.name);
      if (s === undefined) {
        this.services.push(newService(d, 'added'));
        continue;
      }
      s.def = d;
      if (s.removed) {
        s.removed = false;
        // Back after a script of it failed while it was out (it may still
        // run as master, or not run at all): asked first, only a 92 believed.
        if (s.holding && s.running === null && !s.stopNow && s.state !== 'promoted') {
          s.state = 'stopped';
          s.check = 'interrupted';
        }
      }
    }
    for (const s of this.services) if (!defs.some((d) => d.name === s.def.name)) s.removed = true;
    // Listed in the folder's order, as after a restart; removed ones last.
    const at = (s: ServiceRt) => (s.removed ? defs.length : defs.findIndex((d) => d.name === s.def.name));
    this.services.sort((a, b) => at(a) - at(b));
    this.changes++;
  }

  /** A removed service let go by timing alone was forgotten (no script of it can prove anything now). */
  private forgotUnproven = false;

  /**
   * "Not holding" is no proof while a service was let go by timing alone and
   * a grant we saw still keeps the leader waiting by its own timings (a
   * grant that arrived late, after we let go, moves that wait).
   */
  private unprovenRelease(nowMs: number): boolean {
    const unproven = this.forgotUnproven || this.services.some((s) => s.releasedByTime);
    return unproven && nowMs < this.leaderFreesAtMs + this.params.safetyMarginMs;
  }

  /** Removed services known to be down, holding nothing and running nothing, are forgotten. */
  private forgetRemoved(): void {
    for (let i = this.services.length - 1; i >= 0; i--) {
      const s = this.services[i]!;
      // (Not while a boot, interrupted or resume check is pending: its state is unknown.)
      const known = s.check === null || s.check === 'added';
      if (s.removed && known && s.running === null && s.failurePath === 'none' && !s.stopNow && !s.holding && (s.state === 'stopped' || s.state === 'failed')) {
        if (s.releasedByTime) this.forgotUnproven = true;
        this.services.splice(i, 1);
        this.changes++;
      }
    }
  }

  setDisabled(service: string, disabled: boolean): void {
    const s = this.services.find((x) => x.def.name === service);
    if (s !== undefined) s.disabled = disabled;
    this.changes++;
  }

  /** Services whose state is unknown until their boot status has run. */
  private unreconciled(): boolean {
    return this.services.some((s) => s.check === 'boot' || s.check === 'interrupted');
  }

  holding(): boolean {
    return this.services.some((s) => s.holding);
  }

  private leaseValid(nowMs: number): boolean {
    return nowMs < this.leaseUntilMs;
  }

  /**
   * The leader takes "I hold nothing", said after its last grant, as proof
   * that this runner is free, and may then designate another. So holding
   * may begin again only on a grant at least as new as that report; an
   * older lease still running keeps a holder going but starts nothing.
   */
  private grantSeq = -1;
  private freeSeq = -1;

  /** The ack for heartbeat `seq` said this runner holds nothing. */
  reportedFree(seq: number): void {
    this.freeSeq = Math.max(this.freeSeq, seq);
  }

  private mayStartHolding(): boolean {
    return this.grantSeq >= 0 && this.grantSeq >= this.freeSeq;
  }

  /** A heartbeat of the leader we follow arrived. */
  onHeartbeat(nowMs: number, hb: LeaderView, state: ClusterState, committed: boolean): void {
    if (hb.epoch !== this.epoch) {
      // Sequence numbers are per leadership: a new leader's grants start afresh.
      this.grantSeq = -1;
      this.freeSeq = -1;
    }
    this.epoch = hb.epoch;
    if (!this.following) this.changes++;
    this.following = true;
    this.designated = hb.master === this.name;
    this.master = hb.master;
    if (!this.designated) {
      // The leader has seen a service's death (or did not make us master):
      // it no longer stands in the way of being chosen.
      for (const s of this.services) {
        if (!s.died) continue;
        s.died = false;
        this.changes++;
      }
    }
    this.masterEpoch = hb.masterEpoch;
    if (this.designated && hb.grant !== null && hb.grant.incarnation === this.incarnation) {
      // The leader frees the role by its own timings: never outlast them.
      const leaseMs = Math.min(this.params.masterLeaseMs, hb.grant.leaseMs ?? Infinity);
      this.grantDemoteMs = Math.min(this.grantDemoteMs, hb.grant.demoteMs ?? Infinity);
      this.leaseUntilMs = Math.max(this.leaseUntilMs, hb.grant.echoMs + leaseMs);
      // ... and the other way round: what the leader waits for, by its own
      // (maybe longer) timings, before it frees the role without our word.
      const leaderLeaseMs = hb.grant.leaseMs ?? this.params.masterLeaseMs;
      const leaderDemoteMs = hb.grant.demoteMs ?? this.params.demoteTimeoutMs;
      this.leaderFreesAtMs = Math.max(this.leaderFreesAtMs, hb.grant.echoMs + leaderLeaseMs + leaderDemoteMs);
      this.grantSeq = hb.seq;
      this.leaseKnown = true;
    }
    this.applyState(nowMs, state, committed);
  }

  /**
   * The replicated state, as of a heartbeat. Maintenance lets a master ignore
   * its lease, so it takes effect only once a quorum holds it (a new leader
   * is then sure to inherit it); switching it off takes effect at once.
   */
  private applyState(nowMs: number, state: ClusterState, committed: boolean): void {
    const before = `${this.maintenance}|${this.adminStopped}|${this.pendingFailures.length}`;
    if (!state.maintenance) {
      if (this.maintenance) {
        // Maintenance ending starts a lease of its own only if a leader
        // confirmed it: one that was never committed freed nothing from
        // timing, and the leader now counts only its own grants.
        if (!this.maintenanceUnconfirmed) {
          this.maintenanceOffMs = nowMs;
          this.leaseKnown = true;
        }
        // Resume from what the services say now, not from what we last knew.
        for (const s of this.services) if (s.state === 'started' || s.state === 'promoted') s.check ??= 'resume';
        // A script that ran through maintenance gets its whole time limit
        // from now (its hold bound still applies: enforceDeadlines).
        for (const r of this.runs.values()) {
          if (!r.termSent) {
            r.termAtMs = nowMs + this.timeoutFor(r.event);
            r.killAtMs = r.termAtMs + this.graceMs();
          } else if (!r.killSent) r.killAtMs = nowMs + this.graceMs();
        }
      }
      this.maintenance = false;
      this.maintenanceUnconfirmed = false;
      this.maintenancePending = false;
    } else if (committed && !this.maintenance) {
      if (this.holding() && (this.urgent || !this.leaseValid(nowMs))) this.maintenancePending = true;
      else this.maintenance = true;
    } else if (committed) this.maintenanceUnconfirmed = false;
    this.adminStopped = state.stopped.includes(this.name);
    const token = state.recoverTokens[this.name] ?? 0;
    if (this.recoverTokenSeen === null) this.recoverTokenSeen = token;
    else if (token > this.recoverTokenSeen) {
      this.recoverTokenSeen = token;
      if (this.failed) this.pendingRecover = 'manual';
    }
    if (this.pendingFailures.length > 0) this.pendingFailures = this.pendingFailures.filter((f) => !state.failures.some((g) => sameFailure(f, g)));
    if (`${this.maintenance}|${this.adminStopped}|${this.pendingFailures.length}` !== before) this.changes++;
  }

  private pendingRecover: 'manual' | null = null;

  leaderLost(): void {
    this.following = false;
    this.changes++;
  }

  /**
   * The runner state, with the original's meanings: disconnected (no leader
   * followed), stopped (by koi stop, or koinode stopping), live (following,
   * not promotable: services starting, a 93, a disabled service), slave
   * (promotable), master (holding the role, also while a service is added
   * or restarted), failed.
   */
  state(): RunnerState {
    if (this.failed) return 'failed';
    if (this.holding()) return 'master';
    if (this.adminStopped || this.shuttingDown) return 'stopped';
    if (!this.following) return 'disconnected';
    return this.promotable() ? 'slave' : 'live';
  }

  /** Everything started and checked, nothing in the way of taking the role. */
  private promotable(): boolean {
    return (
      !this.failed &&
      !this.adminStopped &&
      !this.shuttingDown &&
      !this.services.some((s) => s.disabled) &&
      !this.unreconciled() &&
      allStarted(this.services) &&
      this.services.every((s) => s.disabled || s.removed || promotableService(s)) &&
      // (A master whose service died loses the role first.)
      !this.services.some((s) => s.died) &&
      this.watchdog !== 'unavailable' &&
      !this.urgent
    );
  }

  /**
   * The loop stalled for `stalledMs`, past what the safety margin allows.
   * Another stall like it would carry a holder past its lease end unnoticed
   * when less than that much lease is left: then it ends its lease now (and
   * demotes at its next tick). Returns whether it let go.
   */
  loopStalled(nowMs: number, stalledMs: number): boolean {
    if (!this.holding() || this.maintenance || this.leaseUntilMs - nowMs >= stalledMs) return false;
    this.leaseUntilMs = Math.min(this.leaseUntilMs, nowMs);
    this.changes++;
    return true;
  }

  /** The shortest demote time a leader's grant counted on (Infinity: none said). */
  private grantDemoteMs = Infinity;

  /** When the last leader that granted us a lease frees the role by its timings (runner clock). */
  private leaderFreesAtMs = -Infinity;

  /** The latest instant this runner may hold the master role. */
  private holdDeadlineMs(): number {
    return Math.max(this.leaseUntilMs, this.maintenanceOffMs) + Math.min(this.params.demoteTimeoutMs, this.grantDemoteMs);
  }

  private target(nowMs: number): ServiceTarget {
    if (this.failed || this.adminStopped || this.shuttingDown) return 'stopped';
    if (this.urgent) return 'started';
    // A usable watchdog is armed before the first promote (the edge arms it
    // when watchdogDemand asks, and says so).
    // Holding begins only on a runner that is promotable now: a 93 (or a
    // service not yet checked since its start) that came after the leader
    // chose it drops the designation before any promote runs.
    if (this.wantsRole(nowMs) && (this.holding() || (this.promotable() && this.watchdog !== 'ready' && this.watchdog !== 'unavailable'))) return 'promoted';
    return 'started';
  }

  /** Designated, leased, and allowed to (keep) hold(ing) the role. */
  private wantsRole(nowMs: number): boolean {
    if (this.failed || this.adminStopped || this.shuttingDown || this.urgent) return false;
    return this.designated && this.leaseValid(nowMs) && (this.holding() || this.mayStartHolding());
  }

  private timeoutFor(event: ScriptEvent): number {
    const p = this.params;
    switch (event) {
      case 'start':
        return p.startTimeoutMs;
      case 'stop':
        return p.stopTimeoutMs;
      case 'status':
        return p.statusTimeoutMs;
      case 'promote':
        return p.promoteTimeoutMs;
      case 'demote':
        return p.demoteTimeoutMs;
      case 'failed':
        return p.failedTimeoutMs;
      default:
        return assertNever(event);
    }
  }

  private graceMs(): number {
    return Math.min(this.params.killGraceMs, Math.floor(this.params.demoteTimeoutMs / 4));
  }

  tick(nowMs: number, out: RunnerOutput): void {
    const p = this.params;
    if (this.lastFailureMs !== null && nowMs - this.lastFailureMs > p.failcountResetMs) this.failcount = 0;

    const holding = this.holding();
    // Urgency ends once everything that could let go has; a holder nothing
    // more can be done for (its demote and stop failed: it waits for the
    // hold bound) does not keep a renewed master from promoting again.
    if (!holding || (this.leaseValid(nowMs) && this.services.every((s) => !s.holding || stuckHolder(s)))) this.urgent = false;
    if (this.maintenancePending && !holding) {
      this.maintenancePending = false;
      this.maintenance = true;
      this.changes++;
    }
    if (holding && !this.maintenance && !this.leaseValid(nowMs) && !this.urgent) {
      // Cut off from the leader (or revoked without reaching us): let go now.
      this.urgent = true;
      this.changes++;
      out.events.push({ kind: 'lease-expired', node: this.name });
      for (const r of this.runs.values()) {
        // (One already past its own time limit keeps that verdict.)
        if (r.service.holding && r.event !== 'demote' && r.event !== 'stop' && r.event !== 'failed' && !reconciling(r) && !r.termSent) {
          r.termAtMs = Math.min(r.termAtMs, nowMs);
          r.cut = true;
        }
      }
    }
    if (holding && !this.maintenance) this.releasePastBound(nowMs);
    this.forgetRemoved();

    if (!this.maintenance) this.recoverIfDue(nowMs, out);

    if (!this.maintenance && this.target(nowMs) === 'stopped') this.cutForStop(nowMs);
    if (!this.maintenance) this.planRuns(nowMs, out);
    if (allStarted(this.services)) this.startedSinceMs ??= nowMs;
    else this.startedSinceMs = null;

    this.enforceDeadlines(nowMs, out);
  }

  /**
   * `koi stop`, shutdown or a failure: a start, promote or status under way
   * is stopped now (SIGTERM, then SIGKILL after the grace, whole group), so
   * the stop can follow; a demote, stop or failed script is waited for.
   */
  private cutForStop(nowMs: number): void {
    for (const r of this.runs.values()) {
      if (r.cut === true || r.termSent || (r.event !== 'start' && r.event !== 'promote' && r.event !== 'status') || reconciling(r)) continue;
      r.termAtMs = Math.min(r.termAtMs, nowMs);
      r.killAtMs = Math.min(r.killAtMs, nowMs + this.graceMs());
      r.cut = true;
      this.changes++;
    }
  }

  /**
   * A service whose demote or stop failed gave no proof that it let go. Once
   * its failure sequence is over, nothing of it runs and the hold bound has
   * passed, every leader frees the role by timing anyway (the runner might
   * be cut off): stop claiming it.
   */
  private releasePastBound(nowMs: number): void {
    // Saying "free" with no proof lets the leader skip its own wait: so not
    // before that wait, by the leader's timings, is over too.
    if (nowMs < Math.max(this.holdDeadlineMs(), this.leaderFreesAtMs + this.params.safetyMarginMs)) return;
    for (const s of this.services) {
      if (!s.holding || s.running !== null || s.failurePath !== 'none' || s.stopNow || s.state === 'promoted' || s.state === 'promoting') continue;
      s.holding = false;
      s.releasedByTime = true;
      this.changes++;
    }
  }

  private recoverIfDue(nowMs: number, out: RunnerOutput): void {
    if (!this.failed || this.holding() || !allSettledDown(this.services)) return;
    const p = this.params;
    if (this.pendingRecover === null && this.recoverAtMs === null && p.autoRecover > 0 && this.failcount <= p.autoRecover) {
      this.recoverAtMs = nowMs + this.autoRecoverWaitMs(this.failcount);
    }
    const auto = this.recoverAtMs !== null && nowMs >= this.recoverAtMs;
    if (this.pendingRecover === null && !auto) return;
    this.failed = false;
    this.recoverAtMs = null;
    this.pendingRecover = null;
    for (const s of this.services) if (s.state === 'failed') s.state = 'stopped';
    this.changes++;
    out.events.push({ kind: 'runner-recovered', node: this.name, automatic: auto });
  }

  /** The wait before the automatic recovery that follows failure number `failcount`. */
  private autoRecoverWaitMs(failcount: number): number {
    return Math.min(this.params.autoRecoverWaitMs * 2 ** Math.max(0, failcount - 1), MAX_AUTO_RECOVER_WAIT_MS);
  }

  /**
   * When a failed runner will next be tried, and why then: the same rules
   * as tick() (failcount expiry, then recoverIfDue), read without acting.
   * `inMs` is null when no try is scheduled (it waits for an operator, for
   * maintenance to end, or for its services to stop first).
   */
  private recoveryOutlook(nowMs: number): { inMs: number | null; reason: string | null } {
    if (!this.failed) return { inMs: null, reason: null };
    const p = this.params;
    const byHand = `koi recover ${this.name}`;
    if (this.maintenance) return { inMs: null, reason: `maintenance: no recovery until koi maintenance off` };
    const settled = !this.holding() && allSettledDown(this.services);
    if (this.pendingRecover !== null) return { inMs: settled ? 0 : null, reason: `${byHand} was given: it recovers once every service has stopped` };
    const backoff = `backoff ${span(p.autoRecoverWaitMs)} doubling per failure, at most ${span(MAX_AUTO_RECOVER_WAIT_MS)}`;
    if (this.recoverAtMs !== null) {
      const attempt = Math.min(Math.max(1, this.failcount), p.autoRecover);
      return {
        inMs: Math.max(0, this.recoverAtMs - nowMs),
        reason: `automatic recovery ${attempt} of ${p.autoRecover} (${backoff}), or ${byHand} now`,
      };
    }
    if (p.autoRecover === 0) return { inMs: null, reason: `automatic recovery is off (auto_recover = 0): ${byHand}` };
    const lastMs = this.lastFailureMs ?? nowMs;
    // tick() lets the count expire once failcount_reset has passed since the last failure.
    const expired = nowMs - lastMs > p.failcountResetMs;
    const count = expired ? 0 : this.failcount;
    if (count > p.autoRecover) {
      // Exhausted: the count expires failcount_reset after the last failure,
      // and the first wait is counted from then.
      const inMs = settled ? Math.max(0, lastMs + p.failcountResetMs - nowMs) + p.autoRecoverWaitMs : null;
      return {
        inMs,
        reason:
          `failure count exhausted (${count} failures, auto_recover = ${p.autoRecover}): ` +
          `tried again ${span(p.autoRecoverWaitMs)} after failcount_reset (${span(p.failcountResetMs)}) has passed since the last failure, or ${byHand}`,
      };
    }
    const waitMs = this.autoRecoverWaitMs(count);
    const attempt = Math.max(1, count);
    if (!settled) {
      return { inMs: null, reason: `its services are still stopping; then automatic recovery ${attempt} of ${p.autoRecover} after ${span(waitMs)} (${backoff})` };
    }
    // Failed since the last tick: the next tick schedules it from now.
    return { inMs: waitMs, reason: `automatic recovery ${attempt} of ${p.autoRecover} (${backoff}), or ${byHand} now` };
  }

  private planRuns(nowMs: number, out: RunnerOutput): void {
    // A missing script succeeds at once, which may unblock the next step.
    for (let round = 0; round <= 4 * this.services.length + 4; round++) {
      let instant = false;
      for (const step of plan(this.services, this.target(nowMs), this.urgent)) {
        if (hasScript(step.service, step.event)) this.startRun(nowMs, step.service, step.event, this.urgent, out);
        else {
          this.finishMissing(nowMs, step.service, step.event, out);
          instant = true;
        }
      }
      if (!instant) break;
    }
    for (const s of dueStatus(this.services, nowMs)) this.startRun(nowMs, s, 'status', false, out);
  }

  /**
   * What a missing script means: success, except at boot: an unasked
   * service is taken as stopped, or as master if an earlier koinode was
   * interrupted while it may have held the role (its demote must run).
   */
  private finishMissing(nowMs: number, s: ServiceRt, event: ScriptEvent, out: RunnerOutput): void {
    const runId = this.allocRunId();
    beginScript(s, event, runId);
    const code = event !== 'status' ? 0 : s.check === 'boot' || s.check === 'added' ? STATUS_STOPPED : s.check === 'interrupted' ? STATUS_MASTER : 0;
    this.applyEnd(nowMs, s, event, code, null, [], 0, out);
  }

  private startRun(nowMs: number, s: ServiceRt, event: ScriptEvent, urgent: boolean, out: RunnerOutput): void {
    const runId = this.allocRunId();
    beginScript(s, event, runId);
    this.changes++;
    const termAtMs = nowMs + this.timeoutFor(event);
    this.runs.set(runId, { runId, service: s, event, startedMs: nowMs, termAtMs, killAtMs: termAtMs + this.graceMs(), termSent: false, killSent: false });
    const mayHold = this.holding() || (this.designated && this.leaseValid(nowMs));
    out.runs.push({
      runId,
      service: s.def.name,
      event,
      vars: {
        // As in the original: a runner letting go (or failing) is not promoted.
        isPromoted: mayHold && event !== 'demote' && event !== 'stop' && event !== 'failed',
        state: this.state(),
        epoch: this.designated ? this.masterEpoch : this.epoch,
        master: this.master,
      },
      urgent: urgent && event === 'demote',
      mayHold,
    });
  }

  private enforceDeadlines(nowMs: number, out: RunnerOutput): void {
    // Maintenance: states freeze as they are, and running scripts with them.
    if (this.maintenance) return;
    const grace = this.graceMs();
    const holdDeadline = this.holdDeadlineMs();
    for (const r of this.runs.values()) {
      let killAt = r.killAtMs;
      let termAt = r.termAtMs;
      if (r.service.holding && !this.maintenance) {
        killAt = Math.min(killAt, holdDeadline);
        termAt = Math.min(termAt, killAt - grace);
      }
      const cut = r.cut === true ? { cut: true as const } : {};
      if (!r.termSent && nowMs >= termAt) {
        r.termSent = true;
        out.signals.push({ runId: r.runId, signal: 'SIGTERM', ...cut });
      }
      if (!r.killSent && nowMs >= killAt) {
        r.killSent = true;
        out.signals.push({ runId: r.runId, signal: 'SIGKILL', ...cut });
      }
    }
  }

  /** A script ended; returns false for a run this runner does not know. */
  scriptDone(
    nowMs: number,
    runId: number,
    exitCode: number | null,
    signal: string | null,
    output: string[],
    wallMs: number,
    out: RunnerOutput,
    score: number | null = null,
    vanished = false,
  ): boolean {
    const r = this.runs.get(runId);
    if (r === undefined) return false;
    this.runs.delete(runId);
    if (vanished && !r.service.removed) {
      // Its script was gone when spawned (renamed, removed since the last
      // scan): it did not run, so it is no verdict; the planner runs it again.
      unrunScript(r.service);
      r.service.nextStatusMs = nowMs;
      this.changes++;
      return true;
    }
    // (A status that answered 90-93 said something true, cut short or not.)
    const ok = answered(r.event, exitCode, signal);
    // Killed (or failed) because the lease ran out or the service is being
    // stopped, not because the service is broken: no failure. Maintenance
    // freezes judgement: a script that fails then is no verdict either, and
    // the status that resumes supervision says where the service is.
    // (A boot or added check is never a failure anyway, and its answer counts.)
    const check = r.event === 'status' ? r.service.check : null;
    const frozen = this.maintenance && r.service.failurePath === 'none' && (check === null || check === 'resume');
    if ((r.cut === true || frozen) && !ok) {
      abandonScript(r.service, r.cut === true);
      // A promote that failed in maintenance may have half happened: when
      // maintenance ends, only a 92 is believed, else it is demoted first
      // (and promoted again if this runner is still master).
      if (frozen && r.cut !== true && r.event === 'promote') r.service.check = 'interrupted';
      r.service.nextStatusMs = nowMs + this.params.statusIntervalMs;
      this.changes++;
      return true;
    }
    this.applyEnd(nowMs, r.service, r.event, exitCode, signal, output, wallMs, out);
    if (r.event === 'status' || r.event === 'stop') this.noteScore(r.service, r.event, exitCode, signal, score);
    return true;
  }

  /**
   * A status that says the service runs (0, 90, 91, 93) gives its score (or
   * says it has none); anything else, or a stop, leaves it without one.
   */
  private noteScore(s: ServiceRt, event: ScriptEvent, exitCode: number | null, signal: string | null, score: number | null): void {
    const runs = event === 'status' && signal === null && [0, STATUS_MASTER, STATUS_SLAVE, STATUS_NOT_PROMOTABLE].includes(exitCode ?? -1);
    const next = runs ? score : null;
    if (next !== s.score) {
      s.score = next;
      this.changes++;
    }
  }

  private applyEnd(
    nowMs: number,
    s: ServiceRt,
    event: ScriptEvent,
    exitCode: number | null,
    signal: string | null,
    output: string[],
    wallMs: number,
    out: RunnerOutput,
  ): void {
    const wasHolding = s.holding;
    this.changes++;
    const justFailed = finishScript(s, exitCode, signal);
    // A script that went through, or a status that answered, shows where the service is.
    if (answered(event, exitCode, signal) && event !== 'failed') s.releasedByTime = false;
    s.nextStatusMs = nowMs + this.params.statusIntervalMs;
    // A service just started (or demoted, with no status since its start
    // that said it is ready) is asked at once: it is not promotable before.
    if ((event === 'start' || event === 'demote') && s.state === 'started' && !s.ready) s.nextStatusMs = nowMs;
    if (!wasHolding && s.holding && event === 'status') {
      // A status just told us the service is master (left over, or promoted by
      // hand): the demote that follows gets its full time from now on.
      this.leaseUntilMs = Math.max(this.leaseUntilMs, nowMs);
    }
    if (justFailed) {
      const rec: FailureRecord = { wallMs, node: this.name, service: s.def.name, event, exitCode, signal, output: output.slice(-20) };
      // Bounded like the state's history: a runner failing faster than any
      // leader records keeps its newest (the wire refuses more than 1000).
      this.pendingFailures = [...this.pendingFailures, rec].slice(-MAX_PENDING_FAILURES);
      this.lastFailureMs = nowMs;
      if (!this.failed) {
        // One incident, one count: services failing together, or a stop
        // failing while the failed runner shuts down, count once
        // (auto_recover is a number of recoveries).
        this.failcount += 1;
        this.failed = true;
        this.recoverAtMs = null;
        out.events.push({ kind: 'runner-failed', node: this.name, service: s.def.name, event });
      }
    }
  }

  report(nowMs: number): RunnerReport {
    const disabled = this.services.some((s) => s.disabled);
    const recovery = this.recoveryOutlook(nowMs);
    return {
      state: this.state(),
      // Until its boot status ran, a service may be promoted from an earlier koinode.
      holding: this.holding() || this.unreconciled(),
      ...(this.unprovenRelease(nowMs) ? { releasedByTime: true } : {}),
      promotable: this.promotable(),
      watchdog: this.watchdog,
      disabled,
      failed: this.failed,
      failcount: this.failcount,
      lastFailureAgoMs: this.lastFailureMs === null ? null : nowMs - this.lastFailureMs,
      nextRecoveryInMs: recovery.inMs,
      recoveryWaitReason: recovery.reason,
      uptimeMs: this.startedSinceMs === null ? 0 : nowMs - this.startedSinceMs,
      services: this.services.map(serviceReport),
      pendingFailures: this.pendingFailures.map((f) => ({ ...f })),
    };
  }
}

export function sameFailure(a: FailureRecord, b: FailureRecord): boolean {
  return a.node === b.node && a.wallMs === b.wallMs && a.service === b.service && a.event === b.event;
}
