// Turning the core's knowledge into the status documents of `koi`.
import type { KoiNode } from '../core/node';
import type { RunnerReport, ServiceReport } from '../core/types';
import type { KoiConfig } from '../config/config';
import { formatHostPort } from '../config/values';
import type { NodeJson, NodeStateJson, ServiceJson, StatusJson } from '../admin-types';

function serviceJson(s: ServiceReport): ServiceJson {
  return { name: s.name, priority: s.priority, state: s.state, running: s.running, failed: s.failed, disabled: s.disabled, score: s.score ?? null };
}

function nodeState(elector: boolean, runner: boolean, reachable: boolean, r: RunnerReport | null): NodeStateJson {
  // A node never heard from has no known roles: it is simply not connected.
  if (!runner && !elector && !reachable) return 'disconnected';
  if (!runner) return elector ? 'elector' : 'other';
  if (!reachable || r === null) return 'disconnected';
  return r.state;
}

/**
 * When a failed runner is tried next, and why. A peer's report is as old as
 * its last reply, so the countdown is shortened by that; an unreachable
 * node's last report says nothing about now.
 */
function recovery(r: RunnerReport | null, reachable: boolean, ageMs: number): Pick<NodeJson, 'nextRecoveryInMs' | 'recoveryWaitReason'> {
  if (r === null || !reachable || !r.failed) return { nextRecoveryInMs: null, recoveryWaitReason: null };
  const inMs = r.nextRecoveryInMs ?? null;
  return { nextRecoveryInMs: inMs === null ? null : Math.max(0, Math.round(inMs - ageMs)), recoveryWaitReason: r.recoveryWaitReason ?? null };
}

/**
 * The cluster as this node sees it. On the leader it is complete; elsewhere
 * (`partial`) only this node's own services are known.
 */
/** Versions as status shows them: this node's own and what each peer said. */
export interface Versions {
  self: NonNullable<NodeJson['version']>;
  peers: ReadonlyMap<string, NonNullable<NodeJson['version']>>;
}

export function buildStatus(core: KoiNode, config: KoiConfig, nowMs: number, versions?: Versions): StatusJson {
  const views = core.leaderViews();
  const s = core.state;
  const lt = core.params.leaderTimeoutMs;
  const nodes: NodeJson[] = [];
  let electors = 0;
  let reachableElectors = 0;
  for (const addr of config.cluster.transport) {
    const peer = core.peers.get(addr.name)!;
    const self = addr.name === core.name;
    const v = views?.get(addr.name);
    const lastSeenMs = self ? 0 : v?.lastReplyMs != null ? Math.round(nowMs - v.lastReplyMs) : null;
    const reachable = self || (lastSeenMs !== null && lastSeenMs <= lt);
    const report = self && core.runner ? core.runner.report(nowMs) : (v?.report ?? null);
    // A peer never heard from has unknown roles; like the default quorum,
    // count it as an elector so the total does not shrink while it is down.
    if (peer.elector || !core.knowsRoles(addr.name)) {
      electors++;
      if (reachable) reachableElectors++;
    }
    nodes.push({
      name: addr.name,
      address: formatHostPort(addr),
      elector: peer.elector,
      runner: peer.runner,
      leader: core.leader === addr.name,
      state: nodeState(peer.elector, peer.runner, reachable, report),
      reachable,
      lastSeenMs,
      failcount: report?.failcount ?? 0,
      ...recovery(report, reachable, lastSeenMs ?? 0),
      services: (report?.services ?? []).map(serviceJson),
      timings: self
        ? { masterLeaseMs: core.params.masterLeaseMs, demoteTimeoutMs: core.params.demoteTimeoutMs }
        : peer.masterLeaseMs !== undefined && peer.demoteTimeoutMs !== undefined
          ? { masterLeaseMs: peer.masterLeaseMs, demoteTimeoutMs: peer.demoteTimeoutMs }
          : null,
      rttMs: self || v?.rttMs == null ? null : Math.round(v.rttMs),
      watchdog: peer.runner && report !== null ? (report.watchdog ?? 'off') : null,
      version: self ? (versions?.self ?? null) : (versions?.peers.get(addr.name) ?? null),
    });
  }
  return {
    cluster: {
      id: config.cluster.id,
      epoch: core.epoch,
      leader: core.leader,
      master: s.master,
      target: s.target,
      manualMaster: s.manualMaster,
      maintenance: s.maintenance,
      quorum: { required: core.params.quorum, electors, reachable: reachableElectors },
      // Only while the leader has a candidate it cannot promote yet.
      waitingFor: core.isLeader() && s.master === null ? core.blockers().map((b) => ({ ...b })) : [],
      network: core.isLeader()
        ? { quorumRttMs: roundOrNull(core.quorumRttMs()), windowMs: core.windowMs(), toleratedRttMs: core.toleratedRttMs(), warning: core.networkWarning() }
        : null,
    },
    nodes,
    answeredBy: core.name,
    partial: views === null,
  };
}

function roundOrNull(x: number | null): number | null {
  return x === null ? null : Math.round(x);
}
