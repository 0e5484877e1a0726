// The script executor with real shell scripts in temporary directories.
import { test } from 'node:test';
import { processAlive } from '../../src/scripts/proc';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Executor, koiEnv, type ScriptJob, type ScriptResult } from '../../src/scripts/executor';
import { discoverServices } from '../../src/scripts/discovery';
import { checkServices } from '../../src/scripts/check';
import type { ScriptEvent } from '../../src/core/types';

function svcDir(scripts: Record<string, string>, name = '10-db'): { root: string; dir: string } {
  const root = mkdtempSync(join(tmpdir(), 'koi-exec-'));
  const dir = join(root, name);
  mkdirSync(dir);
  for (const [ev, body] of Object.entries(scripts)) {
    writeFileSync(join(dir, ev), body);
    chmodSync(join(dir, ev), 0o755);
  }
  return { root, dir };
}

function run(dir: string, event: ScriptEvent, opts: { onLine?: (l: string) => void; maxLoggedBytes?: number } = {}): {
  ex: Executor;
  done: Promise<ScriptResult>;
} {
  let resolve!: (r: ScriptResult) => void;
  const done = new Promise<ScriptResult>((r) => (resolve = r));
  const ex = new Executor({ onLine: (_j, l) => opts.onLine?.(l), onDone: (_j, r) => resolve(r), maxLoggedBytes: opts.maxLoggedBytes });
  const job: ScriptJob = {
    id: 1,
    service: { def: { name: 'db', priority: 10 }, path: dir, single: false },
    event,
    env: koiEnv({ event, service: 'db', node: 'n1', isPromoted: true, state: 'master', epoch: 7, master: 'n1' }),
  };
  ex.start(job);
  return { ex, done };
}


test('a script gets its directory, the KOI_* variables and a closed stdin; output is logged by line', async () => {
  const { root, dir } = svcDir({ start: '#!/bin/sh\npwd\nenv | grep ^KOI_ | sort\nread x && echo "stdin was open"\necho err >&2\nexit 0\n' });
  const lines: string[] = [];
  const { done } = run(dir, 'start', { onLine: (l) => lines.push(l) });
  const r = await done;
  assert.equal(r.exitCode, 0);
  assert.equal(lines[0], dir);
  for (const v of ['KOI_EPOCH=7', 'KOI_EVENT=start', 'KOI_IS_PROMOTED=1', 'KOI_MASTER=n1', 'KOI_NODE=n1', 'KOI_SERVICE=db', 'KOI_STATE=Master']) {
    assert.ok(lines.includes(v), `${v} in ${lines.join('|')}`);
  }
  assert.ok(!lines.includes('stdin was open'));
  assert.ok(lines.includes('err'));
  rmSync(root, { recursive: true });
});

test('exit codes and signals come back as they are', async () => {
  const { root, dir } = svcDir({ status: '#!/bin/sh\nexit 93\n', stop: '#!/bin/sh\nkill -TERM $$\n' });
  assert.equal((await run(dir, 'status').done).exitCode, 93);
  const r = await run(dir, 'stop').done;
  assert.equal(r.exitCode, null);
  assert.equal(r.signal, 'SIGTERM');
  rmSync(root, { recursive: true });
});

test('a hanging script and the child it started both die on SIGTERM/SIGKILL of the group', async () => {
  const { root, dir } = svcDir({
    promote: `#!/bin/sh\ntrap '' TERM\nsleep 300 &\necho $! > ${'$'}PWD/child.pid\nwait\n`,
  });
  const { ex, done } = run(dir, 'promote');
  await new Promise((r) => setTimeout(r, 300));
  const childPid = Number(readFileSync(join(dir, 'child.pid'), 'utf8'));
  assert.ok(processAlive(childPid));
  ex.signal(1, 'SIGTERM');
  await new Promise((r) => setTimeout(r, 200));
  ex.signal(1, 'SIGKILL');
  const r = await done;
  assert.equal(r.signal !== null || r.exitCode !== 0, true, 'counts as failed');
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(processAlive(childPid), false, 'the grandchild is gone too');
  rmSync(root, { recursive: true });
});

/** JavaScript memory still referenced (a full collection first): heap plus buffers. */
function retainedBytes(): number {
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.external + m.arrayBuffers;
}
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

