// Cluster event handlers on real koinodes: the runner-failed,
// runner-recovered and maintenance-on events, the KOI_EPOCH and address
// variables, the DNS handler's reload command, and the Redis handler's
// PUBLISH seen by a real redis-cli subscriber.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePorts, REPO, startNode } from '../../src/demo/local-cluster';
import { TestCluster } from './harness';
import { readLines, STEADY, until } from './probes';

const RECORDER = `#!/bin/sh
echo "$1|$KOI_EVENT_ID|$KOI_NODE|$KOI_NODE_ADDRESS|$KOI_EPOCH|$KOI_MASTER|$KOI_UP_NODES|$KOI_UP_ADDRESSES" >> "$KOI_JOURNAL_DIR/events-$KOI_LEADER"
`;

interface Call {
  kind: string;
  id: string;
  node: string;
  address: string;
  epoch: string;
  master: string;
  up: string[];
  upAddresses: string[];
}

/** What the recorder saw, under every leader (a loaded machine may change leaders). */
function calls(c: TestCluster): Call[] {
  const files = readdirSync(c.root).filter((f) => f.startsWith('events-'));
  return files.flatMap((f) => readLines(join(c.root, f))).map((l) => {
    const [kind, id, node, address, epoch, master, up, upAddresses] = l.split('|') as [string, string, string, string, string, string, string, string];
    return { kind, id, node, address, epoch, master, up: up === '' ? [] : up.split(','), upAddresses: upAddresses === '' ? [] : upAddresses.split(',') };
  });
}

/** `redis-cli SUBSCRIBE` prints message, channel, payload on three lines per message. */
function published(out: string): string[] {
  const lines = out.split('\n');
  const msgs: string[] = [];
  for (let i = 0; i + 2 < lines.length; i++) if (lines[i] === 'message' && lines[i + 1] === 'koi:events') msgs.push(lines[i + 2]!);
  return msgs;
}

