// Running cluster event handlers on the leader: every executable of the
// handlers folder, in name order, one event at a time, in the order the
// events happened. Output is bounded and logged; a handler past its time
// limit is killed with its process group, like a service script.
//
// The limit is absolute: SIGKILL ends any process that can still run, but
// one stuck in the kernel (uninterruptible sleep on a dead NFS server, a
// hung FUSE mount) is not reported gone until it leaves, which may be never.
// So the dispatcher stops waiting a little after the SIGKILL, counts the run
// as failed and goes on; the abandoned run's end, if it ever comes, is only
// logged.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { assertNever } from '../core/types';
import { ignoredName, isExecutable } from '../scripts/discovery';
import { Executor, type ExecutorOptions, type ScriptResult } from '../scripts/executor';
import type { ClusterView, HandlerEvent } from './events';
import { scoresLine, upNodes } from './events';

export const HANDLER_TIMEOUT_MS = 30_000;
/** Between SIGTERM and SIGKILL. */
export const HANDLER_KILL_GRACE_MS = 2000;
/**
 * After SIGKILL, how long the process may take to be reported gone. The
 * executor waits up to 200 ms for the output pipes after the exit, so a
 * second is plenty for any process the kernel can actually kill.
 */
export const HANDLER_REAP_SLACK_MS = 1000;

interface Job {
  event: HandlerEvent;
  env: Record<string, string>;
}

/** What the dispatcher uses of an executor (a stand-in replaces it in unit tests). */
export type HandlerExecutor = Pick<Executor, 'start' | 'signal'>;

export interface DispatcherOptions {
  folder: string;
  node: string;
  log: (level: 'info' | 'warn', msg: string, meta?: Record<string, unknown>) => void;
  timeoutMs?: number;
  killGraceMs?: number;
  reapSlackMs?: number;
  /** Builds the executor from the dispatcher's callbacks; the real one by default. */
  executor?: (callbacks: Pick<ExecutorOptions, 'onLine' | 'onDone'>) => HandlerExecutor;
}

/** How a run ended for the dispatcher. */
type Ending = { kind: 'done'; result: ScriptResult } | { kind: 'abandoned' } | { kind: 'stopped' };

interface Current {
  id: number;
  /** Settles the run once: clears its timers, counts it, lets the queue go on. */
  end: (e: Ending) => void;
}

export class HandlerDispatcher {
  private readonly queue: Job[] = [];
  private busy = false;
  private stopped = false;
  private seq = 0;
  private epoch = 0;
  private nextJobId = 1;
  private readonly executor: HandlerExecutor;
  private current: Current | null = null;
  /** Runs given up on, by id: what to name if they end after all. */
  private readonly abandoned = new Map<number, string>();
  /** Counts by outcome, for metrics. */
  readonly counts = { ok: 0, failed: 0 };

  constructor(private readonly o: DispatcherOptions) {
    const callbacks: Pick<ExecutorOptions, 'onLine' | 'onDone'> = {
      onLine: (job, line) => this.o.log('info', line, { handler: job.command?.file, event: job.env.KOI_EVENT }),
      onDone: (job, r) => {
        if (this.current?.id === job.id) {
          this.current.end({ kind: 'done', result: r });
          return;
        }
        // A late end of a run given up on: it must not settle the run now
        // in progress, which has an id of its own.
        const what = this.abandoned.get(job.id);
        if (what === undefined) return;
        this.abandoned.delete(job.id);
        this.o.log('info', `${what}, given up on earlier, has ended (${r.signal ?? `exit ${r.exitCode}`})`);
      },
    };
    this.executor = o.executor?.(callbacks) ?? new Executor(callbacks);
  }

  /** Longest a handler can hold the queue: its limit, the kill grace and the slack. */
  get boundMs(): number {
    return (this.o.timeoutMs ?? HANDLER_TIMEOUT_MS) + (this.o.killGraceMs ?? HANDLER_KILL_GRACE_MS) + (this.o.reapSlackMs ?? HANDLER_REAP_SLACK_MS);
  }

