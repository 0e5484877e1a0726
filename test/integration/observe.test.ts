// Metrics and the status page, readiness for systemd, and installing the
// packed tarball as a global package.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { get } from 'node:http';
import { freePorts, REPO, startNode } from '../../src/demo/local-cluster';
import { tempDir, TestCluster } from './harness';

function fetchText(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    get(url, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    }).on('error', reject);
  });
}

test('[node] metrics serves Prometheus text and a self-refreshing status page', async () => {
  const [mport] = await freePorts(1);
  const c = await TestCluster.start(undefined, { start: false });
  try {
    const conf = c.node('n1').conf;
    writeFileSync(conf, readFileSync(conf, 'utf8').replace('[node]', `[node]\nmetrics = 127.0.0.1:${mport}`));
    for (const n of c.nodes) c.startNode(n.name);
    const s = await c.waitFor('settled under n1', (x) => c.settled(x) && x.cluster.leader === 'n1' && x.nodes.every((n) => n.reachable), 20_000);
    await new Promise((r) => setTimeout(r, 500));
    const m = await fetchText(`http://127.0.0.1:${mport}/metrics`);
    assert.equal(m.status, 200);
    assert.match(m.body, /^# TYPE koi_leader gauge$/m);
    assert.match(m.body, /^koi_leader 1$/m, 'n1 leads');
    assert.match(m.body, new RegExp(`^koi_master\\{node="${s.cluster.master}"\\} 1$`, 'm'));
    assert.match(m.body, /^koi_node_state\{node="n2",state="(slave|master)"\} 1$/m);
    assert.match(m.body, /^koi_service_state\{node="n1",service="db",state="(started|promoted)"\} 1$/m);
    // Counted by the leader that designated: n1 may have taken over later, so
    // the count so far may be 0; a switchover under n1 must add one.
    const failovers = (body: string) => Number(/^koi_failovers_total (\d+)$/m.exec(body)?.[1] ?? Number.NaN);
    const before = failovers(m.body);
    assert.ok(Number.isInteger(before), 'koi_failovers_total is exported');
    assert.match(m.body, /^koi_heartbeat_rtt_seconds\{node="n2"\} 0\.\d+/m);
    assert.match(m.body, /^koi_bytes_sent_total [1-9]\d*$/m);
    assert.match(m.body, /^koi_script_runs_total\{event="start"\} [1-9]/m);
    const page = await fetchText(`http://127.0.0.1:${mport}/`);
    assert.equal(page.status, 200);
    assert.match(page.body, /<meta http-equiv="refresh" content="2">/);
    assert.match(page.body, new RegExp(`id="master">${s.cluster.master}<`));
    assert.match(page.body, /id="leader">n1</);
    assert.equal((await fetchText(`http://127.0.0.1:${mport}/nope`)).status, 404);
    const to = s.cluster.master === 'n2' ? 'n3' : 'n2';
    assert.equal((await c.koi(['promote', to])).code, 0);
    await c.waitFor(`${to} master under n1`, (x) => x.cluster.master === to && x.cluster.leader === 'n1' && c.settled(x), 20_000);
    const after = failovers((await fetchText(`http://127.0.0.1:${mport}/metrics`)).body);
    assert.ok(after >= before + 1 && after >= 1, `koi_failovers_total went from ${before} to ${after} over a switchover`);
  } finally {
    await c.stop();
  }
});

test('koinode tells systemd it is ready (Type=notify) once it listens', async (t) => {
  if (spawnSync('systemd-notify', ['--help']).status !== 0 || spawnSync('python3', ['-c', '0']).status !== 0) {
    t.skip('systemd-notify or python3 missing (.ci/run installs systemd and python3)');
    return;
  }
  const c = await TestCluster.start([{ name: 'n1' }], { start: false });
  const sock = join(c.root, 'notify.sock');
  // A stand-in for systemd: a unix datagram socket that prints what it receives.
  const listener = spawn('python3', ['-c', `import socket,sys\ns=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM)\ns.bind(${JSON.stringify(sock)})\nprint('bound',flush=True)\nprint(s.recv(4096).decode(),flush=True)`], { stdio: ['ignore', 'pipe', 'inherit'] });
  let got = '';
  listener.stdout.on('data', (d: Buffer) => (got += d.toString()));
  try {
    const end = Date.now() + 5000;
    while (!got.includes('bound') && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
    startNode(c.node('n1'), { NOTIFY_SOCKET: sock });
    while (!got.includes('READY=1') && Date.now() < end + 20_000) await new Promise((r) => setTimeout(r, 50));
    assert.match(got, /READY=1/);
  } finally {
    listener.kill();
    await c.stop();
  }
});

test('koinode sends WATCHDOG=1 from its loop at half of WatchdogSec, and none while it is frozen', async (t) => {
  if (spawnSync('systemd-notify', ['--help']).status !== 0 || spawnSync('python3', ['-c', '0']).status !== 0) {
    t.skip('systemd-notify or python3 missing (.ci/run installs systemd and python3)');
    return;
  }
  const c = await TestCluster.start([{ name: 'n1' }], { start: false });
  const sock = join(c.root, 'notify.sock');
  // A stand-in for systemd that stamps every datagram with its arrival time.
  const py = `import socket,time\ns=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM)\ns.bind(${JSON.stringify(sock)})\nprint('bound',flush=True)\nwhile True:\n  d=s.recv(4096).decode().replace('\\n',' ')\n  print(int(time.time()*1000),d,flush=True)`;
  const listener = spawn('python3', ['-c', py], { stdio: ['ignore', 'pipe', 'inherit'] });
  let got = '';
  listener.stdout.on('data', (d: Buffer) => (got += d.toString()));
  const pings = () => got.split('\n').filter((l) => l.includes('WATCHDOG=1')).map((l) => Number(l.split(' ')[0]));
  try {
    const end = Date.now() + 5000;
    while (!got.includes('bound') && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
    const p = startNode(c.node('n1'), { NOTIFY_SOCKET: sock, WATCHDOG_USEC: '1000000' });
    const end2 = Date.now() + 20_000;
    while (pings().length < 4 && Date.now() < end2) await new Promise((r) => setTimeout(r, 50));
    const before = pings();
    assert.ok(before.length >= 4, `pings: ${got}`);
    // Each ping is a spawned systemd-notify, whose start-up varies on a busy
    // machine: judge the rate, and that no gap came near WatchdogSec.
    const gaps = before.slice(1).map((x, i) => x - before[i]!);
    const meanMs = (before.at(-1)! - before[0]!) / gaps.length;
    assert.ok(meanMs >= 400 && meanMs <= 700 && gaps.every((g) => g < 1000), `gaps between pings (ms): ${gaps.join(', ')}`);
    p.kill('SIGSTOP');
    const stoppedAt = Date.now();
    await new Promise((r) => setTimeout(r, 2000));
    const during = pings().filter((x) => x > stoppedAt + 100);
    p.kill('SIGCONT');
    assert.deepEqual(during, [], 'pings while the loop was frozen');
  } finally {
    listener.kill();
    await c.stop();
  }
});

test('npm pack, installed globally into a prefix, gives working koi and koinode commands', async () => {
  const d = tempDir('koi-pack-');
  const out = execFileSync('npm', ['pack', '--ignore-scripts', '--pack-destination', d, '--silent'], { cwd: REPO, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim().split('\n').pop()!;
  const tgz = join(d, out);
  assert.ok(existsSync(tgz), `packed ${tgz}`);
  const prefix = join(d, 'prefix');
  execFileSync('npm', ['install', '-g', '--prefix', prefix, '--no-audit', '--no-fund', tgz], { stdio: 'ignore' });
  const bin = join(prefix, 'bin');
  assert.deepEqual(readdirSync(bin).sort(), ['koi', 'koinode']);
  const v = spawnSync(join(bin, 'koi'), ['--version'], { encoding: 'utf8' });
  assert.equal(v.status, 0, v.stderr);
  assert.match(v.stdout, /^\d+\.\d+\.\d+\n$/);
  const h = spawnSync(join(bin, 'koinode'), ['--help'], { encoding: 'utf8' });
  assert.equal(h.status, 0, h.stderr);
  assert.match(h.stdout, /koinode \[options\]/);
  assert.equal(h.stderr, '', 'no V8 warnings from the #! flags');
  const k = spawnSync(join(bin, 'koi'), ['check', join(prefix, 'lib', 'node_modules', 'koi', 'services', 'demo')], { encoding: 'utf8' });
  assert.equal(k.status, 0, k.stdout + k.stderr);
});
