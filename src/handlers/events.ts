// Cluster events for handlers (SPEC 7), derived on the leader by comparing
// what it sees now with what it saw a moment ago.

export type HandlerEventKind =
  | 'node-up'
  | 'node-down'
  | 'runner-failed'
  | 'runner-recovered'
  | 'master-changed'
  | 'leader-changed'
  | 'maintenance-on'
  | 'maintenance-off'
  | 'sync';

export interface ViewNode {
  name: string;
  address: string;
  reachable: boolean;
  runner: boolean;
  state: string;
  /** The KOI_SCORE of each service that printed one (see docs/SERVICES.md). */
  scores?: { service: string; score: number }[];
}

export interface ClusterView {
  leader: string;
  epoch: number;
  master: string | null;
  maintenance: boolean;
  nodes: ViewNode[];
}

export interface HandlerEvent {
  kind: HandlerEventKind;
  /** The node the event is about (empty for cluster-wide events). */
  node: string;
  address: string;
}

/** `node:service=score` for every reachable runner's scored service, space separated. */
export function scoresLine(v: ClusterView): string {
  return v.nodes
    .filter((n) => n.runner && n.reachable)
    .flatMap((n) => (n.scores ?? []).map((s) => `${n.name}:${s.service}=${s.score}`))
    .join(' ');
}

/** Runners whose services are healthy: the names a handler publishes. */
export function upNodes(v: ClusterView): ViewNode[] {
  return v.nodes.filter((n) => n.runner && n.reachable && (n.state === 'slave' || n.state === 'master'));
}

/**
 * Events between two views of the same leadership; `prev === null` starts a
 * leadership (leader-changed, then sync with the full view). When every node
 * is reachable again after some were not, a sync follows (a partition healed).
 */
export function diffViews(prev: ClusterView | null, next: ClusterView): HandlerEvent[] {
  const ev = (kind: HandlerEventKind, n?: ViewNode): HandlerEvent => ({ kind, node: n?.name ?? '', address: n?.address ?? '' });
  if (prev === null) {
    const me = next.nodes.find((n) => n.name === next.leader);
    return [ev('leader-changed', me), ev('sync')];
  }
  const out: HandlerEvent[] = [];
  const before = new Map(prev.nodes.map((n) => [n.name, n]));
  for (const n of next.nodes) {
    const p = before.get(n.name);
    if (p === undefined) continue;
    if (!p.reachable && n.reachable) out.push(ev('node-up', n));
    if (p.reachable && !n.reachable) out.push(ev('node-down', n));
    if (p.state !== 'failed' && n.state === 'failed') out.push(ev('runner-failed', n));
    if (p.state === 'failed' && n.state !== 'failed' && n.reachable) out.push(ev('runner-recovered', n));
  }
  if (prev.master !== next.master) out.push(ev('master-changed', next.nodes.find((n) => n.name === next.master)));
  if (!prev.maintenance && next.maintenance) out.push(ev('maintenance-on'));
  if (prev.maintenance && !next.maintenance) out.push(ev('maintenance-off'));
  const healed = prev.nodes.some((n) => !n.reachable) && next.nodes.every((n) => n.reachable);
  if (healed) out.push(ev('sync'));
  return out;
}
