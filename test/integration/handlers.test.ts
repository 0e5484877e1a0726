// Cluster event handlers with real koinodes: the events and their variables,
// the shipped round-robin DNS handler, the Redis publisher against a real
// redis-server, and the fence hook.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePorts, REPO } from '../../src/demo/local-cluster';
import { TestCluster } from './harness';

// Each handler notes its begin and end in one file per leader; the pause
// between them would let a second handler's begin slip in if two ran at once.
const ORDER = (tag: string) => `o="$KOI_JOURNAL_DIR/order-$KOI_LEADER"
echo "begin ${tag} $KOI_EVENT_ID" >> "$o"`;
const ORDER_END = (tag: string) => `echo "end ${tag} $KOI_EVENT_ID" >> "$o"`;

const RECORDER = `#!/bin/sh
${ORDER('10')}
echo "$1|$KOI_EVENT|$KOI_EVENT_ID|$KOI_NODE|$KOI_NODE_ADDRESS|$KOI_MASTER|$KOI_LEADER|$KOI_UP_NODES" >> "$KOI_JOURNAL_DIR/handler-$(basename "$0")-$KOI_LEADER"
sleep 0.1
${ORDER_END('10')}
`;

/** The shipped DNS handler, run from a wrapper that notes its begin and end. */
const DNS = `#!/bin/sh
${ORDER('20')}
sleep 0.1
"${join(REPO, 'etc', 'handlers', 'dns-hosts')}" "$@"
rc=$?
${ORDER_END('20')}
exit $rc
`;

function installHandlers(c: TestCluster, files: Record<string, string>): void {
  for (const n of c.nodes) {
    const dir = join(n.dir, 'handlers');
    mkdirSync(dir, { recursive: true });
    for (const [name, src] of Object.entries(files)) {
      if (src.startsWith('#!')) writeFileSync(join(dir, name), src, { mode: 0o755 });
      else copyFileSync(src, join(dir, name));
    }
  }
}

function calls(c: TestCluster, leader: string, handler = '10-record'): string[][] {
  const f = join(c.root, `handler-${handler}-${leader}`);
  return existsSync(f) ? readFileSync(f, 'utf8').trim().split('\n').map((l) => l.split('|')) : [];
}

function succeeded(r: { code: number; stderr: string }): void {
  assert.equal(r.code, 0, r.stderr);
}

/** koi promote, retried while a loaded machine lets the target miss a heartbeat. */
async function promote(c: TestCluster, to: string): Promise<void> {
  const end = Date.now() + 15_000;
  for (;;) {
    const r = await c.koi(['promote', to]);
    if (r.code === 0 || !/unreachable/.test(r.stderr) || Date.now() > end) return succeeded(r);
    await new Promise((res) => setTimeout(res, 500));
  }
}

/** Promote `to` and wait until it is master; again if a leader change dropped the switchover. */
async function makeMaster(c: TestCluster, to: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    await promote(c, to);
    try {
      await c.waitFor(`${to} master`, (x) => x.cluster.master === to && c.settled(x), 15_000);
      return;
    } catch (e) {
      if (attempt === 3) throw e;
    }
  }
}