test('handlers see runner-failed, runner-recovered and maintenance-on with KOI_EPOCH and the addresses; DNS reloads, Redis publishes', async (t) => {
  if (spawnSync('redis-server', ['--version']).status !== 0 || spawnSync('redis-cli', ['--version']).status !== 0) {
    t.skip('redis-server/redis-cli are not installed (.ci/run installs them)');
    return;
  }
  const [rport] = await freePorts(1);
  const redis: ChildProcess = spawn('redis-server', ['--port', String(rport), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  let sub: ChildProcess | null = null;
  const c = await TestCluster.start(undefined, { start: false, extra: STEADY });
  try {
    for (const n of c.nodes) {
      const dir = join(n.dir, 'handlers');
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, '10-record'), RECORDER, { mode: 0o755 });
      copyFileSync(join(REPO, 'etc', 'handlers', 'dns-hosts'), join(dir, '20-dns'));
      copyFileSync(join(REPO, 'etc', 'handlers', 'redis-publish'), join(dir, '30-redis'));
    }
    // The subscriber must be listening before the first event is published.
    await until('redis-server up', () => spawnSync('redis-cli', ['-p', String(rport), 'PING'], { encoding: 'utf8' }).stdout.trim() === 'PONG');
    let subOut = '';
    sub = spawn('redis-cli', ['-p', String(rport), 'SUBSCRIBE', 'koi:events'], { stdio: ['ignore', 'pipe', 'ignore'] });
    sub.stdout!.on('data', (d: Buffer) => (subOut += d.toString()));
    await until('subscribed', () => subOut.split('\n').includes('1'));

    const dns = join(c.root, 'dns', 'service.hosts');
    const reloads = join(c.root, 'reloads');
    // The reload command records the header of the hosts file it finds: it
    // names the event that wrote it, so the rewrite must come first.
    const env = {
      KOI_JOURNAL: c.journal,
      KOI_JOURNAL_DIR: c.root,
      KOI_DNS_FILE: dns,
      KOI_DNS_RELOAD: `echo "$KOI_EVENT_ID $(head -n1 "$KOI_DNS_FILE")" >> ${reloads}`,
      KOI_REDIS_PORT: String(rport),
    };
    for (const n of c.nodes) startNode(n, env);
    // n1 leads in the end (after a takeover when it started late): wait for it and
    // its sync, so the events below happen within one leadership.
    const s = await c.waitFor('settled under n1', (x) => c.settled(x) && x.cluster.leader === 'n1' && x.nodes.every((n) => n.reachable && (n.state === 'slave' || n.state === 'master')), 30_000);
    const L = 'n1';
    await until('sync of this leadership', () => calls(c).some((x) => x.kind === 'sync' && x.epoch === String(s.cluster.epoch)));
    const M = s.cluster.master!;
    const addr = (name: string) => `127.0.0.1:${c.node(name).port}`;

    succeeded(await c.koi(['maintenance', 'on']));
    await until('maintenance-on', () => calls(c).some((x) => x.kind === 'maintenance-on'), 20_000).catch((e: Error) => {
      throw new Error(`${e.message}; handled: ${calls(c).map((x) => `${x.kind} ${x.id}`).join(', ')}`);
    });
    succeeded(await c.koi(['maintenance', 'off']));
    const on = calls(c).find((x) => x.kind === 'maintenance-on')!;
    assert.equal(on.node, '', 'maintenance-on is about the whole cluster');
    assert.equal(on.master, M);
    // KOI_EPOCH is the leader's epoch (the same unless a loaded machine changed leaders), the one in the event id too.
    const now = (await c.status())!.cluster.epoch;
    assert.ok(Number(on.epoch) >= s.cluster.epoch && Number(on.epoch) <= now, `KOI_EPOCH ${on.epoch} is the leader's epoch (${s.cluster.epoch})`);
    assert.equal(on.id.split('-')[0], on.epoch, 'KOI_EVENT_ID starts with the epoch');
    // Every runner is healthy here: the address list follows KOI_UP_NODES, in the same order.
    assert.deepEqual([...on.up].sort(), ['n1', 'n2', 'n3']);
    assert.deepEqual(on.upAddresses, on.up.map(addr), 'KOI_UP_ADDRESSES matches KOI_UP_NODES');

    // A runner that is neither leader nor master fails its status.
    const V = ['n1', 'n2', 'n3'].find((n) => n !== L && n !== M)!;
    c.setFlag(`fail-${V}-db-status`);
    await until('runner-failed', () => calls(c).some((x) => x.kind === 'runner-failed'), 30_000).catch(async (e: Error) => {
      const st = await c.status();
      throw new Error(`${e.message}; ${V} failing; handled: ${calls(c).map((x) => `${x.kind} ${x.id}`).join(', ')}; status: ${JSON.stringify(st?.nodes.map((n) => [n.name, n.state]))}`);
    });
    c.clearFlag(`fail-${V}-db-status`);
    const failed = calls(c).find((x) => x.kind === 'runner-failed')!;
    assert.equal(failed.node, V, 'KOI_NODE names the failed runner');
    assert.equal(failed.address, addr(V), 'KOI_NODE_ADDRESS is its address');
    assert.ok(!failed.up.includes(V), `a failed runner is not up: ${failed.up.join(',')}`);
    assert.deepEqual(failed.upAddresses, failed.up.map(addr));
    await until('dns without the failed runner', () => readLines(dns).filter((l) => l.endsWith(' service.koi')).length === 2);

    succeeded(await c.koi(['recover', V]));
    await until('runner-recovered', () => calls(c).some((x) => x.kind === 'runner-recovered'), 30_000);
    const rec = calls(c).find((x) => x.kind === 'runner-recovered')!;
    assert.equal(rec.node, V);
    assert.equal(rec.address, addr(V));
    const order = (id: string) => id.split('-').map(Number) as [number, number];
    const [re, rs] = order(rec.id);
    const [fe, fs] = order(failed.id);
    assert.ok(re > fe || (re === fe && rs > fs), `recovered (${rec.id}) comes after failed (${failed.id})`);

    // The DNS handler reloaded after each rewrite, with the file of that event in place.
    await until('reload for runner-recovered', () => readLines(reloads).some((l) => l.startsWith(`${rec.id} `)));
    const seen = readLines(reloads);
    for (const x of [on, failed, rec]) {
      const r = seen.find((l) => l.startsWith(`${x.id} `));
      assert.ok(r !== undefined, `reload ran for ${x.kind} (${x.id}): ${seen.join(' | ')}`);
      assert.ok(r.includes(`on ${x.kind} (${x.id})`), `the hosts file was rewritten for ${x.kind} before the reload: ${r}`);
    }

    // The Redis handler published every event as "<event> <id> <node> <master>".
    await until('published runner-recovered', () => published(subOut).some((m) => m.startsWith('runner-recovered ')));
    const msgs = published(subOut);
    for (const x of [on, failed, rec]) assert.ok(msgs.includes(`${x.kind} ${x.id} ${x.node} ${x.master}`), `published ${x.kind}: ${msgs.join(' | ')}`);
  } finally {
    sub?.kill('SIGKILL');
    redis.kill('SIGKILL');
    await c.stop();
  }
});

function succeeded(r: { code: number; stderr: string }): void {
  assert.equal(r.code, 0, r.stderr);
}
