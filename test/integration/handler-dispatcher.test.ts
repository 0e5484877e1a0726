// The handler dispatcher's time limit with real shell handlers in a temporary
// folder, on short limits: a handler deaf to SIGTERM, one that leaves a child
// holding its stdout open, and one still running when the dispatcher stops.
// Whatever they do, the next handler starts within the bound and the events
// keep their order. (A process that SIGKILL cannot end, which no test can
// start, is covered by test/unit/handler-dispatcher.test.ts.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HandlerDispatcher } from '../../src/handlers/dispatcher';
import type { ClusterView, HandlerEvent } from '../../src/handlers/events';
import { alive, readLines, until } from './probes';

const TIMEOUT_MS = 500;
const GRACE_MS = 300;
const SLACK_MS = 300;
const BOUND_MS = TIMEOUT_MS + GRACE_MS + SLACK_MS;
/** What a loaded machine may add to starting a shell and noting the time. */
const MARGIN_MS = 1500;

// Every handler notes "begin NAME EVENT ID MS" first; the log is shared.
const BEGIN = (name: string) => `#!/bin/sh
echo "begin ${name} $1 $KOI_EVENT_ID $(date +%s%3N)" >> "$LOG"
`;

const HANDLERS: Record<string, string> = {
  '10-record': `${BEGIN('10')}exit 0\n`,
  // On node-down: deaf to SIGTERM, with a child, until SIGKILL.
  '20-deaf': `${BEGIN('20')}[ "$1" = node-down ] || exit 0
trap '' TERM
sleep 1000 &
echo "$$ $!" >> "$PIDS"
wait
`,
  // On node-up: exits at once, leaving a child that holds stdout open.
  '30-leaky': `${BEGIN('30')}[ "$1" = node-up ] || exit 0
sleep 1000 &
echo "$!" >> "$PIDS"
echo "left a child"
exit 0
`,
};

const VIEW: ClusterView = { leader: 'n1', epoch: 3, master: 'n1', maintenance: false, nodes: [] };
const ev = (kind: HandlerEvent['kind'], node = 'n2'): HandlerEvent => ({ kind, node, address: '127.0.0.1:7000' });

function folder(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'koi-handlers-'));
  for (const [name, src] of Object.entries(files)) writeFileSync(join(dir, name), src, { mode: 0o755 });
  return dir;
}

function killAll(pids: number[]): void {
  for (const p of pids) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      // gone already
    }
  }
}

test('a handler deaf to SIGTERM and one leaving a child on stdout hold the queue no longer than the bound; events keep their order', async () => {
  const dir = folder(HANDLERS);
  const log = join(dir, 'log');
  const pidFile = join(dir, 'pids');
  process.env.LOG = log;
  process.env.PIDS = pidFile;
  const lines: string[] = [];
  const d = new HandlerDispatcher({
    folder: dir,
    node: 'n1',
    log: (level, msg) => lines.push(`${level} ${msg}`),
    timeoutMs: TIMEOUT_MS,
    killGraceMs: GRACE_MS,
    reapSlackMs: SLACK_MS,
  });
  const pids = () => readLines(pidFile).flatMap((l) => l.split(' ').map(Number));
  try {
    d.reset(3);
    d.push([ev('node-down'), ev('node-up'), ev('sync', '')], VIEW);
    await until('every handler ran for every event', () => d.counts.ok + d.counts.failed === 9, 3 * BOUND_MS + 3 * MARGIN_MS);
    assert.deepEqual(d.counts, { ok: 8, failed: 1 }, lines.join('\n'));

    const begun = readLines(log).map((l) => l.split(' '));
    // One at a time, in name order, events in order.
    const expected = ['node-down 3-1', 'node-up 3-2', 'sync 3-3'].flatMap((e) => ['10', '20', '30'].map((h) => `${h} ${e}`));
    assert.deepEqual(begun.map((b) => b.slice(1, 4).join(' ')), expected);
    const at = (h: string, e: string) => Number(begun.find((b) => b[1] === h && b[2] === e)![4]);

    // The deaf handler: killed with its child, and the next one started within the bound.
    const afterDeaf = at('30', 'node-down') - at('20', 'node-down');
    assert.ok(afterDeaf >= TIMEOUT_MS, `the next handler began ${afterDeaf}ms after the deaf one, before its limit`);
    assert.ok(afterDeaf < BOUND_MS + MARGIN_MS, `the next handler began ${afterDeaf}ms after the deaf one: past the bound ${BOUND_MS}ms`);
    assert.ok(lines.some((l) => /^warn handler \S+20-deaf ran past 0\.5s on node-down: SIGTERM$/.test(l)), lines.join('\n'));
    assert.ok(lines.some((l) => /^warn handler \S+20-deaf failed on node-down \(SIGKILL\)$/.test(l)), lines.join('\n'));
    const [deaf, deafChild] = readLines(pidFile)[0]!.split(' ').map(Number);
    assert.equal(alive(deaf!), false, 'deaf handler killed');
    assert.equal(alive(deafChild!), false, 'its child killed with the group');

    // The leaky handler: done when it exited, not when its child lets go of stdout.
    const afterLeaky = at('10', 'sync') - at('30', 'node-up');
    assert.ok(afterLeaky < MARGIN_MS, `the next event began ${afterLeaky}ms after the leaky handler, which exits at once`);
    assert.ok(lines.includes('info left a child'), lines.join('\n'));
    assert.ok(!lines.some((l) => l.includes('given up on')), 'every real process here was reported gone');
  } finally {
    d.stop();
    killAll(pids());
    delete process.env.LOG;
    delete process.env.PIDS;
    rmSync(dir, { recursive: true, force: true });
  }
});

test('stop kills the running handler group at once and leaves no timer', async () => {
  const dir = folder({ '10-sleep': '#!/bin/sh\ntrap "" TERM\nsleep 1000 &\necho "$$ $!" > "$PIDS"\nwait\n' });
  const pidFile = join(dir, 'pids');
  process.env.PIDS = pidFile;
  const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
  const baseline = timers();
  const d = new HandlerDispatcher({ folder: dir, node: 'n1', log: () => undefined, timeoutMs: 60_000 });
  try {
    d.push([ev('node-down'), ev('node-up')], VIEW);
    await until('handler running', () => readLines(pidFile).length === 1);
    const pids = readLines(pidFile)[0]!.split(' ').map(Number);
    d.stop();
    assert.equal(timers(), baseline, 'no timer left after stop');
    await until('handler group gone', () => pids.every((p) => !alive(p)), 5000);
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(d.counts, { ok: 0, failed: 0 }, 'the killed run is not counted, the queued event not run');
  } finally {
    d.stop();
    killAll(readLines(pidFile).flatMap((l) => l.split(' ').map(Number)));
    delete process.env.PIDS;
    rmSync(dir, { recursive: true, force: true });
  }
});
