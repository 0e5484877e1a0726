// Real koinode processes, real gRPC, real scripts: the behaviours of issue 4.
// Timings: heartbeat 100ms, leader_timeout 500ms, master_lease 1s,
// demote_timeout 1s (harness FAST).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TestCluster } from './harness';

const LEASE_MS = 1000;
const DEMOTE_MS = 1000;

test('cold start of 3 nodes: one leader, one master, status --json has the spec shape', async () => {
  const c = await TestCluster.start();
  try {
    // The highest priority leads (at once, or after the settle period if it started late).
    const s = await c.waitFor('a settled cluster led by n1', (x) => c.settled(x) && x.cluster.leader === 'n1' && x.nodes.every((n) => n.reachable), 10_000);
    // The spec's fields, plus waitingFor (what blocks a failover; empty when
    // settled) and the leader's view of the network.
    assert.deepEqual(Object.keys(s.cluster).sort(), ['epoch', 'id', 'leader', 'maintenance', 'manualMaster', 'master', 'network', 'quorum', 'target', 'waitingFor'].sort());
    assert.deepEqual(s.cluster.waitingFor, []);
    const net = (s.cluster as unknown as { network: { quorumRttMs: number | null; windowMs: number; toleratedRttMs: number; warning: string | null } }).network;
    assert.equal(typeof net.quorumRttMs, 'number', 'loopback round trips are measured');
    assert.ok(net.windowMs > net.quorumRttMs!, JSON.stringify(net));
    assert.ok(net.toleratedRttMs > 0 && net.warning === null, JSON.stringify(net));
    assert.ok(s.nodes.some((n) => typeof (n as unknown as { rttMs: unknown }).rttMs === 'number'), 'nodes carry the leader-measured round trip');
    assert.equal(s.cluster.id, 13);
    assert.deepEqual(s.cluster.quorum, { required: 2, electors: 3, reachable: 3 });
    assert.equal(s.nodes.length, 3);
    for (const n of s.nodes) {
      for (const k of ['name', 'address', 'elector', 'runner', 'leader', 'state', 'reachable', 'lastSeenMs', 'failcount', 'services']) assert.ok(k in n, `node has ${k}`);
      for (const sv of n.services) for (const k of ['name', 'priority', 'state', 'running', 'failed']) assert.ok(k in sv, `service has ${k}`);
      assert.equal(n.services[0]!.priority, 10);
    }
    assert.equal(s.nodes.filter((n) => n.state === 'master').length, 1);
    assert.deepEqual(s.nodes.filter((n) => n.state === 'slave').length, 2);
    // Any node answers koi: ask the others too.
    for (const via of ['n2', 'n3']) {
      const r = await c.koi(['status', '--json'], via);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(JSON.parse(r.stdout).cluster.master, s.cluster.master);
    }
    const text = await c.koi(['status']);
    assert.equal(text.code, 0);
    assert.match(text.stdout, /leader n1/);
    assert.match(text.stdout, /NODE +ADDRESS/);
  } finally {
    await c.stop();
  }
});

test('kill -9 of the master koinode and its scripts: a new master after lease + demote, not before', async () => {
  const c = await TestCluster.start();
  try {
    await c.waitFor('settled', (x) => c.settled(x), 8000);
    assert.equal((await c.koi(['promote', 'n3'])).code, 0);
    await c.waitFor('n3 master', (x) => x.cluster.master === 'n3' && c.settled(x));
    const t0 = Date.now();
    c.kill9('n3');
    const s = await c.waitFor('a new master', (x) => x.cluster.master !== null && x.cluster.master !== 'n3' && c.settled(x), 10_000);
    const took = Date.now() - t0;
    assert.ok(took >= LEASE_MS + DEMOTE_MS - 300, `promoted after only ${took}ms: the old master might still have held its lease`);
    assert.ok(took <= LEASE_MS + DEMOTE_MS + 1000 + 1500, `failover took ${took}ms`);
    assert.equal(s.nodes.find((n) => n.name === 'n3')!.state, 'disconnected');
  } finally {
    await c.stop();
  }
});