async function until(what: string, pred: () => boolean, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (pred()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

test('the leader runs handlers in order for every event, with the spec variables; the DNS file follows healthy runners', async () => {
  const c = await TestCluster.start(undefined, { start: false });
  try {
    const dns = join(c.root, 'dns', 'service.hosts');
    installHandlers(c, { '10-record': RECORDER, '20-dns': DNS });
    process.env.KOI_DNS_FILE = dns;
    for (const n of c.nodes) c.startNode(n.name);
    // Under n1, the Bully's last word: a takeover later would move the handlers.
    const s = await c.waitFor('settled under n1', (x) => c.settled(x) && x.cluster.leader === 'n1' && x.nodes.every((n) => n.reachable), 20_000);
    const L = s.cluster.leader!;
    await until('leader-changed and sync', () => calls(c, L).some((x) => x[0] === 'sync'));
    const first = calls(c, L);
    assert.deepEqual(first.slice(0, 2).map((x) => x[0]), ['leader-changed', 'sync']);
    assert.equal(first[1]![1], 'sync', 'KOI_EVENT is the first argument too');
    assert.match(first[1]![2]!, /^\d+-2$/, 'KOI_EVENT_ID is epoch-sequence');
    assert.equal(first[1]![6], L, 'KOI_LEADER');
    await until('dns file', () => existsSync(dns) && readFileSync(dns, 'utf8').split('\n').filter((l) => l.endsWith(' service.koi')).length === 3);

    const to = s.cluster.master === 'n2' ? 'n3' : 'n2';
    await promote(c, to);
    await until('master-changed', () => calls(c, L).some((x) => x[0] === 'master-changed' && x[5] === to));
    succeeded(await c.koi(['maintenance', 'on']));
    succeeded(await c.koi(['maintenance', 'off']));
    await until('maintenance events', () => calls(c, L).some((x) => x[0] === 'maintenance-off'));
    const victim = ['n1', 'n2', 'n3'].find((n) => n !== L && n !== to)!;
    const beforeKill = calls(c, L).length;
    c.kill9(victim);
    await until('node-down', () => calls(c, L).some((x) => x[0] === 'node-down' && x[3] === victim && x[4]!.startsWith('127.0.0.1:')));
    await until('dns without the dead node', () => readFileSync(dns, 'utf8').split('\n').filter((l) => l.endsWith(' service.koi')).length === 2);
    c.startNode(victim);
    await until('node-up then sync', () => {
      const k = calls(c, L).map((x) => x[0]);
      return k.lastIndexOf('node-up') > k.lastIndexOf('node-down') && k.lastIndexOf('sync') > k.lastIndexOf('node-down');
    });
    // Every handler saw every event, one at a time, 10 before 20, events in order.
    const order = () => readFileSync(join(c.root, `order-${L}`), 'utf8').trim().split('\n');
    await until('both handlers finished every event', () => {
      const o = order();
      return o.filter((l) => l.startsWith('end ')).length === 2 * calls(c, L).length;
    });
    const seen = calls(c, L).map((x) => x[2]!);
    assert.deepEqual(order(), seen.flatMap((id) => [`begin 10 ${id}`, `end 10 ${id}`, `begin 20 ${id}`, `end 20 ${id}`]), 'handlers ran one at a time, in name order');
    const key = (id: string) => id.split('-').map(Number) as [number, number];
    const sorted = [...seen].sort((a, b) => key(a)[0] - key(b)[0] || key(a)[1] - key(b)[1]);
    assert.deepEqual(seen, sorted, 'events in order');
    assert.equal(new Set(seen).size, seen.length, 'each event once');
    // KOI_UP_NODES: the healthy runners; the dead one is missing on its node-down.
    const down = calls(c, L).slice(beforeKill).find((x) => x[0] === 'node-down' && x[3] === victim)!;
    assert.deepEqual(down[7]!.split(',').sort(), ['n1', 'n2', 'n3'].filter((n) => n !== victim), `KOI_UP_NODES on node-down of ${victim}`);
  } finally {
    delete process.env.KOI_DNS_FILE;
    await c.stop();
  }
});

test('the Redis handler publishes the cluster state to a real redis-server', async (t) => {
  if (spawnSync('redis-server', ['--version']).status !== 0) {
    t.skip('redis-server is not installed (.ci/run installs it)');
    return;
  }
  const [port] = await freePorts(1);
  const redis: ChildProcess = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  const c = await TestCluster.start(undefined, { start: false });
  try {
    installHandlers(c, { '30-redis': join(REPO, 'etc', 'handlers', 'redis-publish') });
    process.env.KOI_REDIS_PORT = String(port);
    for (const n of c.nodes) c.startNode(n.name);
    const s = await c.waitFor('settled under n1', (x) => c.settled(x) && x.cluster.leader === 'n1' && x.nodes.every((n) => n.reachable), 20_000);
    const get = () => spawnSync('redis-cli', ['-p', String(port), 'HGETALL', 'koi:cluster'], { encoding: 'utf8' }).stdout.trim().split('\n');
    await until('state in redis', () => {
      const h = get();
      return h.includes('master') && h[h.indexOf('master') + 1] === s.cluster.master;
    });
    const to = s.cluster.master === 'n2' ? 'n3' : 'n2';
    await promote(c, to);
    // Later events (a sync after a missed heartbeat on a loaded machine) may
    // follow master-changed: each rewrites the whole view, so wait for the view.
    await until('new master in redis', () => {
      const h = get();
      return h[h.indexOf('master') + 1] === to;
    });
    const h = get();
    assert.equal(h[h.indexOf('leader') + 1], s.cluster.leader);
    assert.equal(h[h.indexOf('up') + 1]!.split(',').sort().join(','), 'n1,n2,n3');
  } finally {
    delete process.env.KOI_REDIS_PORT;
    redis.kill('SIGKILL');
    await c.stop();
  }
});

test('fence: called with the node name and address; success shortens failover, failure falls back to waiting', async () => {
  // Long enough that a working fence (leader_timeout + 1 s + fence time, SPEC 9)
  // lands far inside the wait it saves, even on a loaded machine.
  const leaseMs = 3000;
  const demoteMs = 5000;
  for (const ok of [true, false]) {
    const c = await TestCluster.start(undefined, { start: false, extra: { time: { master_lease: `${leaseMs / 1000}s` }, service: { demote_timeout: `${demoteMs / 1000}s` } } });
    try {
      const fence = join(c.root, 'fence');
      writeFileSync(fence, `#!/bin/sh\necho "$1 $2 $KOI_NODE" >> "$(dirname "$0")/fenced"\necho "fencing $1"\nexit ${ok ? 0 : 1}\n`, { mode: 0o755 });
      for (const n of c.nodes) {
        const conf = readFileSync(n.conf, 'utf8').replace('[cluster]', `[cluster]\nfence = ${fence}`);
        writeFileSync(n.conf, conf);
      }
      for (const n of c.nodes) c.startNode(n.name);
      await c.waitFor('settled', (x) => c.settled(x) && x.nodes.every((n) => n.reachable), 20_000);
      await makeMaster(c, 'n3');
      c.kill9('n3');
      const t0 = Date.now();
      await c.waitFor('new master', (x) => x.cluster.master !== null && x.cluster.master !== 'n3' && c.settled(x), 25_000);
      const seen = Date.now() - t0;
      // From the kill to the new master's promote script starting (the
      // journal's clock), so slow polling cannot hide a slow failover.
      const promoted = c.journalLines().find((l) => l[1] !== 'n3' && l[3] === 'promote' && l[4] === 'begin' && Number(BigInt(l[0]!) / 1_000_000n) >= t0);
      assert.ok(promoted !== undefined, 'the new master ran promote');
      const began = Number(BigInt(promoted[0]!) / 1_000_000n) - t0;
      // A fence must save at least half the wait. Without one, n3's last lease
      // (granted before the kill) plus demote must pass before the new master
      // is seen; that moment is what the lower bound is checked against.
      if (ok) assert.ok(began < (leaseMs + demoteMs) / 2, `fenced failover: promote began ${began}ms after the kill, not well below lease + demote (${leaseMs + demoteMs}ms)`);
      else assert.ok(seen >= leaseMs + demoteMs, `unfenced failover seen ${seen}ms after the kill: it must wait out lease + demote (${leaseMs + demoteMs}ms)`);
      // On a loaded machine another node may have missed its heartbeats and
      // been fenced before: look for n3's call.
      const calls = readFileSync(join(c.root, 'fenced'), 'utf8').trim().split('\n');
      const fenced = (calls.find((l) => l.startsWith('n3 ')) ?? '').split(' ');
      assert.equal(fenced[0], 'n3', `the fence was called for n3: ${calls.join(' | ')}`);
      assert.equal(fenced[1], `127.0.0.1:${c.node('n3').port}`);
      assert.equal(fenced[2], 'n3', 'KOI_NODE names the fenced node');
      // Whichever node led ran the fence (n1, unless it started late).
      assert.match(c.log('n1') + c.log('n2'), ok ? /fence of n3: succeeded/ : /fence of n3: failed \(exit 1\)[^]*next fence attempt of n3 in/);
    } finally {
      await c.stop();
    }
  }
});
