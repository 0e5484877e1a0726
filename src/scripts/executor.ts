// Running service scripts: no shell in between, the service directory as
// working directory, stdin closed, KOI_* variables, output logged line by line
// and bounded in memory, each script in its own process group so a timeout
// can stop it together with whatever it started. Once a run has been
// signalled (time limit, abandonment) it ends only when its whole group is
// gone, so the SIGKILL after the grace reaches children that outlived or
// ignored the SIGTERM that took their leader.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { allProcs } from './proc';
import { dirname, join } from 'node:path';
import type { RunnerState, ScriptEvent, Signal } from '../core/types';
import type { DiscoveredService } from './discovery';

export interface ScriptResult {
  exitCode: number | null;
  signal: string | null;
  /** The last lines of output (bounded), for failure records. */
  tail: string[];
  durationMs: number;
}

export interface ScriptJob {
  id: number;
  service: DiscoveredService;
  event: ScriptEvent;
  env: Record<string, string>;
  /** Run this instead of the service's script (the fence and handlers use it). */
  command?: { file: string; args: string[] };
}

export interface ExecutorOptions {
  /**
   * Called for every output line (already bounded in length). `background`:
   * the script has ended and a process it left running wrote this (rate
   * limited: BACKGROUND_LINES_PER_MINUTE, then one line saying how many
   * were not logged).
   */
  onLine: (job: ScriptJob, line: string, stream: 'stdout' | 'stderr', background?: boolean) => void;
  onDone: (job: ScriptJob, result: ScriptResult) => void;
  maxLineBytes?: number;
  /** Output beyond this many bytes per run is counted, not logged. */
  maxLoggedBytes?: number;
  tailLines?: number;
}

interface Running {
  job: ScriptJob;
  child: ChildProcess;
  startedMs: number;
  tail: string[];
  loggedBytes: number;
  droppedBytes: number;
  finished: boolean;
  /** A signal went to the group: the run ends when the group is gone. */
  signalled: boolean;
  /** How the leader process ended, once it has. */
  exit: { code: number | null; signal: NodeJS.Signals | null } | null;
  groupPoll: NodeJS.Timeout | null;
  /** After the run: lines of background output logged in the current minute, and those not logged. */
  background: { windowStartMs: number; lines: number; dropped: number };
}

/** How often a signalled run's process group is checked for survivors. */
const GROUP_POLL_MS = 25;

/**
 * Output of processes a script left running (a start script's `daemon &`)
 * is read for as long as any of them holds the pipe, so none of them dies
 * of SIGPIPE, and logged at most this many lines a minute per run.
 */
export const BACKGROUND_LINES_PER_MINUTE = 60;

export function koiEnv(vars: {
  event: ScriptEvent;
  service: string;
  node: string;
  isPromoted: boolean;
  state: RunnerState;
  epoch: number;
  master: string | null;
}): Record<string, string> {
  return {
    KOI_EVENT: vars.event,
    KOI_SERVICE: vars.service,
    KOI_NODE: vars.node,
    KOI_IS_PROMOTED: vars.isPromoted ? '1' : '0',
    // Capitalised as in the original: Master, Slave, ...
    KOI_STATE: vars.state.charAt(0).toUpperCase() + vars.state.slice(1),
    KOI_EPOCH: String(vars.epoch),
    KOI_MASTER: vars.master ?? '',
  };
}

export class Executor {
  private readonly runs = new Map<number, Running>();
  private readonly maxLineBytes: number;
  private readonly maxLoggedBytes: number;
  private readonly tailLines: number;

  constructor(private readonly opts: ExecutorOptions) {
    this.maxLineBytes = opts.maxLineBytes ?? 4096;
    this.maxLoggedBytes = opts.maxLoggedBytes ?? 256 * 1024;
    this.tailLines = opts.tailLines ?? 20;
  }

  get running(): number {
    return this.runs.size;
  }