test('10 MB of output: logging is bounded, the tail is the last lines, memory stays flat', async () => {
  // 100,000 lines of 100 x's (10,100,000 bytes with newlines); then the
  // script says it is done writing and waits, so memory is measured while the
  // run is still alive, with at most a pipe's worth of output unread.
  const { root, dir } = svcDir({ start: '#!/bin/sh\nhead -c 10000000 /dev/zero | tr "\\0" "x" | fold -w 100\necho\ntouch "$PWD/written"\nsleep 1\nexit 0\n' });
  const total = 100_000 * 101;
  let logged = 0;
  const before = retainedBytes();
  const { done } = run(dir, 'start', {
    onLine: (l) => {
      if (!l.startsWith('(output truncated')) logged += Buffer.byteLength(l) + 1;
    },
    maxLoggedBytes: 64 * 1024,
  });
  const end = Date.now() + 30_000;
  while (!existsSync(join(dir, 'written')) && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
  assert.ok(existsSync(join(dir, 'written')), 'the script wrote its output');
  const grown = retainedBytes() - before;
  const r = await done;
  assert.equal(r.exitCode, 0);
  assert.ok(logged <= 64 * 1024, `logged ${logged} bytes`);
  // Keeping the output (as strings or buffers) would hold 10 MB; allow half.
  assert.ok(grown < total / 2, `${grown} bytes still referenced after 10 MB of output`);
  // The tail: the last 19 lines of output, then the truncation note that
  // accounts for every byte not logged.
  assert.equal(r.tail.length, 20, `tail: ${JSON.stringify(r.tail)}`);
  assert.deepEqual(r.tail.slice(0, -1), Array(19).fill('x'.repeat(100)));
  const note = /^\(output truncated: (\d+) more bytes not logged\)$/.exec(r.tail[19]!);
  assert.ok(note !== null, `last tail line: ${r.tail[19]}`);
  assert.equal(logged + Number(note[1]), total, 'logged and dropped bytes add up to the output');
  rmSync(root, { recursive: true });
});

test('a missing, non-executable or badly shebanged script fails with a clear message', async () => {
  const { root, dir } = svcDir({ start: '#!/no/such/interpreter\n', status: '#!/bin/sh\nexit 0\n' });
  chmodSync(join(dir, 'status'), 0o644);
  const bad = await run(dir, 'start').done;
  assert.equal(bad.exitCode, 127);
  assert.match(bad.tail.join('\n'), /interpreter .*not found/);
  const noexec = await run(dir, 'status').done;
  assert.equal(noexec.exitCode, 126);
  assert.match(noexec.tail.join('\n'), /chmod \+x/);
  const missing = await run(dir, 'promote').done;
  assert.equal(missing.exitCode, 127);
  assert.match(missing.tail.join('\n'), /does not exist/);
  rmSync(root, { recursive: true });
});

test('the service directory removed while a script runs: the run ends, the next one fails clearly', async () => {
  const { root, dir } = svcDir({ start: '#!/bin/sh\ntouch ../started\nsleep 0.3\nexit 0\n', stop: '#!/bin/sh\nexit 0\n' });
  const { done } = run(dir, 'start');
  for (let i = 0; i < 200 && !existsSync(join(root, 'started')); i++) await new Promise((r) => setTimeout(r, 10));
  rmSync(dir, { recursive: true });
  assert.equal((await done).exitCode, 0);
  const next = await run(dir, 'stop').done;
  assert.equal(next.exitCode, 127);
  assert.match(next.tail.join('\n'), /directory .* is gone|does not exist/);
  rmSync(root, { recursive: true });
});

test('discovery: priorities, file services, ignored names, disabled, duplicates', () => {
  const root = mkdtempSync(join(tmpdir(), 'koi-disc-'));
  for (const d of ['10-vip', '99-db', 'ping', 'old.bak', 'x~', '#tmp#', '20-db']) mkdirSync(join(root, d));
  writeFileSync(join(root, '10-vip', 'start'), '#!/bin/sh\n');
  chmodSync(join(root, '10-vip', 'start'), 0o755);
  writeFileSync(join(root, '10-vip', 'stop'), '#!/bin/sh\n');
  writeFileSync(join(root, 'ping', 'disabled'), '');
  writeFileSync(join(root, '50-single'), '#!/bin/sh\n');
  chmodSync(join(root, '50-single'), 0o755);
  const d = discoverServices(root);
  assert.deepEqual(
    d.services.map((s) => [s.def.name, s.def.priority, s.single, s.def.disabled ?? false]),
    [['vip', 10, false, false], ['db', 20, false, false], ['single', 50, true, false], ['ping', null, false, true]],
  );
  assert.deepEqual(d.services[0]!.def.scripts, ['start', 'stop']);
  assert.equal(d.warnings.filter((w) => w.startsWith('ignoring')).length, 3);
  assert.ok(d.problems.some((p) => p.includes('stop is not an executable')));
  assert.ok(d.problems.some((p) => p.includes('both service "db"')));
  rmSync(root, { recursive: true });
});

const sleepMs = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('a leader that dies on SIGTERM leaves a TERM-ignoring child: the run ends only after the SIGKILL took the child', async () => {
  // The child keeps stdout open; the leader (plain sh) dies of the SIGTERM at once.
  const { root, dir } = svcDir({
    promote: `#!/bin/sh\nsh -c 'trap "" TERM; echo $$ > child.pid; exec sleep 300' &\nwait\n`,
  });
  const { ex, done } = run(dir, 'promote');
  let ended = false;
  void done.then(() => (ended = true));
  await sleepMs(300);
  const childPid = Number(readFileSync(join(dir, 'child.pid'), 'utf8'));
  ex.signal(1, 'SIGTERM');
  await sleepMs(600);
  assert.ok(processAlive(childPid), 'the child ignored SIGTERM');
  assert.equal(ended, false, 'the run is not over while its group lives');
  assert.equal(ex.running, 1);
  ex.signal(1, 'SIGKILL');
  const r = await done;
  assert.equal(r.signal, 'SIGTERM', 'the leader died of the SIGTERM');
  assert.equal(processAlive(childPid), false, 'the child is gone when the run ends');
  rmSync(root, { recursive: true });
});

test('a grandchild that ignores SIGTERM and holds no pipe is killed with the group after the grace', async () => {
  const { root, dir } = svcDir({
    demote: `#!/bin/sh\nsh -c 'sh -c "trap \\"\\" TERM; echo \\$\\$ > grandchild.pid; exec sleep 300" >/dev/null 2>&1 &' >/dev/null 2>&1\nsleep 300\n`,
  });
  const { ex, done } = run(dir, 'demote');
  let ended = false;
  void done.then(() => (ended = true));
  await sleepMs(300);
  const gcPid = Number(readFileSync(join(dir, 'grandchild.pid'), 'utf8'));
  ex.signal(1, 'SIGTERM');
  await sleepMs(400);
  assert.ok(processAlive(gcPid));
  assert.equal(ended, false);
  ex.signal(1, 'SIGKILL');
  await done;
  assert.equal(processAlive(gcPid), false);
  rmSync(root, { recursive: true });
});

test('a script that exits on its own keeps its background children (a start that launches a daemon)', async () => {
  const { root, dir } = svcDir({
    start: `#!/bin/sh\nsh -c 'echo $$ > daemon.pid; exec sleep 300' >/dev/null 2>&1 &\nexit 0\n`,
  });
  const r = await run(dir, 'start').done;
  assert.equal(r.exitCode, 0);
  await sleepMs(100);
  const pid = Number(readFileSync(join(dir, 'daemon.pid'), 'utf8'));
  assert.ok(processAlive(pid), 'the daemon outlives its start script');
  process.kill(pid, 'SIGKILL');
  rmSync(root, { recursive: true });
});

test('a daemon started in the background with its output not redirected lives on and keeps writing: its lines are logged as background output, rate-limited', async () => {
  // The most common start script: `mydaemon &` with stdout still the script's pipe.
  const { root, dir } = svcDir({
    start: `#!/bin/sh\nsh -c 'echo $$ > writer.pid; while :; do echo tick; sleep 0.01; done' &\nsh -c 'echo $$ > quiet.pid; exec sleep 300' &\necho started\nexit 0\n`,
  });
  const lines: { line: string; background: boolean }[] = [];
  let resolve!: (r: ScriptResult) => void;
  const done = new Promise<ScriptResult>((res) => (resolve = res));
  const ex = new Executor({ onLine: (_j, line, _s, background) => lines.push({ line, background: background === true }), onDone: (_j, r) => resolve(r) });
  ex.start({ id: 1, service: { def: { name: 'db', priority: 10 }, path: dir, single: false }, event: 'start', env: koiEnv({ event: 'start', service: 'db', node: 'n1', isPromoted: false, state: 'slave', epoch: 1, master: null }) });
  const r = await done;
  assert.equal(r.exitCode, 0);
  const writer = Number(readFileSync(join(dir, 'writer.pid'), 'utf8'));
  const quiet = Number(readFileSync(join(dir, 'quiet.pid'), 'utf8'));
  // Well past the 200 ms after which the run is over: a writer whose pipe
  // had been closed would have died of SIGPIPE at its next echo.
  await sleepMs(2000);
  try {
    assert.ok(processAlive(writer), 'the writing daemon outlives its start script by 2 s');
    assert.ok(processAlive(quiet), 'the silent daemon too');
    assert.ok(lines.some((l) => l.line === 'started' && !l.background), 'the script\'s own line');
    const bg = lines.filter((l) => l.background);
    assert.ok(bg.some((l) => l.line === 'tick'), 'the daemon\'s lines after the run are logged as background output');
    // About 200 ticks in 2 s; at most BACKGROUND_LINES_PER_MINUTE of them logged.
    assert.ok(bg.length <= 60, `background output is rate-limited: ${bg.length} lines`);
    assert.equal(ex.running, 0, 'the run itself is over');
  } finally {
    for (const p of [writer, quiet]) {
      try {
        process.kill(p, 'SIGKILL');
      } catch {
        // gone
      }
    }
    rmSync(root, { recursive: true });
  }
});

test('discovery: "10vip" (digits without the dash) has no priority, and koi check warns that 10-vip may be meant', () => {
  const root = mkdtempSync(join(tmpdir(), 'koi-names-'));
  for (const d of ['10vip', '20-db', '7x']) mkdirSync(join(root, d));
  const d = discoverServices(root);
  assert.deepEqual(d.services.map((s) => [s.def.name, s.def.priority]), [['10vip', null], ['db', 20], ['7x', null]]);
  assert.equal(d.names.length, 2, d.names.join('\n'));
  assert.match(d.names[0]!, /"10vip" has no priority .* rename it 10-vip if 10 is meant as its priority/);
  assert.deepEqual(checkServices(root, null).warnings, d.names);
  rmSync(root, { recursive: true });
});
