// The handler dispatcher's absolute time limit, with a stand-in executor that
// can do what no process this test can start does: never be reported gone,
// or be reported gone long after it was given up on. (The same limit with
// real processes: test/integration/handler-dispatcher.test.ts.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HandlerDispatcher, type HandlerExecutor } from '../../src/handlers/dispatcher';
import type { ClusterView, HandlerEvent } from '../../src/handlers/events';
import type { ExecutorOptions, ScriptJob, ScriptResult } from '../../src/scripts/executor';
import type { Signal } from '../../src/core/types';

const TIMEOUT_MS = 100;
const GRACE_MS = 100;
const SLACK_MS = 100;
const BOUND_MS = TIMEOUT_MS + GRACE_MS + SLACK_MS;

/** Starts nothing; reports a run gone only when the test says so. */
class StandIn implements HandlerExecutor {
  readonly started: ScriptJob[] = [];
  readonly signals: [number, Signal][] = [];
  constructor(private readonly cb: Pick<ExecutorOptions, 'onLine' | 'onDone'>) {}
  start(job: ScriptJob): void {
    this.started.push(job);
  }
  signal(id: number, sig: Signal): void {
    this.signals.push([id, sig]);
  }
  exit(job: ScriptJob, exitCode: number): void {
    const r: ScriptResult = { exitCode, signal: null, tail: [], durationMs: 0 };
    this.cb.onDone(job, r);
  }
}

const VIEW: ClusterView = { leader: 'n1', epoch: 4, master: 'n1', maintenance: false, nodes: [] };
const ev = (kind: HandlerEvent['kind'], node = 'n2'): HandlerEvent => ({ kind, node, address: '' });

function setup(): { d: HandlerDispatcher; ex: () => StandIn; logs: string[]; folder: string; done: () => void } {
  const folder = mkdtempSync(join(tmpdir(), 'koi-dispatch-'));
  writeFileSync(join(folder, '10-h'), '#!/bin/sh\n', { mode: 0o755 });
  let ex: StandIn | null = null;
  const logs: string[] = [];
  const d = new HandlerDispatcher({
    folder,
    node: 'n1',
    log: (level, msg) => logs.push(`${level} ${msg}`),
    timeoutMs: TIMEOUT_MS,
    killGraceMs: GRACE_MS,
    reapSlackMs: SLACK_MS,
    executor: (cb) => (ex = new StandIn(cb)),
  });
  d.reset(4);
  return { d, ex: () => ex!, logs, folder, done: () => rmSync(folder, { recursive: true, force: true }) };
}

async function until(what: string, pred: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;

test('a run never reported gone is given up on after timeout + grace + slack; the next job runs; its late end settles nothing', async () => {
  const baseline = timers();
  const { d, ex, logs, folder, done } = setup();
  try {
    assert.equal(d.boundMs, BOUND_MS);
    d.push([ev('node-down'), ev('node-up')], VIEW);
    await until('first start', () => ex().started.length === 1);
    const t0 = Date.now();
    const [first] = ex().started;
    await until('the next job started', () => ex().started.length === 2);
    const waited = Date.now() - t0;
    assert.ok(waited >= BOUND_MS - 5, `given up on after ${waited}ms, before the bound ${BOUND_MS}ms`);
    assert.ok(waited < BOUND_MS + 1000, `given up on after ${waited}ms, far past the bound ${BOUND_MS}ms`);
    const second = ex().started[1]!;
    assert.equal(second.env.KOI_EVENT, 'node-up', 'events keep their order');
    assert.deepEqual(
      ex().signals.filter(([id]) => id === first!.id).map(([, s]) => s).slice(0, 2),
      ['SIGTERM', 'SIGKILL'],
    );
    const warn = logs.find((l) => l.includes('given up on'));
    assert.ok(warn !== undefined && warn.startsWith('warn '), logs.join('\n'));
    assert.match(warn, new RegExp(`handler ${join(folder, '10-h')} on node-down \\(event 4-1\\)`));
    assert.deepEqual(d.counts, { ok: 0, failed: 1 });

    // The abandoned run ends after all, while the next one runs: logged, not
    // taken for the next one's end.
    ex().exit(first!, 0);
    assert.deepEqual(d.counts, { ok: 0, failed: 1 });
    assert.ok(logs.some((l) => l.startsWith('info ') && l.includes('node-down (event 4-1), given up on earlier, has ended (exit 0)')), logs.join('\n'));
    ex().exit(first!, 0); // twice: nothing more
    ex().exit(second, 0);
    await until('the second run counted', () => d.counts.ok === 1);
    assert.deepEqual(d.counts, { ok: 1, failed: 1 });
    assert.equal(timers(), baseline, 'no timer left once the queue is empty');
  } finally {
    d.stop();
    done();
  }
});

test('a run reported gone in time clears its timers and is not given up on later', async () => {
  const baseline = timers();
  const { d, ex, logs, done } = setup();
  try {
    d.push([ev('sync', '')], VIEW);
    await until('start', () => ex().started.length === 1);
    ex().exit(ex().started[0]!, 1);
    assert.equal(timers(), baseline);
    await new Promise((r) => setTimeout(r, BOUND_MS + 100));
    assert.deepEqual(d.counts, { ok: 0, failed: 1 });
    assert.deepEqual(ex().signals, []);
    assert.ok(!logs.some((l) => l.includes('given up')), logs.join('\n'));
  } finally {
    d.stop();
    done();
  }
});

test('stop drops the queue, SIGKILLs the running handler and leaves no timer; nothing runs or crashes after', async () => {
  const baseline = timers();
  const { d, ex, done } = setup();
  try {
    d.push([ev('node-down'), ev('node-up'), ev('sync', '')], VIEW);
    await until('start', () => ex().started.length === 1);
    const first = ex().started[0]!;
    d.stop();
    assert.deepEqual(ex().signals, [[first.id, 'SIGKILL']]);
    assert.equal(timers(), baseline, 'no timer left after stop');
    d.push([ev('maintenance-on', '')], VIEW);
    ex().exit(first, 0);
    await new Promise((r) => setTimeout(r, BOUND_MS + 100));
    assert.equal(ex().started.length, 1, 'nothing started after stop');
    assert.deepEqual(d.counts, { ok: 0, failed: 0 });
  } finally {
    done();
  }
});

test('an executor that throws on start counts as a failed run and the queue goes on', async () => {
  const { d, ex, logs, done } = setup();
  try {
    let throws = true;
    const s = ex();
    const start = s.start.bind(s);
    s.start = (job) => {
      if (throws) {
        throws = false;
        throw new Error('no more processes');
      }
      start(job);
    };
    d.push([ev('node-down'), ev('node-up')], VIEW);
    await until('the second event started', () => s.started.length === 1);
    assert.equal(s.started[0]!.env.KOI_EVENT, 'node-up');
    assert.deepEqual(d.counts, { ok: 0, failed: 1 });
    assert.ok(logs.some((l) => l.includes('cannot start handler') && l.includes('no more processes')), logs.join('\n'));
  } finally {
    d.stop();
    done();
  }
});
