// Operator-facing behaviours with real processes: koi watch, reconfigure and
// SIGHUP, graceful shutdown, state surviving a restart of every node, koi check.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { KOI } from '../../src/demo/local-cluster';
import { koi, tempDir, TestCluster } from './harness';

test('koi watch streams numbered events; a switchover shows up', async () => {
  const c = await TestCluster.start();
  try {
    // Watch n1 once it leads: decisions such as master-designated are the leader's events
    // (a late n1 takes over after the settle period).
    await c.waitFor('settled under n1', (x) => c.settled(x) && x.cluster.leader === 'n1' && x.nodes.every((n) => n.reachable), 12_000);
    const w = spawn(process.execPath, [KOI, '-f', c.node('n1').conf, 'watch', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    w.stdout.on('data', (d: Buffer) => (out += d.toString()));
    w.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const end = Date.now() + 5000;
    while (!out.includes('"kind":"view"') && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
    const s = (await c.status())!;
    const to = s.cluster.master === 'n2' ? 'n3' : 'n2';
    assert.equal((await c.koi(['promote', to])).code, 0);
    while (!out.includes(`"master-designated"`) && Date.now() < end + 5000) await new Promise((r) => setTimeout(r, 50));
    // (It may have ended already, on an error: then stderr says why.)
    if (w.exitCode === null && w.signalCode === null) {
      w.kill('SIGINT');
      await new Promise((r) => w.once('exit', r));
    }
    assert.equal(w.exitCode, 0, `koi watch ended on its own: ${err}`);
    const events = out.trim().split('\n').map((l) => JSON.parse(l) as { seq: number; kind: string; master?: string });
    assert.deepEqual(events.map((e) => e.seq), events.map((_, i) => i + 1), 'sequence numbers count up from 1 without gaps');
    assert.ok(events.some((e) => e.kind === 'master-designated' && e.master === to), out);
  } finally {
    await c.stop();
  }
});

test('koi reconfigure and SIGHUP reload timings; a broken file keeps the old configuration', async () => {
  const c = await TestCluster.start([{ name: 'n1' }]);
  try {
    await c.waitFor('settled', (x) => c.settled(x), 8000);
    const conf = c.node('n1').conf;
    const good = readFileSync(conf, 'utf8');
    writeFileSync(conf, good.replace('status_interval = 1s', 'status_interval = 300ms'));
    const r = await c.koi(['reconfigure']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^reloaded /);
    const before = c.journalLines().filter((l) => l[3] === 'status').length;
    await new Promise((res) => setTimeout(res, 1600));
    const statuses = c.journalLines().filter((l) => l[3] === 'status').length - before;
    assert.ok(statuses >= 4, `status ran ${statuses} times in 1.6s after the reload`);
    const client = join(c.root, 'client.conf');
    writeFileSync(client, good, { mode: 0o600 });
    writeFileSync(conf, good.replace('[time]', '[time]\nbogus = 1'));
    const bad = await koi(['-f', client, 'reconfigure']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /\[time\] bogus: unknown key/);
    c.node('n1').proc!.kill('SIGHUP');
    await new Promise((res) => setTimeout(res, 300));
    assert.match(c.log('n1'), /reload refused, the old configuration stays: .*bogus/);
    assert.equal((await koi(['-f', client, 'status'])).code, 0, 'still running');
  } finally {
    await c.stop();
  }
});

test('SIGTERM demotes and stops services in order, then koinode exits 0; the master moves', async () => {
  const c = await TestCluster.start(undefined, { services: ['10-a', '20-b'] });
  try {
    const s = await c.waitFor('settled', (x) => c.settled(x) && x.nodes.every((n) => n.reachable), 8000);
    const m = s.cluster.master!;
    const p = c.node(m).proc!;
    const exited = new Promise<number | null>((r) => p.once('exit', (code) => r(code)));
    p.kill('SIGTERM');
    assert.equal(await exited, 0);
    const mine = c.journalLines().filter((l) => l[1] === m && l[4] === 'begin' && l[3] !== 'status').map((l) => `${l[2]}/${l[3]}`);
    assert.deepEqual(mine.slice(-4), ['b/demote', 'a/demote', 'b/stop', 'a/stop']);
    await c.waitFor('a new master', (x) => x.cluster.master !== null && x.cluster.master !== m && c.settled(x), 5000);
  } finally {
    await c.stop();
  }
});

test('maintenance and the failure history survive a restart of every node', async () => {
  const c = await TestCluster.start();
  try {
    await c.waitFor('settled', (x) => c.settled(x) && x.nodes.every((n) => n.reachable), 8000);
    c.setFlag('status-n3-db', '1');
    await c.waitFor('n3 failed', (x) => x.nodes.find((n) => n.name === 'n3')!.state === 'failed', 6000);
    c.clearFlag('status-n3-db');
    assert.equal((await c.koi(['maintenance', 'on'])).code, 0);
    for (const n of ['n1', 'n2', 'n3']) c.kill9(n);
    await new Promise((r) => setTimeout(r, 300));
    for (const n of ['n1', 'n2', 'n3']) c.startNode(n);
    const s = await c.waitFor('a leader again', (x) => x.cluster.leader !== null, 8000);
    assert.equal(s.cluster.maintenance, true);
    const f = JSON.parse((await c.koi(['failures', '--json'])).stdout) as { node: string }[];
    assert.ok(f.some((r) => r.node === 'n3'), 'failure history kept');
  } finally {
    await c.stop();
  }
});

test('koi check validates a services folder and a configuration without a cluster', async () => {
  const d = tempDir('koi-check-');
  const svc = join(d, 'services');
  mkdirSync(join(svc, '10-ok'), { recursive: true });
  writeFileSync(join(svc, '10-ok', 'start'), '#!/bin/sh\nexit 0\n', { mode: 0o755 });
  const good = await koi(['check', svc]);
  assert.equal(good.code, 0, good.stderr);
  assert.match(good.stdout, /10 ok: start/);
  mkdirSync(join(svc, '20-bad'));
  writeFileSync(join(svc, '20-bad', 'start'), 'echo no shebang\n', { mode: 0o755 });
  writeFileSync(join(svc, '20-bad', 'stop'), '#!/no/such/shell\n', { mode: 0o755 });
  writeFileSync(join(svc, '20-bad', 'status'), '#!/bin/sh\n', { mode: 0o644 });
  mkdirSync(join(svc, '30-ok'));
  mkdirSync(join(svc, 'editor.bak'));
  const bad = await koi(['check', svc, '--no-color']);
  assert.equal(bad.code, 1);
  const problems = bad.stdout.split('\n').filter((l) => l.startsWith('problem: '));
  assert.equal(problems.length, 4, bad.stdout);
  assert.ok(problems.some((p) => p.includes('20-bad/start: no #! line')));
  assert.ok(problems.some((p) => p.includes('/no/such/shell does not exist')));
  assert.ok(problems.some((p) => p.includes('20-bad/status is not an executable file')));
  assert.ok(problems.some((p) => p.includes('both service "ok"')));
  assert.match(bad.stdout, /note: ignoring .*editor\.bak/);
  assert.match(bad.stderr, /^koi: 4 problem\(s\) found\n$/);
  const conf = join(d, 'koi.conf');
  writeFileSync(conf, `[node]\nname = a\n[cluster]\nsecret = 0123456789abcdef0\ntransport = a=127.0.0.1:1\n[service]\nfolder = ${svc}\nstart_timeout = forever\n`);
  chmodSync(conf, 0o600);
  const withConf = await koi(['check', '-f', conf, '--json']);
  assert.equal(withConf.code, 1);
  const j = JSON.parse(withConf.stdout) as { ok: boolean; problems: string[] };
  assert.equal(j.ok, false);
  assert.ok(j.problems.some((p) => p.includes('[service] start_timeout: "forever" is not a duration')));
});
