// Watchdog self-fencing with real koinodes and stand-in devices (FIFOs
// served by src/demo/watchdog-standin.ts): the master arms its watchdog
// before it promotes, slaves never arm, a switchover disarms, and a master
// whose koinode is frozen (SIGSTOP) is "reset" — the stand-in fires —
// before any other runner begins its promote, with no fence configured.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { spawnSync } from 'node:child_process';
import { startNode } from '../../src/demo/local-cluster';
import { join } from 'node:path';
import { WatchdogStandIn } from '../../src/demo/watchdog-standin';
import { TestCluster } from './harness';

// lease 1 s, demote 3 s: min((1 + 3 − 0.35) / 3, (3 − 0.35) / 2) = 1.2 s, so a 1 s watchdog.
const TIMINGS = { time: { master_lease: '1s' }, service: { demote_timeout: '3s' } };

function events(file: string): { ms: number; what: string; n: number }[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => {
      const [ms, what, n] = l.split(' ');
      return { ms: Number(ms), what: what!, n: Number(n) };
    });
}

async function withStandIns(names: string[], body: (c: TestCluster, log: (n: string) => string) => Promise<void>, mode = 'required'): Promise<void> {
  const standIns: WatchdogStandIn[] = [];
  let root = '';
  const c = await TestCluster.start(
    names.map((name, i) => ({ name, priority: names.length - i })),
    {
      extra: TIMINGS,
      start: false,
      extraFor: (node, r) => {
        root = r;
        return { node: { watchdog: mode, watchdog_device: join(r, `wd-${node}`) } };
      },
    },
  );
  const log = (n: string) => join(root, `wd-${n}.log`);
  try {
    for (const n of names) {
      const s = new WatchdogStandIn(join(root, `wd-${n}`), (l) => writeFileSync(log(n), `${l}\n`, { flag: 'a' }));
      s.start();
      standIns.push(s);
    }
    for (const n of names) c.startNode(n);
    await body(c, log);
  } finally {
    for (const n of c.nodes) if (n.proc !== null) n.proc.kill('SIGCONT');
    await c.stop();
    for (const s of standIns) s.stop();
  }
}

test('the master arms its watchdog before promote; slaves never arm; a switchover disarms; koi status shows it', async () => {
  await withStandIns(['n1', 'n2', 'n3'], async (c, log) => {
    const s = await c.waitFor('settled', (x) => c.settled(x), 15_000);
    const m = s.cluster.master!;
    const armed = events(log(m)).find((e) => e.what === 'armed');
    assert.ok(armed !== undefined, `${m} never armed`);
    assert.equal(armed.n, 1, 'a 1 s timeout');
    // koinode's own log orders the two (the stand-in reads the FIFO when this process gets to it).
    const text = c.log(m);
    const armedAt = text.search(/watchdog \S+ armed \(1s\)/);
    const promoteAt = text.search(/scripts: db\/promote/);
    assert.ok(armedAt >= 0 && promoteAt > armedAt, 'armed only after the promote began');
    for (const n of s.nodes) assert.equal(n.watchdog, n.name === m ? 'armed' : 'ready', `${n.name}: ${n.watchdog}`);
    const other = s.nodes.find((n) => n.name !== m)!.name;
    for (const n of s.nodes) if (n.name !== m) assert.deepEqual(events(log(n.name)), [], `${n.name} armed as a slave`);
    const r = await c.koi(['promote', other]);
    assert.equal(r.code, 0, r.stderr);
    await c.waitFor(`${other} master`, (x) => c.settled(x) && x.cluster.master === other, 15_000);
    const old = events(log(m));
    assert.equal(old.at(-1)?.what, 'disarmed', `old master's device: ${JSON.stringify(old)}`);
    assert.ok(old.at(-1)!.n > 0, 'keepalives were sent while it was master');
    assert.ok(!old.some((e) => e.what === 'fired'), 'a healthy master was never reset');
  });
});

test('a frozen master is reset by its watchdog before another runner begins promote (no fence)', async () => {
  await withStandIns(['n1', 'n2', 'n3'], async (c, log) => {
    const s = await c.waitFor('settled', (x) => c.settled(x), 15_000);
    const m = s.cluster.master!;
    const frozenAt = Date.now();
    c.node(m).proc!.kill('SIGSTOP');
    await c.waitFor('another master', (x) => x.cluster.master !== null && x.cluster.master !== m && c.settled(x), 20_000);
    const fired = events(log(m)).find((e) => e.what === 'fired');
    assert.ok(fired !== undefined, `${m}'s watchdog never fired: ${JSON.stringify(events(log(m)))}`);
    const promotes = c.journalLines().filter((l) => l[1] !== m && l[3] === 'promote' && l[4] === 'begin' && Number(BigInt(l[0]!) / 1_000_000n) > frozenAt);
    assert.ok(promotes.length > 0, 'nobody promoted');
    const firstPromoteMs = Number(BigInt(promotes[0]![0]!) / 1_000_000n);
    assert.ok(fired.ms < firstPromoteMs, `fired at ${fired.ms}, ${promotes[0]![1]} began promote at ${firstPromoteMs}`);
    // Timeout 1 s; the stand-in runs in this (busy) test process, so allow slack.
    assert.ok(fired.ms - frozenAt <= 2500, `fired ${fired.ms - frozenAt} ms after the freeze (timeout 1 s)`);
  });
});