test('kill -9 of the leader only: a new leader, the master does not move', async () => {
  const c = await TestCluster.start();
  try {
    await c.waitFor('settled', (x) => c.settled(x), 8000);
    assert.equal((await c.koi(['promote', 'n2'])).code, 0);
    await c.waitFor('n2 master', (x) => x.cluster.master === 'n2' && c.settled(x));
    const before = c.journalLines().filter((l) => l[1] === 'n2' && l[3] === 'demote').length;
    c.kill9('n1');
    const s = await c.waitFor('n2 leads', (x) => x.cluster.leader === 'n2', 5000);
    assert.equal(s.cluster.master, 'n2');
    await new Promise((r) => setTimeout(r, 1500));
    const after = await c.waitFor('still settled', (x) => c.settled(x));
    assert.equal(after.cluster.master, 'n2');
    assert.equal(c.journalLines().filter((l) => l[1] === 'n2' && l[3] === 'demote').length, before, 'n2 was never demoted');
  } finally {
    await c.stop();
  }
});

test('koi promote switches over: the old master demotes before the new one promotes', async () => {
  const c = await TestCluster.start();
  try {
    const s = await c.waitFor('settled', (x) => c.settled(x), 8000);
    const from = s.cluster.master!;
    const to = from === 'n2' ? 'n3' : 'n2';
    const r = await c.koi(['promote', to], 'n3');
    assert.equal(r.code, 0, r.stderr);
    await c.waitFor(`${to} master`, (x) => x.cluster.master === to && c.settled(x), 5000);
    const j = c.journalLines();
    const demoteEnd = j.findIndex((l) => l[1] === from && l[3] === 'demote' && l[4] === 'end');
    const promoteBegin = j.findIndex((l) => l[1] === to && l[3] === 'promote' && l[4] === 'begin');
    assert.ok(demoteEnd >= 0 && promoteBegin > demoteEnd, 'demote ended before promote began');
    const bad = await c.koi(['promote', 'nosuch']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^koi: no node named nosuch/);
  } finally {
    await c.stop();
  }
});

test('koi demote leaves the cluster masterless until koi elect', async () => {
  const c = await TestCluster.start();
  try {
    await c.waitFor('settled', (x) => c.settled(x), 8000);
    assert.equal((await c.koi(['demote'])).code, 0);
    const s = await c.waitFor('no master', (x) => x.cluster.master === null && x.nodes.every((n) => n.state !== 'master'));
    assert.equal(s.cluster.manualMaster, true);
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal((await c.status())!.cluster.master, null, 'stays masterless');
    assert.equal((await c.koi(['elect'], 'n2')).code, 0);
    const e = await c.waitFor('a master again', (x) => c.settled(x));
    assert.equal(e.cluster.manualMaster, false);
  } finally {
    await c.stop();
  }
});

test('maintenance survives a leader change and runs no script', async () => {
  const c = await TestCluster.start();
  try {
    const s = await c.waitFor('settled', (x) => c.settled(x), 8000);
    if (s.cluster.master === 'n1') {
      assert.equal((await c.koi(['promote', 'n2'])).code, 0);
      await c.waitFor('n2 master', (x) => x.cluster.master === 'n2' && c.settled(x));
    }
    assert.equal((await c.koi(['maintenance', 'on'])).code, 0);
    await c.waitFor('maintenance', (x) => x.cluster.maintenance);
    await new Promise((r) => setTimeout(r, 300)); // a script already running may still end
    const begun = () => c.journalLines().filter((l) => l[4] === 'begin').length;
    const lines = begun();
    c.kill9('n1');
    const after = await c.waitFor('new leader in maintenance', (x) => x.cluster.leader !== null && x.cluster.leader !== 'n1', 5000);
    assert.equal(after.cluster.maintenance, true);
    await new Promise((r) => setTimeout(r, 2500));
    assert.equal(begun(), lines, 'no script started during maintenance (not even status)');
    assert.equal((await c.koi(['maintenance', 'off'], 'n2')).code, 0);
    await c.waitFor('supervision resumed', (x) => !x.cluster.maintenance && c.settled(x));
  } finally {
    await c.stop();
  }
});

