// Leader side: what the leader knows of each node in this leadership, and the
// rules for keeping, revoking and choosing the master.
import type { AdminCommand, ClusterState, CoreParams, NodeName, PeerInfo, RunnerReport } from './types';
import { assertNever } from './types';
import { compareRank, everDesignated, isStopped } from './state';
import { fenceFailedSinceGrant } from './fencing';

/** The leader's view of one node, rebuilt for every leadership. */
export interface NodeView {
  name: NodeName;
  /** Leader clock when the last reply arrived. */
  lastReplyMs: number | null;
  lastAckSeq: number;
  /** Largest send time (leader clock) of a heartbeat this node acknowledged. */
  lastAckedSentMs: number;
  /** Until when its acknowledgements count towards a quorum: send time plus that heartbeat's window. */
  ackValidUntilMs: number;
  /** Its last ack said it is rejoining after a lost state: it counts towards no quorum. */
  rejoining: boolean;
  /** The node's clock in its last reply: echoed back as a lease grant. */
  echoNowMs: number | null;
  /** Leader clock when that reply arrived: the node read its clock no later than this. */
  echoRecvMs: number;
  incarnation: number | null;
  report: RunnerReport | null;
  reportSeq: number;
  ackedVersionEpoch: number;
  ackedVersionSeq: number;
  /**
   * The latest instant (leader clock) at which the clock reading behind any of
   * our grants to this node could have been taken: its lease ends no later
   * than this plus master_lease. (Not the send time of the grant: a grant
   * echoing an old reading extends nothing, e.g. after the node died.)
   */
  lastGrantMs: number | null;
  lastGrantSeq: number;
  /** Heartbeat sequence current when a fence of this node succeeded. */
  fencedAtSeq: number | null;
  fenceInFlight: boolean;
  /** Last heartbeat round trip (leader clock), for metrics. */
  rttMs: number | null;
  /**
   * Heartbeat sequence current when the last failed fence attempt of this
   * node began (-Infinity: none). That failure lets the leader fall back to
   * waiting out the grants made before it, never later ones.
   */
  fenceFailedSeq: number;
  /** Failed fence attempts in a row; the next waits `fenceRetryMs` of them. */
  fenceFailures: number;
  /** No new fence attempt before this instant (leader clock). */
  nextFenceMs: number;
}

export function newView(name: NodeName): NodeView {
  return {
    name,
    lastReplyMs: null,
    lastAckSeq: -1,
    lastAckedSentMs: -Infinity,
    ackValidUntilMs: -Infinity,
    rejoining: false,
    echoNowMs: null,
    echoRecvMs: -Infinity,
    incarnation: null,
    report: null,
    reportSeq: -1,
    ackedVersionEpoch: -1,
    ackedVersionSeq: -1,
    lastGrantMs: null,
    lastGrantSeq: -1,
    fencedAtSeq: null,
    fenceInFlight: false,
    rttMs: null,
    fenceFailedSeq: -Infinity,
    fenceFailures: 0,
    nextFenceMs: -Infinity,
  };
}

export interface MasterContext {
  nowMs: number;
  params: CoreParams;
  state: ClusterState;
  peers: Map<NodeName, PeerInfo>;
  views: Map<NodeName, NodeView>;
  /** No lease from an earlier leadership outlives this plus lease + demote. */
  oldGrantsBoundMs: number;
  /** When this leadership began (leader clock). */
  electedMs: number;
  self: NodeName;
  /** Peers whose roles we know (their hello arrived); self included. */
  heard: ReadonlySet<NodeName>;
  /** The longest lease and demote time any node says it uses (ours included). */
  boundLeaseMs: number;
  boundDemoteMs: number;
}

/**
 * A peer never heard from may be a runner, even the master of an earlier
 * leadership: wherever safety is at stake it counts as one.
 */
export function mayBeRunner(ctx: MasterContext, name: NodeName): boolean {
  const p = ctx.peers.get(name);
  return p !== undefined && (p.runner || !ctx.heard.has(name));
}

export function reachable(ctx: MasterContext, name: NodeName): boolean {
  if (name === ctx.self) return true;
  const v = ctx.views.get(name);
  return v !== undefined && v.lastReplyMs !== null && ctx.nowMs - v.lastReplyMs <= ctx.params.leaderTimeoutMs;
}

/**
 * Silent for leader_timeout although this leadership has been in office long
 * enough to hear from it: only then is a node treated as gone.
 */