test('watchdog = required without a usable device: the runner is never promoted, and says why', async () => {
  const c = await TestCluster.start(
    [
      { name: 'n1', priority: 3 },
      { name: 'n2', priority: 2 },
      { name: 'n3', priority: 1 },
    ],
    { extra: TIMINGS, extraFor: (node, r): Record<string, Record<string, string>> => (node === 'n1' ? { node: { watchdog: 'required', watchdog_device: join(r, 'no-such-device') } } : {}) },
  );
  try {
    const s = await c.waitFor('settled', (x) => c.settled(x) && x.nodes.every((n) => n.reachable), 15_000);
    assert.notEqual(s.cluster.master, 'n1');
    assert.equal(s.nodes.find((n) => n.name === 'n1')!.watchdog, 'unavailable');
    assert.match(c.log('n1'), /watchdog required but unusable: .*no-such-device: ENOENT .* this runner will not be promoted/);
    const r = await c.koi(['promote', 'n1']);
    assert.notEqual(r.code, 0, 'promote of a runner without its required watchdog was accepted');
  } finally {
    await c.stop();
  }
});

test('a character device: wdctl sets the timeout at start when nothing was held, but not after a kill -9 of a master (its running countdown must not be stopped)', async (t) => {
  // A stand-in character device (the null device's numbers) and a wdctl
  // that records how it is called and answers like util-linux's.
  const dir = mkdtempSync(join(tmpdir(), 'koi-wdctl-'));
  const dev = join(dir, 'watchdog');
  if (spawnSync('mknod', [dev, 'c', '1', '3']).status !== 0) {
    t.skip('mknod needs root (CI runs as root)');
    return;
  }
  const calls = join(dir, 'wdctl.calls');
  const callLines = () => readFileSync(calls, 'utf8').trim().split('\n');
  writeFileSync(
    join(dir, 'wdctl'),
    `#!/bin/sh\necho "$*" >> ${calls}\ncase "$1" in\n  --settimeout) echo "Timeout has been set to $2 seconds." ;;\n  --flags-only) echo MAGICCLOSE ;;\nesac\nexit 0\n`,
    { mode: 0o755 },
  );
  const c = await TestCluster.start(
    [
      { name: 'n1', priority: 3 },
      { name: 'n2', priority: 2 },
    ],
    { extra: { ...TIMINGS, cluster: { quorum: '1' } }, start: false, extraFor: (node): Record<string, Record<string, string>> => (node === 'n1' ? { node: { watchdog: 'required', watchdog_device: dev } } : {}) },
  );
  const env = { KOI_JOURNAL: c.journal, KOI_JOURNAL_DIR: c.root, PATH: `${dir}:${process.env.PATH}` };
  try {
    startNode(c.node('n1'), env);
    c.startNode('n2');
    const first = await c.waitFor('settled', (s) => c.settled(s) && s.nodes.every((n) => n.reachable), 15_000);
    if (first.cluster.master !== 'n1') {
      const p = await c.koi(['promote', 'n1']);
      assert.equal(p.code, 0, p.stderr);
    }
    await c.waitFor('n1 master', (s) => c.settled(s) && s.cluster.master === 'n1', 15_000);
    const lines = callLines();
    assert.deepEqual(lines.slice(0, 2), ['--version', `--settimeout 1 ${dev}`], `a first start sets the timeout at once: ${lines.join(' | ')}`);
    const log = c.log('n1');
    assert.ok(log.search(/watchdog \S+ armed \(1s\)/) >= 0 && log.search(/watchdog \S+ armed/) < log.search(/scripts: db\/promote/), 'armed before the promote');

    // kill -9 of the master's koinode: its device keeps counting down; the
    // next koinode must not let wdctl's magic close stop it at start.
    const v = c.node('n1');
    const exited = new Promise((r) => v.proc!.once('exit', r));
    v.proc!.kill('SIGKILL');
    await exited;
    const before = callLines().length;
    startNode(v, env);
    const end = Date.now() + 10_000;
    while (!/interrupted|died while this runner held/.test(c.log('n1')) && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
    await new Promise((r) => setTimeout(r, 300));
    const log2 = c.log('n1');
    const after = callLines().slice(before);
    const restartAt = log2.lastIndexOf('died while this runner held');
    assert.ok(restartAt >= 0, 'the new koinode knew its predecessor held the role');
    assert.equal(after[0], '--version');
    assert.ok(!after.slice(0, 1).some((l) => l.startsWith('--settimeout')), `at this start: ${after.join(' | ')}`);
    // It sets the timeout only when it arms again, if it does.
    const armedAgain = log2.indexOf('armed (1s)', restartAt);
    if (armedAgain < 0) assert.ok(!after.some((l) => l.startsWith('--settimeout')), `wdctl set the timeout without arming: ${after.join(' | ')}`);
  } finally {
    await c.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
