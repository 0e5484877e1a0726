// The replicated cluster state: creation, version ordering and copying.
import type { ClusterState, NodeName, PeerInfo } from './types';

export const MAX_FAILURE_RECORDS = 200;

export function initialClusterState(): ClusterState {
  return {
    versionEpoch: 0,
    versionSeq: 0,
    master: null,
    masterEpoch: 0,
    manualMaster: false,
    target: null,
    maintenance: false,
    frozenHolders: [],
    designated: [],
    stopped: [],
    recoverTokens: {},
    failures: [],
  };
}

/** Negative when a is older than b, zero when equal, positive when newer. */
export function compareVersion(
  a: { versionEpoch: number; versionSeq: number },
  b: { versionEpoch: number; versionSeq: number },
): number {
  return a.versionEpoch !== b.versionEpoch ? a.versionEpoch - b.versionEpoch : a.versionSeq - b.versionSeq;
}

export function cloneState(s: ClusterState): ClusterState {
  return {
    ...s,
    stopped: [...s.stopped],
    frozenHolders: [...s.frozenHolders],
    ...(s.designated !== undefined ? { designated: [...s.designated] } : {}),
    ...(s.maintenanceHolders !== undefined ? { maintenanceHolders: [...s.maintenanceHolders] } : {}),
    recoverTokens: { ...s.recoverTokens },
    failures: s.failures.map((f) => ({ ...f, output: [...f.output] })),
  };
}

/** Bully rank order: negative when a ranks higher than b. */
export function compareRank(a: PeerInfo, b: PeerInfo): number {
  if (a.priority !== b.priority) return b.priority - a.priority;
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

export function outranks(a: PeerInfo, b: PeerInfo): boolean {
  return compareRank(a, b) < 0;
}

export function isStopped(s: ClusterState, name: NodeName): boolean {
  return s.stopped.includes(name);
}

/**
 * Could a state ever have named `name` master? Only such a runner can have
 * been granted a lease (an old state without the list: assume it could).
 */
export function everDesignated(s: ClusterState, name: NodeName): boolean {
  return s.designated === undefined || s.master === name || s.designated.includes(name);
}
