// Running cluster event handlers on the leader: every executable of the
// handlers folder, in name order, one event at a time, in the order the
// events happened. Output is bounded and logged; a handler past its time
// limit is killed with its process group, like a service script.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { ignoredName, isExecutable } from '../scripts/discovery';
import { Executor, type ScriptResult } from '../scripts/executor';
import type { ClusterView, HandlerEvent } from './events';
import { upNodes } from './events';

export const HANDLER_TIMEOUT_MS = 30_000;
const KILL_GRACE_MS = 2000;

interface Job {
  event: HandlerEvent;
  env: Record<string, string>;
}

export interface DispatcherOptions {
  folder: string;
  node: string;
  log: (level: 'info' | 'warn', msg: string, meta?: Record<string, unknown>) => void;
  timeoutMs?: number;
}

export class HandlerDispatcher {
  private readonly queue: Job[] = [];
  private busy = false;
  private seq = 0;
  private epoch = 0;
  private nextJobId = 1;
  private readonly executor: Executor;
  private current: { id: number; timer: NodeJS.Timeout; resolve: (r: ScriptResult) => void } | null = null;
  /** Counts by outcome, for metrics. */
  readonly counts = { ok: 0, failed: 0 };

  constructor(private readonly o: DispatcherOptions) {
    this.executor = new Executor({
      onLine: (job, line) => this.o.log('info', line, { handler: job.command?.file, event: job.env.KOI_EVENT }),
      onDone: (job, r) => {
        if (this.current?.id === job.id) {
          clearTimeout(this.current.timer);
          this.current.resolve(r);
        }
      },
    });
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
        },
      });
    }
    void this.drain();
  }

  private async drain(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      while (this.queue.length > 0) {
        const job = this.queue.shift()!;
        for (const h of this.handlers()) await this.run(h, job);
      }
    } finally {
      this.busy = false;
    }
  }

  private run(file: string, job: Job): Promise<void> {
    const id = this.nextJobId++;
    const limit = this.o.timeoutMs ?? HANDLER_TIMEOUT_MS;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.o.log('warn', `handler ${file} ran past ${limit / 1000}s on ${job.env.KOI_EVENT}: SIGTERM`);
        this.executor.signal(id, 'SIGTERM');
        setTimeout(() => this.executor.signal(id, 'SIGKILL'), KILL_GRACE_MS).unref();
      }, limit);
      this.current = {
        id,
        timer,
        resolve: (r) => {
          this.current = null;
          const ok = r.exitCode === 0 && r.signal === null;
          this.counts[ok ? 'ok' : 'failed']++;
          if (!ok) this.o.log('warn', `handler ${file} failed on ${job.env.KOI_EVENT} (${r.signal ?? `exit ${r.exitCode}`})`);
          resolve();
        },
      };
      this.executor.start({
        id,
        service: { def: { name: 'handler', priority: null }, path: file, single: true },
        event: 'status',
        env: job.env,
        command: { file, args: [job.env.KOI_EVENT!] },
      });
    });
  }
}