export function presumedDown(ctx: MasterContext, name: NodeName): boolean {
  return !reachable(ctx, name) && ctx.nowMs - ctx.electedMs > ctx.params.leaderTimeoutMs;
}

/**
 * Could `name` still hold the master role? False only when it said so after
 * our last grant to it, or a fence succeeded after that grant, or every lease
 * it could have has run out and its demotion time has passed.
 */
export function mayHold(ctx: MasterContext, name: NodeName): boolean {
  const v = ctx.views.get(name);
  if (v === undefined) return false;
  // No state ever named it master, so no leader ever granted it a lease.
  if (!everDesignated(ctx.state, name)) return false;
  if (confirmedFree(ctx, name)) return false;
  const r = v.report;
  // What a node we can hear says beats any clock arithmetic.
  if (r !== null && r.holding && reachable(ctx, name)) return true;
  if (ctx.state.frozenHolders.includes(name)) return true;
  // It answers (its koinode runs) and let go by timing alone: the timing
  // frees it, fence or not (a fence is for a koinode that cannot answer).
  if (r !== null && r.releasedByTime === true && reachable(ctx, name)) return ctx.nowMs < timingFreesAtMs(ctx, v);
  // With a fence, timing alone never frees the role: a frozen koinode ignores
  // its lease. Only a fence attempt that failed after our last grant falls
  // back to waiting; a failure before that grant permits nothing.
  if (ctx.params.fenceConfigured && !fenceFailedSinceGrant(v)) return true;
  // Timings differ between nodes during a rolling change: count on the longest.
  return ctx.nowMs < timingFreesAtMs(ctx, v);
}

/** It told us, after our last grant to it, that it holds nothing (or was fenced). */
export function confirmedFree(ctx: MasterContext, name: NodeName): boolean {
  const v = ctx.views.get(name);
  if (v === undefined) return false;
  if (v.fencedAtSeq !== null && v.fencedAtSeq >= v.lastGrantSeq) return true;
  // (Let go by timing alone is no word of being free: the leader's own timing decides.)
  return v.report !== null && !v.report.holding && v.report.releasedByTime !== true && v.reportSeq > v.lastGrantSeq;
}

/**
 * What a new leader must see a quorum hold before it renews the master it
 * inherited: its own first state version (`s` is that state). null: no master.
 */
export function inheritedDesignationPending(s: ClusterState): { versionEpoch: number; versionSeq: number } | null {
  return s.master === null ? null : { versionEpoch: s.versionEpoch, versionSeq: s.versionSeq };
}

/**
 * When timing alone frees `v`'s role (leader clock): its last grant (or any
 * earlier leader's) plus the longest lease and demote time and the margin.
 */
function timingFreesAtMs(ctx: MasterContext, v: NodeView): number {
  const lastGrant = Math.max(v.lastGrantMs ?? -Infinity, ctx.oldGrantsBoundMs);
  return lastGrant + ctx.boundLeaseMs + ctx.boundDemoteMs + ctx.params.safetyMarginMs;
}

/** What would free a runner that may still hold the role, for people. */
export function blockerReason(ctx: MasterContext, name: NodeName): string {
  const v = ctx.views.get(name);
  const r = v?.report ?? null;
  const way = `koi confirm-down ${name} once its machine is off`;
  if (r !== null && r.holding && reachable(ctx, name)) return `${name} still holds the role (demoting)`;
  if (ctx.state.frozenHolders.includes(name)) {
    return `${name} may have held the role through maintenance: waiting for it to answer${ctx.params.fenceConfigured ? ', or to be fenced' : ''}, or ${way}`;
  }
  if (ctx.params.fenceConfigured && v !== undefined && !fenceFailedSinceGrant(v)) return `${name} is unreachable: waiting for its fence, or ${way}`;
  const leftMs = v === undefined ? 0 : Math.max(0, timingFreesAtMs(ctx, v) - ctx.nowMs);
  return `${name} is unreachable: its lease and demote time run out in ${(leftMs / 1000).toFixed(1)}s, or ${way}`;
}