  /**
   * Stop for good: drop the queue, clear every timer, and SIGKILL the
   * running handler's group (nothing would limit it anymore).
   */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.queue.length = 0;
    const c = this.current;
    if (c !== null) {
      this.executor.signal(c.id, 'SIGKILL');
      c.end({ kind: 'stopped' });
    }
  }

  /** The executables in the folder, in name order; a missing folder means none. */
  handlers(): string[] {
    let names: string[];
    try {
      names = readdirSync(this.o.folder).sort();
    } catch {
      return [];
    }
    return names.filter((n) => !ignoredName(n)).map((n) => join(this.o.folder, n)).filter(isExecutable);
  }

  /** A new leadership: forget what the old one had queued (it sends a sync of its own). */
  reset(epoch: number): void {
    this.queue.length = 0;
    this.epoch = epoch;
    this.seq = 0;
  }

  push(events: HandlerEvent[], view: ClusterView): void {
    if (this.stopped) return;
    const up = upNodes(view);
    for (const e of events) {
      this.seq++;
      this.queue.push({
        event: e,
        env: {
          KOI_EVENT: e.kind,
          KOI_EVENT_ID: `${this.epoch}-${this.seq}`,
          KOI_NODE: e.node,
          KOI_NODE_ADDRESS: e.address,
          KOI_MASTER: view.master ?? '',
          KOI_LEADER: view.leader,
          KOI_UP_NODES: up.map((n) => n.name).join(','),
          KOI_UP_ADDRESSES: up.map((n) => n.address).join(','),
          KOI_EPOCH: String(view.epoch),
          KOI_SCORES: scoresLine(view),
        },
      });
    }
    void this.drain();
  }

  private async drain(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      while (this.queue.length > 0 && !this.stopped) {
        const job = this.queue.shift()!;
        for (const h of this.handlers()) {
          if (this.stopped) break;
          await this.run(h, job);
        }
      }
    } finally {
      this.busy = false;
    }
  }

  private run(file: string, job: Job): Promise<void> {
    const id = this.nextJobId++;
    const limitMs = this.o.timeoutMs ?? HANDLER_TIMEOUT_MS;
    const graceMs = this.o.killGraceMs ?? HANDLER_KILL_GRACE_MS;
    const event = job.env.KOI_EVENT!;
    const what = `handler ${file} on ${event} (event ${job.env.KOI_EVENT_ID})`;
    return new Promise((resolve) => {
      const timers = [
        setTimeout(() => {
          this.o.log('warn', `handler ${file} ran past ${limitMs / 1000}s on ${event}: SIGTERM`);
          this.executor.signal(id, 'SIGTERM');
        }, limitMs),
        setTimeout(() => this.executor.signal(id, 'SIGKILL'), limitMs + graceMs),
        setTimeout(() => current.end({ kind: 'abandoned' }), this.boundMs),
      ];
      const current: Current = {
        id,
        end: (e) => {
          if (this.current !== current) return;
          this.current = null;
          for (const t of timers) clearTimeout(t);
          switch (e.kind) {
            case 'done': {
              const r = e.result;
              const ok = r.exitCode === 0 && r.signal === null;
              this.counts[ok ? 'ok' : 'failed']++;
              if (!ok) this.o.log('warn', `handler ${file} failed on ${event} (${r.signal ?? `exit ${r.exitCode}`})`);
              break;
            }
            case 'abandoned':
              // SIGKILL did not end it: it is stuck in the kernel. Again, in
              // case the first one came too early to matter, then move on.
              this.executor.signal(id, 'SIGKILL');
              this.abandoned.set(id, what);
              this.counts.failed++;
              this.o.log('warn', `${what} still not gone ${this.boundMs / 1000}s after it started, though killed: given up on, counted as failed; the next job runs`);
              break;
            case 'stopped':
              break;
            default:
              assertNever(e);
          }
          resolve();
        },
      };
      this.current = current;
      try {
        this.executor.start({
          id,
          service: { def: { name: 'handler', priority: null }, path: file, single: true },
          event: 'status',
          env: job.env,
          command: { file, args: [event] },
        });
      } catch (e) {
        // Not expected (spawn failures are reported through onDone), but a
        // throw here must not leave the queue waiting on a run that never began.
        this.o.log('warn', `cannot start handler ${file}: ${(e as Error).message}`);
        current.end({ kind: 'done', result: { exitCode: 127, signal: null, tail: [], durationMs: 0 } });
      }
    });
  }
}

