// Helpers for readable, named scenarios on the simulator.
import type { CoreEvent, CoreParams, NodeName, PeerInfo, ServiceDef } from '../../src/core/types';
import { majority, simParams } from './run-seed';
import { World } from './world';

export interface ClusterSpec {
  /** Node names with their Bully priority; all electors and runners unless said. */
  nodes: { name: NodeName; priority?: number; elector?: boolean; runner?: boolean }[];
  services?: ServiceDef[];
  params?: Partial<CoreParams>;
  seed?: number;
  /** Every runner's machine has a watchdog with this timeout ('own': each koinode's T from its own timings at start). */
  watchdogMs?: number | 'own';
}

export function cluster(spec: ClusterSpec): World {
  const peers: PeerInfo[] = spec.nodes.map((n) => ({
    name: n.name,
    priority: n.priority ?? 0,
    elector: n.elector ?? true,
    runner: n.runner ?? true,
  }));
  const params = simParams({ quorum: majority(peers), ...spec.params });
  const w = new World({
    seed: spec.seed ?? 1,
    peers,
    params,
    services: spec.services ?? [{ name: 'db', priority: 10 }],
    safetyChecked: params.quorum > peers.filter((p) => p.elector).length / 2,
  });
  if (spec.watchdogMs !== undefined) for (const p of peers) if (p.runner) w.setWatchdog(p.name, spec.watchdogMs === 'own' ? undefined : spec.watchdogMs);
  w.start();
  return w;
}

/** n1..nN, with n1 the highest priority unless given. */
export function names(n: number): ClusterSpec['nodes'] {
  return Array.from({ length: n }, (_, i) => ({ name: `n${i + 1}`, priority: n - i }));
}

export function leaderOf(w: World): NodeName | null {
  const ls = w.leaders();
  return ls.length === 1 ? ls[0]! : null;
}

/** The master the (single) leader has designated. */
export function masterOf(w: World): NodeName | null {
  const l = leaderOf(w);
  return l === null ? null : w.core(l)!.state.master;
}

/** One leader, one designated master whose services all reached promoted. */
export function settled(w: World): boolean {
  const m = masterOf(w);
  return m !== null && w.checker.fullyPromoted(m) && w.checker.holders().length === 1;
}

export function eventsOf<K extends CoreEvent['kind']>(w: World, kind: K, sinceMs = 0): { atMs: number; node: NodeName; ev: Extract<CoreEvent, { kind: K }> }[] {
  return w.events.filter((e) => e.ev.kind === kind && e.atMs >= sinceMs) as never;
}

/** Time of the first promote run that started on `node` after `sinceMs`. */
export function promoteStartedAt(w: World, node: NodeName | null, sinceMs: number): number | null {
  const r = w.runLog.find((x) => x.atMs >= sinceMs && x.event === 'promote' && (node === null || x.node === node));
  return r === undefined ? null : r.atMs;
}

/** Cut every link between the two groups, both ways. */
export function partition(w: World, a: NodeName[], b: NodeName[], cut = true): void {
  for (const x of a) for (const y of b) {
    w.link(x, y).cut = cut;
    w.link(y, x).cut = cut;
  }
}

export function assertNoViolations(w: World): void {
  if (w.checker.violations.length > 0) {
    throw new Error(`violations:\n${w.checker.violations.map((v) => `${v.atMs}ms ${v.kind}: ${v.text}`).join('\n')}\ntrace:\n${w.trace.slice(-40).join('\n')}`);
  }
}

/** Send an admin command and run until it is answered; returns the reply code. */
export function adminSync(w: World, cmd: Parameters<World['admin']>[0], via?: NodeName, maxMs = 3000): string {
  const id = w.admin(cmd, via);
  w.runUntilTrue(() => w.replies.has(id), maxMs);
  const r = w.replies.get(id);
  if (r === undefined) return 'no-reply';
  return r.ok ? 'ok' : `${r.code}: ${r.error}`;
}

/** `koi promote` as an operator would: retried until the runner is promotable. */
export function promoteWhenReady(w: World, node: NodeName, via?: NodeName): void {
  let r = '';
  if (!w.runUntilTrue(() => (r = adminSync(w, { kind: 'promote', node }, via)) === 'ok', 5000)) throw new Error(`promote ${node}: ${r}`);
}
