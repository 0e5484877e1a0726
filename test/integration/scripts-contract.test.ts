// The service script contract of docs/SERVICES.md that no other test
// checks: KOI_STATE and KOI_IS_PROMOTED beyond a master, status 91, SIGKILL
// after the grace, a `disabled` file found within 5 s, the 4 KB line cut
// and the 256 KB default output cap, and the master_lease timing warning.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Executor, koiEnv, type ScriptResult } from '../../src/scripts/executor';
import { freePorts, KOINODE, REPO } from '../../src/demo/local-cluster';
import { koi, SECRET, TestCluster } from './harness';
import { readLines, setConf, until } from './probes';

// Every script of the service: note the variables, then behave like the recorder.
// `ignore-term-<node>` makes status deaf to SIGTERM (it notes each one) until killed.
const WRAPPER = `#!/bin/sh
d="$KOI_JOURNAL_DIR"
echo "$KOI_NODE $KOI_EVENT $KOI_STATE $KOI_IS_PROMOTED $KOI_EPOCH $KOI_MASTER" >> "$d/env"
if [ "$KOI_EVENT" = status ] && [ -f "$d/ignore-term-$KOI_NODE" ]; then
  trap 'echo TERM >> "$d/term-$KOI_NODE"' TERM
  while :; do sleep 0.2; done
fi
exec ${join(REPO, 'services', 'testing', 'record')} "$KOI_EVENT"
`;

interface EnvLine {
  node: string;
  event: string;
  state: string;
  promoted: string;
  epoch: string;
  master: string;
}

function envLines(c: TestCluster): EnvLine[] {
  return readLines(join(c.root, 'env')).map((l) => {
    const [node, event, state, promoted, epoch, master = ''] = l.split(' ') as [string, string, string, string, string, string?];
    return { node, event, state, promoted, epoch, master };
  });
}

