// Which scripts this koinode has running, kept in state_dir/runs so that the
// next koinode on this machine can finish what a killed one left behind.
// Scripts run in their own process groups, so a koinode that dies (kill -9,
// a crash, the OOM killer) leaves them running: an orphaned `promote` would
// go on while the leader, told by the new koinode's boot status that the
// service is free, promotes another runner.
//
// A record is written before the spawn (service, event, whether the role may
// be held, a token the script gets as KOI_RUN) and completed with the process
// group after it; it is removed when the run has finished. No fsync: the
// page cache outlives a killed process, and a machine that rebooted (another
// boot_id) has no leftovers to kill.
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { groupAlive } from '../scripts/executor';
import { allProcs, procStat } from '../scripts/proc';

/** Present while the runner holds the master role. */
const HOLDING = 'holding.json';

export interface RunRecord {
  v: 1;
  bootId: string;
  token: string;
  service: string;
  event: string;
  /** The runner held or may have held the master role when this run began. */
  mayHold: boolean;
  pgid: number | null;
  /** The group leader's start time (/proc/PID/stat, clock ticks since boot). */
  leaderStart: number | null;
  startedWall: string;
}

/** What the boot found and did. */
export interface Leftovers {
  /** Services an interrupted run may have left promoted: demote before reporting free. */
  interrupted: string[];
  /**
   * The earlier koinode of this boot died while its runner held the master
   * role: every service may be promoted, whatever its status says.
   */
  wasHolding: boolean;
  /**
   * holding.json was left in place (or written) because something may be
   * held: it goes only once this koinode has let go, so that a second kill
   * before then does not forget the first.
   */
  holdingKept: boolean;
  /** One line per killed process group, for the log. */
  killed: string[];
  /** Records of another boot (or unreadable) that were discarded. */
  discarded: number;
}

export function readBootId(): string {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return 'unknown';
  }
}

function environ(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0');
  } catch {
    return [];
  }
}

/** Block the thread for `ms` (used only at boot, before anything else runs). */
function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

export class RunJournal {
  readonly dir: string;
  private readonly bootId = readBootId();
  private readonly byRun = new Map<number, { file: string; rec: RunRecord }>();

  constructor(
    stateDir: string,
    private readonly onWriteError: (message: string) => void,
  ) {
    this.dir = join(stateDir, 'runs');
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
  }

  /** Record a run about to start; returns the token for its KOI_RUN variable. */
  begin(runId: number, incarnation: number, service: string, event: string, mayHold: boolean): string {
    const token = `${process.pid}-${incarnation}-${runId}`;
    const rec: RunRecord = { v: 1, bootId: this.bootId, token, service, event, mayHold, pgid: null, leaderStart: null, startedWall: new Date().toISOString() };
    const file = join(this.dir, `${token}.json`);
    this.byRun.set(runId, { file, rec });
    this.write(file, rec);
    return token;
  }

  /** The run's process group exists now (its leader's pid). */
  spawned(runId: number, pgid: number | undefined): void {
    const e = this.byRun.get(runId);
    if (e === undefined || pgid === undefined) return;
    e.rec.pgid = pgid;
    e.rec.leaderStart = procStat(pgid)?.startTicks ?? null;
    this.write(e.file, e.rec);
  }

  end(runId: number): void {
    const e = this.byRun.get(runId);
    if (e === undefined) return;
    this.byRun.delete(runId);
    try {
      rmSync(e.file, { force: true });
    } catch {
      // Never written (reported then); a stale record costs the next start only a check.
    }
  }

  /**
   * The runner holds the master role (or stopped holding it). A status that
   * exits 0 does not say whether a service is master, so after a kill the
   * next koinode needs this to demote what its predecessor held.
   */
  setHolding(holding: boolean): void {
    const file = join(this.dir, HOLDING);
    try {
      if (holding) {
        writeFileSync(`${file}.tmp`, JSON.stringify({ v: 1, bootId: this.bootId, sinceWall: new Date().toISOString() }), { mode: 0o600 });
        renameSync(`${file}.tmp`, file);
      } else rmSync(file, { force: true });
    } catch (e) {
      this.onWriteError(`cannot ${holding ? 'write' : 'remove'} ${file}: ${(e as Error).message}`);
    }
  }

