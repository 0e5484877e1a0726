// The order in which a node's decisions take effect. koinode and the
// simulator both apply Ready through this one function, so the simulator
// checks the daemon's own ordering instead of a copy of it.
import type { AdminReply, CoreEvent, FenceRequest, Outbound, PersistedState, Ready, RunRequest, SignalRequest } from '../core/types';

/** The I/O a node's decisions need: real in koinode, simulated in test/sim. */
export interface EffectIO {
  signal(s: SignalRequest): void;
  persist(p: PersistedState): void;
  send(m: Outbound): void;
  run(r: RunRequest): void;
  fence(f: FenceRequest): void;
  event(e: CoreEvent): void;
  reply(r: AdminReply): void;
}

export interface ReadyCore {
  ready(): Ready;
  advance(): void;
}

/**
 * Apply what the core decided, then advance it. Returns what was applied.
 * 1. Kills of scripts already running: a lease that ran out must not wait
 *    for an fsync or a log line.
 * 2. Persist, before any message: a vote is durable before it is sent.
 * 3. Messages, then new script runs, then kills of runs started just now
 *    (a script started past its deadline is killed at once, never missed).
 * 4. Fences, events, replies to admin requests.
 */
export function applyReady(core: ReadyCore, io: EffectIO): Ready {
  const r = core.ready();
  const fresh = new Set(r.runs.map((x) => x.runId));
  for (const s of r.signals) if (!fresh.has(s.runId)) io.signal(s);
  if (r.persist !== null) io.persist(r.persist);
  for (const m of r.messages) io.send(m);
  for (const x of r.runs) io.run(x);
  for (const s of r.signals) if (fresh.has(s.runId)) io.signal(s);
  for (const f of r.fences) io.fence(f);
  for (const e of r.events) io.event(e);
  for (const p of r.replies) io.reply(p);
  core.advance();
  return r;
}