test('runner states and KOI_IS_PROMOTED in scripts, status 91, SIGKILL after the grace, a disabled file within 5 s', async () => {
  const c = await TestCluster.start(undefined, { services: ['10-db/'], start: false });
  try {
    for (const n of c.nodes) {
      for (const ev of ['start', 'stop', 'status', 'promote', 'demote', 'failed']) writeFileSync(join(n.services, '10-db', ev), WRAPPER, { mode: 0o755 });
    }
    // n2 checks its services rarely: the disabled file must still be seen within 5 s.
    setConf(c.node('n2').conf, 'status_interval', '60s');

    // Alone, n3 has no leader to follow: its services run, it is Disconnected (the original's name).
    c.startNode('n3');
    await until('n3 disconnected, its service started', () => envLines(c).some((e) => e.node === 'n3' && e.event === 'status' && e.state === 'Disconnected') && envLines(c).some((e) => e.node === 'n3' && e.event === 'start'), 15_000);
    const start3 = envLines(c).find((e) => e.node === 'n3' && e.event === 'start')!;
    assert.deepEqual([start3.state, start3.promoted], ['Disconnected', '0'], 'start runs before any leader is heard, not promoted');
    c.startNode('n1');
    c.startNode('n2');
    let s = await c.waitFor('settled', (x) => c.settled(x) && x.nodes.every((n) => n.reachable && (n.state === 'slave' || n.state === 'master')), 15_000);
    if (s.cluster.master !== 'n1') {
      const r = await c.koi(['promote', 'n1']);
      assert.equal(r.code, 0, r.stderr);
      s = await c.waitFor('n1 master', (x) => x.cluster.master === 'n1' && c.settled(x));
    }
    const promote = envLines(c).filter((e) => e.node === 'n1' && e.event === 'promote').pop()!;
    assert.deepEqual([promote.state, promote.promoted, promote.master], ['Master', '1', 'n1']);
    // KOI_EPOCH: the epoch of the leadership that designated n1 (a later leader keeps the master).
    const designated = [...(c.log('n1') + c.log('n2') + c.log('n3')).matchAll(/n1 is master \([^)]*epoch (\d+)\)/g)].map((m) => m[1]);
    assert.ok(designated.includes(promote.epoch), `KOI_EPOCH ${promote.epoch} is an epoch that designated n1: ${designated.join(',')}`);
    // n3 may have been master before n1: look after n1's promote only.
    const afterPromote = () => {
      const all = envLines(c);
      return all.slice(all.map((e) => `${e.node} ${e.event}`).lastIndexOf('n1 promote'));
    };
    await until('a slave status', () => afterPromote().some((e) => e.node === 'n3' && e.event === 'status' && e.state === 'Slave'));
    const slave = afterPromote().filter((e) => e.node === 'n3' && e.event === 'status' && e.state === 'Slave').pop()!;
    assert.deepEqual([slave.promoted, slave.master], ['0', 'n1'], 'a slave is not promoted and knows the master');

    // 91 "I am slave": from the master koi promotes again (no demote);
    // from a slave it is simply healthy.
    const mark = c.journalLines().length;
    c.setFlag('status-n1-db', '91');
    c.setFlag('status-n3-db', '91');
    await until('n1 promoted again after its 91', () => {
      const j = c.journalLines().slice(mark).filter((l) => l[1] === 'n1');
      const said = j.findIndex((l) => l[3] === 'status' && l[4] === 'end' && l[5] === '91');
      return said >= 0 && j.slice(said).some((l) => l[3] === 'promote' && l[4] === 'end' && l[5] === '0');
    });
    await until('n3 said 91 twice', () => c.journalLines().slice(mark).filter((l) => l[1] === 'n3' && l[3] === 'status' && l[5] === '91').length >= 2);
    c.clearFlag('status-n1-db');
    c.clearFlag('status-n3-db');
    const since = c.journalLines().slice(mark);
    assert.deepEqual(since.filter((l) => l[1] === 'n1' && ['demote', 'stop'].includes(l[3]!)), [], 'the master was not demoted');
    assert.deepEqual(since.filter((l) => l[1] === 'n3' && l[3] !== 'status'), [], 'nothing but status ran on the slave');
    s = await c.waitFor('n1 still master, n3 healthy', (x) => c.settled(x) && x.cluster.master === 'n1' && x.nodes.find((n) => n.name === 'n3')!.state === 'slave');
    assert.equal(s.nodes.find((n) => n.name === 'n3')!.failcount, 0);

    // A disabled file on n2 (status every 60 s): taken out within 5 s (plus slack for a loaded machine).
    const t0 = Date.now();
    writeFileSync(join(c.node('n2').services, '10-db', 'disabled'), '');
    await c.waitFor('n2 db disabled and stopped', (x) => {
      const db = x.nodes.find((n) => n.name === 'n2')!.services[0]!;
      return db.disabled && db.state === 'stopped';
    }, 20_000);
    const took = Date.now() - t0;
    assert.ok(took < 15_000, `found after ${took}ms: it must not wait for the 60 s status_interval`);
    // Asked once (the harness would retry "not promotable yet" as transient).
    const refused = await koi(['-f', c.node('n1').conf, '--no-color', 'promote', 'n2']);
    assert.equal(refused.code, 1, 'a runner with a disabled service is not electable');
    assert.match(refused.stderr, /n2.*not promotable/);

    // A status deaf to SIGTERM (status_timeout 2s): SIGTERM, then SIGKILL after the 2 s grace.
    c.setFlag('ignore-term-n3');
    const failure = await (async () => {
      let found: { signal: string | null; event: string; node: string } | undefined;
      await until('n3 failure recorded', async () => {
        const r = await c.koi(['failures', '--json']);
        if (r.code !== 0) return false;
        found = (JSON.parse(r.stdout) as { signal: string | null; event: string; node: string }[]).find((f) => f.node === 'n3');
        return found !== undefined;
      }, 20_000);
      return found!;
    })();
    assert.equal(failure.event, 'status');
    assert.equal(failure.signal, 'SIGKILL', 'killed by SIGKILL, not by the SIGTERM it ignored');
    assert.ok(readLines(join(c.root, 'term-n3')).length >= 1, 'it got SIGTERM first and lived on');
    // The failure sequence runs on a failed runner.
    await until('failed and stop scripts on n3', () => ['failed', 'stop'].every((ev) => envLines(c).some((e) => e.node === 'n3' && e.event === ev)));
    for (const ev of ['failed', 'stop']) {
      const e = envLines(c).filter((x) => x.node === 'n3' && x.event === ev).pop()!;
      assert.deepEqual([e.state, e.promoted], ['Failed', '0'], `${ev} on a failed runner`);
    }
  } finally {
    await c.stop();
  }
});