/** Why the designated master must be revoked now, or null to keep it. */
export function revokeReason(ctx: MasterContext, master: NodeName): string | null {
  if (!mayBeRunner(ctx, master)) return 'not a runner';
  if (ctx.state.manualMaster) return 'koi demote';
  if (ctx.state.target !== null && ctx.state.target !== master) return `switchover to ${ctx.state.target}`;
  if (isStopped(ctx.state, master)) return 'stopped by koi stop';
  if (presumedDown(ctx, master)) return 'unreachable';
  const r = ctx.views.get(master)?.report ?? null;
  if (r === null) return null;
  if (r.failed) return 'failed';
  if (r.disabled) return 'a service is disabled';
  // A service of the master died (its status said 92) while others may
  // still hold the role: the master is not whole, so the role moves; the
  // runner starts the service again as a slave. (Not a service merely not
  // yet checked after a koinode restart: only a status that said 92.)
  if (r.services.some((s) => s.died === true && !s.disabled)) return 'a service died (its status said 92)';
  if (!r.holding && !r.promotable) return 'not promotable';
  return null;
}

export function promotable(ctx: MasterContext, name: NodeName): boolean {
  const peer = ctx.peers.get(name);
  const r = ctx.views.get(name)?.report ?? null;
  return (
    peer !== undefined && peer.runner && reachable(ctx, name) && r !== null && r.promotable && !r.failed && !isStopped(ctx.state, name)
  );
}

/** A `koi promote` target that will not become promotable: give up on it. */
export function targetLost(ctx: MasterContext, name: NodeName): boolean {
  const r = ctx.views.get(name)?.report ?? null;
  return presumedDown(ctx, name) || isStopped(ctx.state, name) || (r !== null && r.failed);
}

