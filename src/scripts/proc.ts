// What Linux's /proc says about a process: its group, start time, and
// whether it is a zombie (dead, waiting for its parent to reap it).
import { readdirSync, readFileSync } from 'node:fs';

export interface ProcInfo {
  pid: number;
  pgrp: number;
  /** Start time in clock ticks since boot (distinguishes a reused pid). */
  startTicks: number;
  zombie: boolean;
}

export function procStat(pid: number): ProcInfo | null {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // After "pid (comm) ": state ppid pgrp session tty tpgid flags minflt
  // cminflt majflt cmajflt utime stime cutime cstime priority nice
  // num_threads itrealvalue starttime ...
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { pid, pgrp: Number(f[2]), startTicks: Number(f[19]), zombie: f[0] === 'Z' };
}

/** Every process /proc shows (empty where there is no /proc). */
export function allProcs(): ProcInfo[] {
  let names: string[];
  try {
    names = readdirSync('/proc');
  } catch {
    return [];
  }
  const out: ProcInfo[] = [];
  for (const n of names) {
    if (!/^[0-9]+$/.test(n)) continue;
    const p = procStat(Number(n));
    if (p !== null) out.push(p);
  }
  return out;
}

/** Running: it exists and is not a zombie. */
export function processAlive(pid: number): boolean {
  const p = procStat(pid);
  return p !== null && !p.zombie;
}