function runScript(body: string): { done: Promise<ScriptResult>; lines: string[]; root: string } {
  const root = mkdtempSync(join(tmpdir(), 'koi-contract-'));
  const dir = join(root, '10-db');
  mkdirSync(dir);
  writeFileSync(join(dir, 'start'), body);
  chmodSync(join(dir, 'start'), 0o755);
  const lines: string[] = [];
  let resolve!: (r: ScriptResult) => void;
  const done = new Promise<ScriptResult>((r) => (resolve = r));
  // The defaults koinode uses: no limits passed.
  const ex = new Executor({ onLine: (_j, l) => lines.push(l), onDone: (_j, r) => resolve(r) });
  ex.start({
    id: 1,
    service: { def: { name: 'db', priority: 10 }, path: dir, single: false },
    event: 'start',
    env: koiEnv({ event: 'start', service: 'db', node: 'n1', isPromoted: false, state: 'slave', epoch: 1, master: null }),
  });
  return { done, lines, root };
}

test('lines longer than 4 KB are cut; a line of exactly 4 KB is not', async () => {
  const { done, lines, root } = runScript('#!/bin/sh\nhead -c 4096 /dev/zero | tr "\\0" a; echo\nhead -c 10000 /dev/zero | tr "\\0" b; echo\necho after\n');
  try {
    assert.equal((await done).exitCode, 0);
    assert.equal(lines.length, 3, lines.map((l) => l.slice(0, 10)).join('|'));
    assert.equal(lines[0], 'a'.repeat(4096));
    assert.ok(lines[1]!.startsWith('b'.repeat(4096)) && lines[1]!.length < 4100, `cut to 4 KB: ${lines[1]!.length} chars`);
    assert.equal(lines[2], 'after', 'the line after a long one is intact');
  } finally {
    rmSync(root, { recursive: true });
  }
});

test('by default 256 KB of a run are logged and the rest is counted', async () => {
  // 400 000 bytes in lines of 100 (99 characters and a newline).
  const { done, lines, root } = runScript('#!/bin/sh\nhead -c 396000 /dev/zero | tr "\\0" x | fold -w 99; echo\necho last\n');
  try {
    const r = await done;
    assert.equal(r.exitCode, 0);
    const note = lines.pop()!;
    const logged = lines.reduce((n, l) => n + Buffer.byteLength(l) + 1, 0);
    assert.ok(logged <= 256 * 1024 && logged > 256 * 1024 - 100, `logged ${logged} bytes`);
    const m = /^\(output truncated: (\d+) more bytes not logged\)$/.exec(note);
    assert.ok(m !== null, note);
    assert.equal(logged + Number(m[1]), 4000 * 100 + 'last\n'.length, 'logged + counted = everything written');
    assert.ok(!lines.includes('last'), 'the end was counted, not logged');
    assert.equal(r.tail[r.tail.length - 2], 'last', 'but it is in the failure tail');
  } finally {
    rmSync(root, { recursive: true });
  }
});

test('koinode warns when master_lease is shorter than leader_timeout + 2 heartbeats, and not at the limit', async () => {
  const root = mkdtempSync(join(tmpdir(), 'koi-lease-'));
  try {
    mkdirSync(join(root, 'services'));
    const [port] = await freePorts(1);
    const warning = /\[time\] master_lease 899ms is shorter than leader_timeout \+ 2 × heartbeat_interval \(900ms\)/;
    for (const [lease, warns] of [['899ms', true], ['900ms', false]] as const) {
      const conf = join(root, `${lease}.conf`);
      writeFileSync(conf, `[node]\nname = n1\nport = ${port}\nbind = 127.0.0.1\nstate_dir = ${root}/state\n[cluster]\nsecret = ${SECRET}\ntransport = n1=127.0.0.1:${port}\nhandlers = ${root}/none\n` +
        `[service]\nfolder = ${root}/services\n[time]\nheartbeat_interval = 200ms\nleader_timeout = 500ms\nmaster_lease = ${lease}\n`, { mode: 0o600 });
      const p = spawn(process.execPath, [KOINODE, '-f', conf, '--no-color'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      p.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      p.stderr!.on('data', (d: Buffer) => (out += d.toString()));
      try {
        // Warnings are logged before koinode listens.
        await until(`koinode with master_lease ${lease} listening`, () => out.includes('listening on'), 15_000).catch((e: Error) => {
          throw new Error(`${e.message}; its output: ${out}`);
        });
        const before = out.slice(0, out.indexOf('listening on'));
        if (warns) assert.match(before, warning);
        else assert.doesNotMatch(before, /master_lease/, before);
      } finally {
        p.kill('SIGKILL');
      }
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