  private write(file: string, rec: RunRecord): void {
    // A full disk must not stop a script from running (a demote above all):
    // the record is a safety net, and the log says it could not be written.
    // Through a rename, so a kill in the middle of rewriting a record (the
    // run has started by then) never leaves it torn.
    try {
      writeFileSync(`${file}.tmp`, JSON.stringify(rec), { mode: 0o600 });
      renameSync(`${file}.tmp`, file);
    } catch (e) {
      this.onWriteError(`cannot record ${rec.service}/${rec.event} in ${file}: ${(e as Error).message} — if koinode dies now, its next start cannot stop this script`);
    }
  }

  /**
   * At boot, before the core starts: SIGKILL every process group an earlier
   * koinode of this boot left running, and wait until each is gone.
   * `progress` is told every few seconds while something refuses to die.
   */
  reapLeftovers(progress: (waitingMs: number, groups: number[]) => void): Leftovers {
    const result: Leftovers = { interrupted: [], wasHolding: false, holdingKept: false, killed: [], discarded: 0 };
    let files: string[];
    try {
      files = readdirSync(this.dir);
    } catch {
      return result;
    }
    const records: RunRecord[] = [];
    // (A marker that is not this boot's is discarded with the rest below.)
    try {
      const h = JSON.parse(readFileSync(join(this.dir, HOLDING), 'utf8')) as { bootId?: unknown };
      result.wasHolding = h.bootId === this.bootId;
    } catch {
      // no marker (or torn): the runner held nothing
    }
    // A .tmp is a write cut short: a first one (the run had not started) or a
    // rewrite (the .json beside it still names the run).
    for (const f of files.filter((x) => x.endsWith('.json') && x !== HOLDING)) {
      const path = join(this.dir, f);
      try {
        const r = JSON.parse(readFileSync(path, 'utf8')) as RunRecord;
        if (r.v === 1 && r.bootId === this.bootId && typeof r.token === 'string' && typeof r.service === 'string') records.push(r);
        else result.discarded++;
      } catch {
        result.discarded++;
      }
    }
    if (records.length > 0) {
      const groups = this.groupsOf(records);
      for (const [pgid, rec] of groups) {
        try {
          process.kill(-pgid, 'SIGKILL');
          result.killed.push(`${rec.service}/${rec.event} (process group ${pgid}, started ${rec.startedWall})`);
        } catch {
          // ended meanwhile
        }
      }
      const startMs = Date.now();
      let nextNoteMs = startMs + 5000;
      for (;;) {
        const alive = [...groups.keys()].filter((g) => groupAlive(g));
        if (alive.length === 0) break;
        if (Date.now() >= nextNoteMs) {
          progress(Date.now() - startMs, alive);
          nextNoteMs += 5000;
        }
        for (const g of alive) {
          try {
            process.kill(-g, 'SIGKILL');
          } catch {
            // gone
          }
        }
        sleepSync(25);
      }
      const suspect = new Set<string>();
      for (const r of records) if (r.mayHold || r.event === 'promote' || r.event === 'demote') suspect.add(r.service);
      result.interrupted = [...suspect].sort();
    }
    // Before the records go: whatever is suspect stays recorded as held.
    if (result.wasHolding || result.interrupted.length > 0) {
      this.setHolding(true);
      result.holdingKept = true;
    }
    for (const f of files) if (f !== HOLDING || !result.holdingKept) rmSync(join(this.dir, f), { force: true });
    return result;
  }

  /**
   * The process groups that are provably the recorded runs': a live member
   * carries the run's KOI_RUN token, or the group's leader is still the
   * process that was recorded (same start time). A group number alone could
   * have been reused by an unrelated process since.
   */
  private groupsOf(records: RunRecord[]): Map<number, RunRecord> {
    const byToken = new Map(records.map((r) => [`KOI_RUN=${r.token}`, r]));
    const out = new Map<number, RunRecord>();
    const procs = allProcs();
    // Never our own group (a koinode started from a script inherits KOI_RUN).
    const ownGroup = procStat(process.pid)?.pgrp;
    const byPid = new Map(procs.map((p) => [p.pid, p]));
    for (const r of records) {
      if (r.pgid === null || r.leaderStart === null) continue;
      const leader = byPid.get(r.pgid);
      if (leader !== undefined && !leader.zombie && leader.startTicks === r.leaderStart && r.pgid !== ownGroup) out.set(r.pgid, r);
    }
    for (const p of procs) {
      if (p.zombie || p.pgrp === ownGroup || out.has(p.pgrp)) continue;
      for (const v of environ(p.pid)) {
        const r = byToken.get(v);
        if (r !== undefined) {
          out.set(p.pgrp, r);
          break;
        }
      }
    }
    return out;
  }
}