/** Services of a report ordered as they start: by priority, unprioritised last, then by name. */
function serviceOrder(r: RunnerReport): { name: string; priority: number | null }[] {
  return [...r.services].sort((a, b) => (a.priority ?? Infinity) - (b.priority ?? Infinity) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/**
 * Which of two runners holds the fresher data, by the KOI_SCORE their
 * services' statuses print: services are compared in start order, the first
 * that differs decides, and a service without a score counts below any
 * score. Negative: `a` is fresher.
 */
export function compareScores(a: RunnerReport, b: RunnerReport): number {
  const order = serviceOrder({ ...a, services: [...a.services, ...b.services.filter((s) => !a.services.some((x) => x.name === s.name))] });
  for (const { name } of order) {
    const sa = a.services.find((s) => s.name === name)?.score ?? -1;
    const sb = b.services.find((s) => s.name === name)?.score ?? -1;
    if (sa !== sb) return sb - sa;
  }
  return 0;
}

/** The best score the leader knows of for each service, from any report it has (an unreachable node's last one too). */
export function bestScores(ctx: MasterContext): Map<string, number> {
  const best = new Map<string, number>();
  for (const v of ctx.views.values()) {
    for (const s of v.report?.services ?? []) {
      if (s.score !== undefined && s.score > (best.get(s.name) ?? -1)) best.set(s.name, s.score);
    }
  }
  return best;
}

/**
 * How far `r` is behind the best known score of any service (0: not
 * behind). A service that reports no score where another runner reports one
 * is as far behind as that score.
 */
export function lagOf(r: RunnerReport, best: ReadonlyMap<string, number>): number {
  let lag = 0;
  for (const [name, top] of best) lag = Math.max(lag, top - (r.services.find((s) => s.name === name)?.score ?? 0));
  return lag;
}

/**
 * The best runner to promote: the freshest data (KOI_SCORE), then one that
 * reports itself master, then one that did not fail recently, then the
 * longest uptime, then Bully rank. With `promote_max_lag`, a runner further
 * behind the best known score than that is not chosen (`koi promote` may
 * still pick it).
 */
export function chooseMaster(ctx: MasterContext): NodeName | null {
  const cands: { name: NodeName; r: RunnerReport; peer: PeerInfo }[] = [];
  const best = ctx.params.promoteMaxLag === null ? null : bestScores(ctx);
  for (const [name, peer] of ctx.peers) {
    if (!promotable(ctx, name)) continue;
    const r = ctx.views.get(name)!.report!;
    if (best !== null && lagOf(r, best) > ctx.params.promoteMaxLag!) continue;
    cands.push({ name, r, peer });
  }
  if (cands.length === 0) return null;
  const recent = (r: RunnerReport) => r.lastFailureAgoMs !== null && r.lastFailureAgoMs < ctx.params.failurePromotionTimeoutMs;
  cands.sort((a, b) => {
    const fresher = compareScores(a.r, b.r);
    if (fresher !== 0) return fresher;
    if (a.r.holding !== b.r.holding) return a.r.holding ? -1 : 1;
    if (recent(a.r) !== recent(b.r)) return recent(a.r) ? 1 : -1;
    if (a.r.uptimeMs !== b.r.uptimeMs) return b.r.uptimeMs - a.r.uptimeMs;
    return compareRank(a.peer, b.peer);
  });
  return cands[0]!.name;
}

/** A refusal message for an admin command, or null when it can be applied. */
export function refuseCommand(ctx: MasterContext, c: AdminCommand): string | null {
  switch (c.kind) {
    case 'promote': {
      const peer = ctx.peers.get(c.node);
      if (peer === undefined) return `no node named ${c.node} — see koi status for the names`;
      if (!ctx.heard.has(c.node)) return `${c.node} cannot be promoted: never heard from — is its koinode running and reachable?`;
      if (!peer.runner) return `${c.node} is not a runner — only runners can be master`;
      if (ctx.state.maintenance) return 'the cluster is in maintenance — run koi maintenance off first';
      if (ctx.state.master === c.node && !ctx.state.manualMaster) return null;
      if (!promotable(ctx, c.node)) {
        const r = ctx.views.get(c.node)?.report ?? null;
        const why = !reachable(ctx, c.node) ? 'unreachable' : r?.failed ? 'failed — run koi recover first' : isStopped(ctx.state, c.node) ? 'stopped — run koi start first' : 'not promotable yet';
        return `${c.node} cannot be promoted: ${why}`;
      }
      return null;
    }
    case 'confirm-down': {
      const peer = ctx.peers.get(c.node);
      if (peer === undefined) return `no node named ${c.node} — see koi status for the names`;
      if (c.node === ctx.self) return `${c.node} is the leader itself — it is up`;
      if (reachable(ctx, c.node)) return `${c.node} is reachable — it can tell the leader itself whether it holds the role; confirm-down is for a machine that is powered off`;
      return null;
    }
    case 'start':
    case 'stop':
    case 'recover': {
      const peer = ctx.peers.get(c.node);
      if (peer === undefined) return `no node named ${c.node} — see koi status for the names`;
      if (!mayBeRunner(ctx, c.node)) return `${c.node} is not a runner`;
      return null;
    }
    case 'demote':
    case 'elect':
    case 'maintenance':
      return null;
    default:
      return assertNever(c);
  }
}

/**
 * Apply an accepted admin command to the state (mutates `s`). `mayHoldNow`:
 * the runners that may hold the role right now (for maintenance on), or that
 * may have held it through maintenance and are not known to be free (off).
 */
export function applyCommand(s: ClusterState, c: AdminCommand, mayHoldNow: NodeName[]): string {
  switch (c.kind) {
    case 'promote':
      if (s.master === c.node) {
        s.target = null;
        s.manualMaster = false;
      } else {
        s.target = c.node;
        s.manualMaster = false;
      }
      return `promote ${c.node}`;
    case 'demote':
      s.manualMaster = true;
      s.target = null;
      return 'demote (manual masterless mode)';
    case 'elect':
      s.manualMaster = false;
      s.target = null;
      return 'elect (automatic master choice)';
    case 'maintenance':
      if (c.on) {
        // Maintenance promotes nobody: only those who may hold now can hold when it ends.
        s.maintenanceHolders = s.maintenance && s.maintenanceHolders !== undefined ? [...new Set([...s.maintenanceHolders, ...mayHoldNow])] : [...mayHoldNow];
      } else if (s.maintenance) {
        // Holders may ignore their lease until they learn maintenance is off.
        s.frozenHolders = [...new Set([...s.frozenHolders, ...mayHoldNow])];
        delete s.maintenanceHolders;
      }
      s.maintenance = c.on;
      return `maintenance ${c.on ? 'on' : 'off'}`;
    case 'start':
      s.stopped = s.stopped.filter((n) => n !== c.node);
      return `start ${c.node}`;
    case 'stop':
      if (!s.stopped.includes(c.node)) s.stopped = [...s.stopped, c.node];
      return `stop ${c.node}`;
    case 'recover':
      s.recoverTokens = { ...s.recoverTokens, [c.node]: (s.recoverTokens[c.node] ?? 0) + 1 };
      return `recover ${c.node}`;
    case 'confirm-down':
      s.frozenHolders = s.frozenHolders.filter((n) => n !== c.node);
      s.failures = [
        ...s.failures,
        { wallMs: c.wallMs, node: c.node, service: '-', event: 'confirm-down' as const, exitCode: null, signal: null, output: ['the operator confirmed the machine is down (koi confirm-down)'] },
      ].slice(-200);
      return `confirm-down ${c.node}`;
    default:
      return assertNever(c);
  }
}
