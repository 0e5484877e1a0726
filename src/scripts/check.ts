// `koi check`: everything that can be validated without a running cluster.
import { openSync, readSync, closeSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { discoverServices, isExecutable, SCRIPT_EVENTS } from './discovery';
import { scriptPatternWarnings } from './patterns';
import type { KoiConfig } from '../config/config';

export interface CheckReport {
  services: { name: string; priority: number | null; scripts: string[]; disabled: boolean }[];
  problems: string[];
  notes: string[];
  /** Likely mistakes that still work: shown as warnings. */
  warnings: string[];
}

function firstLine(p: string): string {
  const fd = openSync(p, 'r');
  try {
    const buf = Buffer.alloc(256);
    const n = readSync(fd, buf, 0, buf.length, 0);
    return buf.subarray(0, n).toString('utf8').split('\n')[0] ?? '';
  } finally {
    closeSync(fd);
  }
}

/** A script needs a #! line naming an interpreter that exists (no shell runs it). */
export function shebangProblem(p: string): string | null {
  let line: string;
  try {
    line = firstLine(p);
  } catch (e) {
    return `${p}: cannot read it (${(e as NodeJS.ErrnoException).code})`;
  }
  if (line.charCodeAt(0) === 0x7f && line.slice(1, 4) === 'ELF') return null;
  if (!line.startsWith('#!')) return `${p}: no #! line — koi runs scripts without a shell; start it with e.g. #!/bin/sh`;
  const interp = line.slice(2).trim().split(/\s+/)[0] ?? '';
  if (interp === '' || !existsSync(interp)) return `${p}: interpreter ${interp || '(none)'} does not exist — fix the #! line`;
  return null;
}

export function checkServices(folder: string, config: KoiConfig | null): CheckReport {
  const d = discoverServices(folder);
  const report: CheckReport = { services: [], problems: [...d.problems], notes: [...d.warnings], warnings: [...d.names] };
  for (const s of d.services) {
    const scripts = s.single ? ['(single executable: all events)'] : [...(s.def.scripts ?? [])];
    report.services.push({ name: s.def.name, priority: s.def.priority, scripts, disabled: s.def.disabled ?? false });
    const files = s.single ? [s.path] : SCRIPT_EVENTS.map((e) => join(s.path, e)).filter((p) => existsSync(p));
    for (const f of files) {
      if (!isExecutable(f)) continue; // already reported by discovery
      const p = shebangProblem(f);
      if (p !== null) report.problems.push(p);
    }
    if (!s.single) for (const ev of SCRIPT_EVENTS) if (isExecutable(join(s.path, ev))) report.warnings.push(...scriptPatternWarnings(join(s.path, ev), ev));
    if (!s.single && (s.def.scripts ?? []).length === 0) report.notes.push(`${s.path}: no scripts — a null service (promotable once started)`);
  }
  if (config !== null) {
    const sv = config.service;
    const t = config.time;
    if (sv.statusTimeoutMs >= t.statusIntervalMs * 4) report.notes.push(`status_timeout (${sv.statusTimeoutMs}ms) is long next to status_interval (${t.statusIntervalMs}ms): a hung status delays failure detection`);
    if (sv.demoteTimeoutMs > 60_000) report.notes.push(`demote_timeout ${sv.demoteTimeoutMs}ms adds directly to failover time when a master is cut off`);
    const prioritized = d.services.filter((s) => s.def.priority !== null).length;
    if (prioritized > 1) report.notes.push(`when a master is cut off from the leader, all its demote scripts run at once and must finish within demote_timeout together`);
  }
  return report;
}
