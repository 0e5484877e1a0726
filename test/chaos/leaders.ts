// Leader changes of a fault-injection run, split into the time the run
// disturbed the cluster and quiet time.
//
// Source: each koinode's own log line `elected leader for epoch N`. It is
// written by the node that won, at the moment it won, to a file the runner
// reads after the run, so it sees every election: one that lasted less than
// a polling interval, one on the far side of a partition, one just before
// its node was killed (koinode's stdout is a file, written synchronously).
// Polling `koi status` asks one node at a time every 500 ms and misses those;
// the `leader-changed` handler event needs handler scripts the run does not
// install, and a handler dies unrun with a killed node.
//
// Every election after the cluster's first is a change, also one that
// re-elects the same node in a new epoch: its followers lost their leader
// and campaigned, which is the disruption being measured.

export interface Election {
  atMs: number;
  node: string;
  epoch: number;
}

/** Something the run did, from when it began until it ended (a fault healed, a command exited). */
export interface Span {
  fromMs: number;
  toMs: number;
  what: string;
}

/**
 * A console log's local time of day as ms since the epoch: the day is the
 * one that puts the time nearest `nearMs` (a run does not last 12 hours).
 */
export function consoleTimeMs([h, min, sec, milli]: [number, number, number, number], nearMs: number): number {
  const day = new Date(nearMs);
  day.setHours(h, min, sec, milli);
  let t = day.getTime();
  if (t < nearMs - 12 * 3600_000) t += 24 * 3600_000;
  else if (t > nearMs + 12 * 3600_000) t -= 24 * 3600_000;
  return t;
}

const TIME = '(\\d\\d):(\\d\\d):(\\d\\d)\\.(\\d{3})';
const ELECTED = new RegExp(`^${TIME} info (\\S+) election: elected leader for epoch (\\d+)`);
const TAKEOVER_FAILED = new RegExp(`^${TIME} warn (\\S+) core: (takeover|rescue \\(leader without a master\\)) of (\\S+) failed: .*; next try in (\\d+(?:\\.\\d+)?)s at the earliest`);

const timeOf = (m: RegExpExecArray, nearMs: number) => consoleTimeMs(m.slice(1, 5).map(Number) as [number, number, number, number], nearMs);

/** The elections a koinode's console log records. */
export function electionsIn(log: string, nearMs: number): Election[] {
  const out: Election[] = [];
  for (const line of log.split('\n')) {
    const m = ELECTED.exec(line);
    if (m !== null) out.push({ atMs: timeOf(m, nearMs), node: m[5]!, epoch: Number(m[6]) });
  }
  return out;
}

/**
 * A failed takeover (or rescue) makes its node wait before the next try,
 * up to 16 × takeover_settle: the takeover that finally succeeds may come
 * long after the fault that made the first one fail.
 */
export function takeoverBackoffs(log: string, nearMs: number): Span[] {
  const out: Span[] = [];
  for (const line of log.split('\n')) {
    const m = TAKEOVER_FAILED.exec(line);
    if (m === null) continue;
    const t = timeOf(m, nearMs);
    out.push({ fromMs: t, toMs: t + Math.round(Number(m[8]) * 1000), what: `${m[5]}'s ${m[6]!.split(' ')[0]} of ${m[7]} failed` });
  }
  return out;
}

const LOAD = new RegExp(`^${TIME} warn (\\S+) core: (?:round trip to a quorum of electors is (\\d+)ms;|event loop stalled for (\\d+)ms)`);

/**
 * Where a koinode said the host is too slow for its timings: a round trip
 * to a quorum near what leader_timeout tolerates (the leader measures it), or
 * its own event loop stalled. A leader change then has a cause outside koi
 * and outside the run's actions: the machine (two cores, several runs).
 */
export function loadWarnings(log: string, nearMs: number): Span[] {
  const out: Span[] = [];
  for (const line of log.split('\n')) {
    const m = LOAD.exec(line);
    if (m === null) continue;
    const t = timeOf(m, nearMs);
    if (m[6] !== undefined) out.push({ fromMs: t, toMs: t, what: `${m[5]}: round trip to a quorum ${m[6]}ms` });
    else out.push({ fromMs: t - Number(m[7]), toMs: t, what: `${m[5]}: event loop stalled ${m[7]}ms` });
  }
  return out;
}

export interface LeaderClass {
  changes: number;
  ms: number;
  perMinute: number;
}