test('a failing service fails the runner; koi recover brings it back; koi failures shows it', async () => {
  const c = await TestCluster.start();
  try {
    const s = await c.waitFor('settled', (x) => c.settled(x), 8000);
    const victim = s.nodes.find((n) => n.name !== s.cluster.master)!.name;
    c.setFlag(`status-${victim}-db`, '1');
    await c.waitFor(`${victim} failed`, (x) => x.nodes.find((n) => n.name === victim)!.state === 'failed', 5000);
    const f = await c.koi(['failures', '--json']);
    const recs = JSON.parse(f.stdout) as { node: string; event: string; exitCode: number }[];
    assert.ok(recs.some((r) => r.node === victim && r.event === 'status' && r.exitCode === 1), f.stdout);
    // Status says when it is tried next and why (here never: auto_recover = 0).
    const why = `automatic recovery is off (auto_recover = 0): koi recover ${victim}`;
    const j = JSON.parse((await c.koi(['status', '--json'])).stdout) as { nodes: { name: string; nextRecoveryInMs: number | null; recoveryWaitReason: string | null }[] };
    assert.deepEqual(
      j.nodes.map((n) => [n.name, n.nextRecoveryInMs, n.recoveryWaitReason]),
      j.nodes.map((n) => [n.name, null, n.name === victim ? why : null]),
    );
    const text = (await c.koi(['status', '--no-color'])).stdout.split('\n');
    const row = text.findIndex((l) => l.startsWith(`${victim} `) || l.startsWith(`${victim}* `));
    assert.equal(text[row + 1], `  └ no try scheduled: ${why}`, text.join('\n'));
    c.clearFlag(`status-${victim}-db`);
    assert.equal((await c.koi(['recover', victim])).code, 0);
    await c.waitFor(`${victim} back`, (x) => x.nodes.find((n) => n.name === victim)!.state === 'slave', 5000);
  } finally {
    await c.stop();
  }
});

test('a node restarted with the same name rejoins', async () => {
  const c = await TestCluster.start();
  try {
    await c.waitFor('settled, all up', (x) => c.settled(x) && x.nodes.every((n) => n.reachable), 8000);
    c.kill9('n3');
    await c.waitFor('n3 gone', (x) => x.nodes.find((n) => n.name === 'n3')!.state === 'disconnected', 5000);
    c.startNode('n3');
    await c.waitFor('n3 back', (x) => x.nodes.find((n) => n.name === 'n3')!.reachable && ['slave', 'master'].includes(x.nodes.find((n) => n.name === 'n3')!.state), 8000);
  } finally {
    await c.stop();
  }
});

test('a node with the wrong secret is refused with a clear log line and changes nothing', async () => {
  const c = await TestCluster.start(undefined, { start: false });
  try {
    // n3 gets another secret.
    const conf = c.node('n3').conf;
    const { readFileSync, writeFileSync } = await import('node:fs');
    writeFileSync(conf, readFileSync(conf, 'utf8').replace(/secret = .*/, 'secret = a-different-secret-of-enough-length'));
    for (const n of ['n1', 'n2', 'n3']) c.startNode(n);
    const s = await c.waitFor('n1+n2 settled', (x) => c.settled(x), 8000);
    assert.notEqual(s.cluster.master, 'n3');
    assert.equal(s.nodes.find((n) => n.name === 'n3')!.reachable, false);
    // n3 was never heard from: its roles are unknown, and it still counts as an elector.
    assert.deepEqual(s.cluster.quorum, { required: 2, electors: 3, reachable: 2 });
    await new Promise((r) => setTimeout(r, 500));
    const logs = c.log('n1') + c.log('n2') + c.log('n3');
    // n1 and n2 dial n3 (their names sort first); n3 refuses them and tells them why.
    assert.match(c.log('n3'), /refused n1: message from n1 failed authentication — the secret differs from ours/);
    assert.match(c.log('n1'), /n3 refused us: .*the secret differs from ours/);
    assert.ok((logs.match(/refused/g) ?? []).length <= 8, 'logged once a minute per sender, not per message');
    const r = await c.koi(['status', '-H', '127.0.0.1', '-p', String(c.node('n1').port)], 'n3');
    assert.equal(r.code, 1, 'koi with the wrong secret is refused too');
    assert.match(r.stderr, /^koi: 127\.0\.0\.1:\d+ refused koi: wrong secret /);
  } finally {
    await c.stop();
  }
});
