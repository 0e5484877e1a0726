// Reading the journal of a fault-injection run. Every service script of every
// node appended `<ns> <node> <service> <event> begin|end <exit>` to one file
// on one machine, so the order of lines is the order of events; the runner
// added `<ns> <node> * crash|fence - -` when a machine went down. From that we
// rebuild who held the master role when, independently of koi.
//
// Priority order: starts and promotes ascending, demotes and stops
// descending. Two exceptions the journal must be told about or can see: a
// master whose lease ran out demotes everything at once (koinode logs it:
// `leaseExpiries`), and a failing service runs `failed` then `stop` in no
// order.
import { consoleTimeMs, leaderFindings, type LeaderReport } from './leaders';

export interface JournalReport {
  lines: number;
  masterChanges: number;
  overlaps: string[];
  orderViolations: string[];
  /** Time with no fully promoted master, after the first one appeared. */
  noMasterTotalMs: number;
  noMasterLongestMs: number;
  /** Each gap between one master going away and the next being fully promoted. */
  failoversMs: number[];
  /** The node fully promoted at the end, if any. */
  masterAtEnd: string | null;
}

interface NodeModel {
  holding: Set<string>;
  started: Set<string>;
  promoted: Set<string>;
  /** Services whose `failed` ran: their next stop belongs to the failure. */
  failing: Set<string>;
  /** When it began to hold the role (its first promote since it held nothing). */
  holdingSinceMs: number | null;
}

/** A lease expiry may be logged a little after the first demote it caused began. */
const EXPIRY_LOGGED_LATE_MS = 1000;

export function parseJournal(text: string): string[][] {
  return text.split('\n').filter((l) => l.trim() !== '').map((l) => l.split(' '));
}

/**
 * `leaseExpired`: per node, when (ms since the epoch) its koinode logged that
 * its lease ran out while it held the role.
 */
export function checkJournal(lines: string[][], priorities: Map<string, number | null>, leaseExpired: Map<string, number[]> = new Map()): JournalReport {
  const nodes = new Map<string, NodeModel>();
  const model = (n: string) => {
    let m = nodes.get(n);
    if (m === undefined) nodes.set(n, (m = { holding: new Set(), started: new Set(), promoted: new Set(), failing: new Set(), holdingSinceMs: null }));
    return m;
  };
  /** The lease of this holder ran out while it held: its demotes go all at once. */
  const urgent = (node: string, m: NodeModel, t: number) =>
    m.holdingSinceMs !== null && (leaseExpired.get(node) ?? []).some((x) => x >= m.holdingSinceMs! && x <= t + EXPIRY_LOGGED_LATE_MS);
  const prio = (s: string) => priorities.get(s) ?? null;
  /** Services of `m` with a priority above `p` that are still in `set`. */
  const above = (set: Set<string>, p: number) => [...set].filter((s) => prio(s) !== null && prio(s)! > p);
  const all = [...priorities.keys()];
  const report: JournalReport = { lines: lines.length, masterChanges: 0, overlaps: [], orderViolations: [], noMasterTotalMs: 0, noMasterLongestMs: 0, failoversMs: [], masterAtEnd: null };
  let master: string | null = null;
  let seenMaster = false;
  let lostAtMs: number | null = null;
  const fully = (m: NodeModel) => all.every((s) => m.promoted.has(s));
  const ms = (ns: string) => Number(BigInt(ns) / 1_000_000n);

  for (const l of lines) {
    const [ts, node, svc, event, phase, code] = l as [string, string, string, string, string, string];
    const m = model(node);
    const t = ms(ts);
    if (svc === '*') {
      // The machine went down: its services with it.
      m.holding.clear();
      m.started.clear();
      m.promoted.clear();
      m.failing.clear();
      m.holdingSinceMs = null;
    } else if (phase === 'begin') {
      const p = priorities.get(svc) ?? null;
      if (event === 'promote') {
        for (const [other, om] of nodes) {
          if (other !== node && om.holding.size > 0) report.overlaps.push(`${l.join(' ')} while ${other} holds ${[...om.holding].join(',')}`);
        }
        if (m.holding.size === 0) m.holdingSinceMs = t;
        m.holding.add(svc);
        if (p !== null) for (const s of all) if ((priorities.get(s) ?? null) !== null && priorities.get(s)! < p && !m.promoted.has(s)) report.orderViolations.push(`${l.join(' ')}: ${s} (priority ${priorities.get(s)}) not promoted`);
      } else if (event === 'start') {
        if (p !== null) for (const s of all) if ((priorities.get(s) ?? null) !== null && priorities.get(s)! < p && !m.started.has(s)) report.orderViolations.push(`${l.join(' ')}: ${s} (priority ${priorities.get(s)}) not started`);
      } else if (event === 'failed') {
        m.failing.add(svc);
      } else if (event === 'demote' || event === 'stop') {
        m.promoted.delete(svc);
        if (event === 'stop') m.started.delete(svc);
        const unordered = event === 'stop' ? m.failing.delete(svc) : urgent(node, m, t);
        if (p !== null && !unordered) {
          for (const s of above(event === 'stop' ? m.started : m.promoted, p)) {
            report.orderViolations.push(`${l.join(' ')}: ${s} (priority ${prio(s)}) still ${event === 'stop' ? 'started' : 'promoted'}`);
          }
        }
      }
    } else if (phase === 'end') {
      const ok = code === '0';
      if (event === 'demote' || event === 'stop') m.holding.delete(svc);
      if (event === 'start' && ok) m.started.add(svc);
      if (event === 'promote' && ok) m.promoted.add(svc);
      if (event === 'status' && code === '92') {
        m.started.delete(svc);
        m.promoted.delete(svc);
        m.holding.delete(svc);
      }
      if (m.holding.size === 0) m.holdingSinceMs = null;
    }
    // Who is the fully promoted master now?
    const now = [...nodes].filter(([, x]) => fully(x)).map(([n]) => n);
    const current: string | null = now.length === 1 ? now[0]! : now.length === 0 ? null : master;
    if (current !== master) {
      if (current === null) lostAtMs = t;
      else {
        if (lostAtMs !== null) {
          const gap = t - lostAtMs;
          report.failoversMs.push(gap);
          report.noMasterTotalMs += gap;
          report.noMasterLongestMs = Math.max(report.noMasterLongestMs, gap);
          lostAtMs = null;
        }
        if (seenMaster) report.masterChanges++;
        seenMaster = true;
      }
      master = current;
    }
  }
  report.masterAtEnd = master;
  return report;
}