export interface LeaderReport {
  /** From a disturbance's start until settleMs after it ended. */
  during: LeaderClass;
  quiet: LeaderClass;
  /** Changes before the cluster first settled or after the run began stopping it: not counted. */
  outside: number;
  /** Quiet-time changes a node's load warning explains (within settleMs before), one line each. */
  underLoad: string[];
  /** Quiet-time changes nothing explains, one line each. */
  unexplained: string[];
  settleMs: number;
}

export interface LeaderInput {
  elections: Election[];
  /** Faults, admin commands, node (re)starts and downtime: everything the run did. */
  disturbances: Span[];
  /** Failed takeovers' waits: a cause only when the failure itself fell in disturbed time. */
  backoffs: Span[];
  /** Koinodes' warnings that the host is too slow for their timings. */
  load: Span[];
  /** After a disturbance ends, how long the cluster may still elect because of it. */
  settleMs: number;
  /** The counted window: from the cluster first settled until the run began stopping the nodes. */
  fromMs: number;
  toMs: number;
}

/** Quiet-time leader changes tolerated before the run reports them: none. */
export const QUIET_LEADER_CHANGES_TOLERATED = 0;

function merge(spans: [number, number][]): [number, number][] {
  const out: [number, number][] = [];
  for (const [a, b] of [...spans].sort((x, y) => x[0] - y[0])) {
    const last = out[out.length - 1];
    if (last !== undefined && a <= last[1]) last[1] = Math.max(last[1], b);
    else out.push([a, b]);
  }
  return out;
}

const inside = (union: [number, number][], t: number) => union.some(([a, b]) => t >= a && t <= b);

export function countLeaderChanges(i: LeaderInput): LeaderReport {
  const settled = (s: Span): [number, number] => [s.fromMs, s.toMs + i.settleMs];
  let union = merge(i.disturbances.map(settled));
  // A backoff that began in disturbed time extends it; that may take in the next one.
  const pending = [...i.backoffs].sort((a, b) => a.fromMs - b.fromMs);
  for (let grew = true; grew; ) {
    grew = false;
    for (let k = 0; k < pending.length; k++) {
      if (!inside(union, pending[k]!.fromMs)) continue;
      union = merge([...union, settled(pending[k]!)]);
      pending.splice(k--, 1);
      grew = true;
    }
  }
  const windowMs = Math.max(0, i.toMs - i.fromMs);
  let duringMs = 0;
  for (const [a, b] of union) duringMs += Math.max(0, Math.min(b, i.toMs) - Math.max(a, i.fromMs));
  const during = { changes: 0, ms: duringMs, perMinute: 0 };
  const quiet = { changes: 0, ms: windowMs - duringMs, perMinute: 0 };
  const report: LeaderReport = { during, quiet, outside: 0, underLoad: [], unexplained: [], settleMs: i.settleMs };
  const elections = [...i.elections].sort((a, b) => a.atMs - b.atMs || a.epoch - b.epoch);
  for (let k = 1; k < elections.length; k++) {
    const e = elections[k]!;
    if (e.atMs < i.fromMs || e.atMs > i.toMs) report.outside++;
    else if (inside(union, e.atMs)) during.changes++;
    else {
      quiet.changes++;
      const prev = elections[k - 1]!;
      const what = `${e.node} elected for epoch ${e.epoch} at ${new Date(e.atMs).toISOString().slice(11, 23)} (before: ${prev.node}, epoch ${prev.epoch})`;
      const load = i.load.filter((s) => s.fromMs <= e.atMs && s.toMs >= e.atMs - i.settleMs);
      if (load.length > 0) {
        report.underLoad.push(`${what} after ${load.map((s) => s.what).join(', ')}`);
        continue;
      }
      const sinceMs = Math.min(...i.disturbances.filter((s) => s.toMs <= e.atMs).map((s) => e.atMs - s.toMs));
      report.unexplained.push(what + (Number.isFinite(sinceMs) ? `, ${sinceMs}ms after the run's last action ended` : ''));
    }
  }
  for (const c of [during, quiet]) c.perMinute = c.ms > 0 ? c.changes / (c.ms / 60_000) : 0;
  return report;
}

/** The finding, if quiet time had more leader changes than tolerated. */
export function leaderFindings(r: LeaderReport): string[] {
  if (r.unexplained.length <= QUIET_LEADER_CHANGES_TOLERATED) return [];
  return [`${r.unexplained.length} leader change(s) in quiet time, more than ${r.settleMs}ms after every fault, command and restart of the run and with no load warning from a koinode: ${r.unexplained.slice(0, 5).join(' | ')}`];
}