  /** Process ids of running scripts (their process groups). */
  pids(): number[] {
    return [...this.runs.values()].map((r) => r.child.pid).filter((p): p is number => p !== undefined);
  }

  /** The process id (and process group) of a running script. */
  pidOf(id: number): number | undefined {
    return this.runs.get(id)?.child.pid;
  }

  start(job: ScriptJob): void {
    const svc = job.service;
    const file = job.command?.file ?? (svc.single ? svc.path : join(svc.path, job.event));
    const cwd = svc.single || job.command !== undefined ? dirname(file) : svc.path;
    const args = job.command?.args ?? (svc.single ? [job.event] : []);
    const started = Date.now();
    let child: ChildProcess;
    try {
      child = spawn(file, args, {
        cwd,
        env: { ...process.env, ...job.env },
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true,
      });
    } catch (e) {
      // Synchronous spawn failures (bad arguments); report like an exec failure.
      queueMicrotask(() => this.opts.onDone(job, { exitCode: 127, signal: null, tail: [explain(e as NodeJS.ErrnoException, file, cwd)], durationMs: 0 }));
      return;
    }
    const r: Running = { job, child, startedMs: started, tail: [], loggedBytes: 0, droppedBytes: 0, finished: false, signalled: false, exit: null, groupPoll: null, background: { windowStartMs: 0, lines: 0, dropped: 0 } };
    this.runs.set(job.id, r);
    this.pipeLines(r, child.stdout!, 'stdout');
    this.pipeLines(r, child.stderr!, 'stderr');
    child.once('error', (e: NodeJS.ErrnoException) => {
      const msg = explain(e, file, cwd);
      r.tail.push(msg);
      this.opts.onLine(job, msg, 'stderr');
      this.finish(r, e.code === 'EACCES' ? 126 : 127, null);
    });
    child.once('exit', (code, signal) => {
      r.exit = { code, signal };
      if (r.signalled) {
        this.finishWhenGroupGone(r);
        return;
      }
      // A background child may keep the pipes open: do not wait for them long.
      const t = setTimeout(() => this.finishUnlessSignalled(r), 200);
      t.unref();
      child.once('close', () => {
        clearTimeout(t);
        this.finishUnlessSignalled(r);
      });
    });
  }

  /** Signal the script's whole process group (its leader may have exited already). */
  signal(id: number, sig: Signal): void {
    const r = this.runs.get(id);
    if (r === undefined || r.child.pid === undefined) return;
    r.signalled = true;
    try {
      process.kill(-r.child.pid, sig);
    } catch {
      try {
        r.child.kill(sig);
      } catch {
        // already gone
      }
    }
    if (r.exit !== null) this.finishWhenGroupGone(r);
  }

  private finishUnlessSignalled(r: Running): void {
    if (r.signalled) this.finishWhenGroupGone(r);
    else this.finish(r, r.exit!.code, r.exit!.signal);
  }

  /** End a signalled run once nothing of its process group is left. */
  private finishWhenGroupGone(r: Running): void {
    if (r.finished || r.groupPoll !== null) return;
    const check = () => {
      if (groupAlive(r.child.pid!)) return;
      clearInterval(r.groupPoll!);
      r.groupPoll = null;
      this.finish(r, r.exit!.code, r.exit!.signal);
    };
    r.groupPoll = setInterval(check, GROUP_POLL_MS);
    check();
  }

  /** SIGKILL every running script's process group (shutdown after a second signal). */
  killAll(): void {
    for (const id of this.runs.keys()) this.signal(id, 'SIGKILL');
  }