// The warning, and each demote it causes (logged just before the script starts;
// the warning itself can come hundreds of ms later on a loaded machine).
const LEASE_EXPIRED = /^(\d\d):(\d\d):(\d\d)\.(\d{3}) (?:warn \S+ runner: master lease expired|info \S+ scripts: \S+\/demote \(lease expired: all at once\))/;

/**
 * When a koinode's log (console format, local `HH:mm:ss.SSS`) says its lease
 * ran out, as ms since the epoch.
 */
export function leaseExpiries(log: string, nearMs: number): number[] {
  const out: number[] = [];
  for (const line of log.split('\n')) {
    const m = LEASE_EXPIRED.exec(line);
    if (m !== null) out.push(consoleTimeMs(m.slice(1, 5).map(Number) as [number, number, number, number], nearMs));
  }
  return out;
}

export interface RunOutcome {
  journal: JournalReport;
  zombies: number;
  leftovers: number;
  /** How long the cluster took to converge after the final heal; null: it never did. */
  convergeMs: number | null;
  convergeBoundMs: number;
  leaders: LeaderReport;
}

/** Everything wrong with a fault-injection run, one line per kind of fault. */
export function violationsOf(o: RunOutcome): string[] {
  const j = o.journal;
  const out: string[] = [];
  if (j.overlaps.length > 0) out.push(`${j.overlaps.length} overlapping master interval(s): ${j.overlaps.slice(0, 5).join(' | ')}`);
  if (j.orderViolations.length > 0) out.push(`${j.orderViolations.length} priority-order violation(s): ${j.orderViolations.slice(0, 5).join(' | ')}`);
  if (o.zombies > 0) out.push(`${o.zombies} zombie(s) left unreaped by koinode`);
  if (o.leftovers > 0) out.push(`${o.leftovers} process(es) still running after every koinode stopped`);
  if (o.convergeMs === null || o.convergeMs > o.convergeBoundMs) out.push(`no convergence within ${o.convergeBoundMs}ms of the final heal`);
  out.push(...leaderFindings(o.leaders));
  return out;
}
