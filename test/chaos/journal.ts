// Reading the journal of a fault-injection run. Every service script of every
// node appended `<ns> <node> <service> <event> begin|end <exit>` to one file
// on one machine, so the order of lines is the order of events; the runner
// added `<ns> <node> * crash|fence - -` when a machine went down. From that we
// rebuild who held the master role when, independently of koi.

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
}

export function parseJournal(text: string): string[][] {
  return text.split('\n').filter((l) => l.trim() !== '').map((l) => l.split(' '));
}

export function checkJournal(lines: string[][], priorities: Map<string, number | null>): JournalReport {
  const nodes = new Map<string, NodeModel>();
  const model = (n: string) => {
    let m = nodes.get(n);
    if (m === undefined) nodes.set(n, (m = { holding: new Set(), started: new Set(), promoted: new Set() }));
    return m;
  };
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
    } else if (phase === 'begin') {
      const p = priorities.get(svc) ?? null;
      if (event === 'promote') {
        for (const [other, om] of nodes) {
          if (other !== node && om.holding.size > 0) report.overlaps.push(`${l.join(' ')} while ${other} holds ${[...om.holding].join(',')}`);
        }
        m.holding.add(svc);
        if (p !== null) for (const s of all) if ((priorities.get(s) ?? null) !== null && priorities.get(s)! < p && !m.promoted.has(s)) report.orderViolations.push(`${l.join(' ')}: ${s} (priority ${priorities.get(s)}) not promoted`);
      } else if (event === 'start') {
        if (p !== null) for (const s of all) if ((priorities.get(s) ?? null) !== null && priorities.get(s)! < p && !m.started.has(s)) report.orderViolations.push(`${l.join(' ')}: ${s} (priority ${priorities.get(s)}) not started`);
      } else if (event === 'demote' || event === 'stop') {
        m.promoted.delete(svc);
        if (event === 'stop') m.started.delete(svc);
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