  private finish(r: Running, exitCode: number | null, signal: NodeJS.Signals | null): void {
    if (r.finished) return;
    r.finished = true;
    if (r.groupPoll !== null) clearInterval(r.groupPoll);
    this.runs.delete(r.job.id);
    // The pipes stay open and read: a process the script left running (its
    // daemon) may still write, and would die of SIGPIPE if nobody read.
    // They close when the last such process exits or closes them.
    if (r.droppedBytes > 0) {
      const note = `(output truncated: ${r.droppedBytes} more bytes not logged)`;
      this.opts.onLine(r.job, note, 'stderr');
      r.tail.push(note);
    }
    this.opts.onDone(r.job, { exitCode: signal === null ? exitCode : null, signal, tail: r.tail.slice(-this.tailLines), durationMs: Date.now() - r.startedMs });
  }

  private pipeLines(r: Running, stream: NodeJS.ReadableStream, name: 'stdout' | 'stderr'): void {
    let partial = '';
    let overlong = false;
    const emit = (line: string) => {
      if (r.finished) {
        this.background(r, line, name);
        return;
      }
      const bytes = Buffer.byteLength(line);
      r.tail.push(line);
      if (r.tail.length > this.tailLines) r.tail.shift();
      // Past the cap everything is counted, even a short line that would fit.
      if (r.droppedBytes > 0 || r.loggedBytes + bytes > this.maxLoggedBytes) {
        r.droppedBytes += bytes + 1;
        return;
      }
      r.loggedBytes += bytes + 1;
      this.opts.onLine(r.job, line, name);
    };
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      const parts = chunk.split('\n');
      for (let i = 0; i < parts.length; i++) {
        const piece = parts[i]!;
        const last = i === parts.length - 1;
        if (!overlong) {
          partial += piece;
          if (partial.length > this.maxLineBytes) {
            // Not between the halves of a surrogate pair.
            const cut = /[\uD800-\uDBFF]/.test(partial[this.maxLineBytes - 1] ?? '') ? this.maxLineBytes - 1 : this.maxLineBytes;
            emit(`${partial.slice(0, cut)}…`);
            partial = '';
            overlong = true;
          }
        }
        if (!last) {
          if (!overlong) emit(partial);
          partial = '';
          overlong = false;
        }
      }
    });
    stream.on('end', () => {
      if (partial !== '' && !overlong) emit(partial);
      partial = '';
    });
    stream.on('error', () => undefined);
  }

  /** A line written after the run ended, by something it left running. */
  private background(r: Running, line: string, name: 'stdout' | 'stderr'): void {
    const b = r.background;
    const now = Date.now();
    if (now - b.windowStartMs >= 60_000) {
      if (b.dropped > 0) this.opts.onLine(r.job, `(${b.dropped} more lines of background output not logged in the last minute)`, 'stderr', true);
      b.windowStartMs = now;
      b.lines = 0;
      b.dropped = 0;
    }
    if (b.lines >= BACKGROUND_LINES_PER_MINUTE) {
      b.dropped++;
      return;
    }
    b.lines++;
    this.opts.onLine(r.job, line, name, true);
  }
}

/**
 * Whether any live process of group `pgid` is left. kill(-pgid, 0) also
 * counts zombies, which wait for whoever adopted them (PID 1 may be slow to
 * reap, or never): on Linux /proc tells the dead from the living.
 */
export function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  // Without /proc (not Linux) a group kill(2) still finds counts as alive.
  if (!existsSync('/proc/self/stat')) return true;
  return allProcs().some((p) => p.pgrp === pgid && !p.zombie);
}

function explain(e: NodeJS.ErrnoException, file: string, cwd: string): string {
  if (!existsSync(cwd)) return `cannot run ${file}: its directory ${cwd} is gone`;
  switch (e.code) {
    case 'ENOENT':
      return existsSync(file)
        ? `cannot run ${file}: its interpreter (the #! line) was not found — fix the first line`
        : `cannot run ${file}: it does not exist`;
    case 'EACCES':
      return `cannot run ${file}: permission denied — chmod +x it`;
    case 'ENOEXEC':
      return `cannot run ${file}: not an executable format — start it with a #! line`;
    default:
      return `cannot run ${file}: ${e.code ?? e.message}`;
  }
}
