// The Redis master/replica example service, end to end: three real
// redis-servers under three koinodes (on loopback; docs/SERVICES.md says how
// to run it across machines). A client counts a write as acknowledged only
// after WAIT 1 says a replica has it: every acknowledged write survives a
// kill -9 of the master's machine (koinode and Redis, while writes go on);
// the freshest replica is chosen (KOI_SCORE); the old master comes back as a
// replica; a master cut off from every replica refuses writes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePorts, REPO } from '../../src/demo/local-cluster';
import { TestCluster } from './harness';

function cli(port: number, ...args: string[]): string {
  return spawnSync('redis-cli', ['-p', String(port), ...args], { encoding: 'utf8' }).stdout.trim();
}

function redisPid(c: TestCluster, node: string): number | null {
  const f = join(c.node(node).dir, 'redis', 'redis.pid');
  return existsSync(f) ? Number(readFileSync(f, 'utf8')) : null;
}

test('Redis example: no acknowledged write is lost when the master machine dies mid-stream; the old master rejoins as a replica; a master cut off from its replicas refuses writes', async (t) => {
  if (spawnSync('redis-server', ['--version']).status !== 0) {
    t.skip('redis-server is not installed (.ci/run installs it)');
    return;
  }
  const ports = await freePorts(3);
  const c = await TestCluster.start(undefined, { services: [], start: false, extra: { time: { status_interval: '500ms' }, service: { start_timeout: '15s' } } });
  const redisPort = new Map(c.nodes.map((n, i) => [n.name, ports[i]!]));
  try {
    for (const n of c.nodes) {
      const dir = join(n.services, '30-redis');
      cpSync(join(REPO, 'services', 'examples', '30-redis'), dir, { recursive: true });
      copyFileSync(join(REPO, 'services', 'koi-service.sh'), join(n.services, 'koi-service.sh'));
      writeFileSync(
        join(dir, 'redis.conf.sh'),
        `REDIS_BIND=127.0.0.1\nREDIS_PORT=${redisPort.get(n.name)}\nREDIS_DIR=${join(n.dir, 'redis')}\nREDIS_MIN_REPLICAS_MAX_LAG=4\n`,
      );
      writeFileSync(join(dir, 'nodes'), c.nodes.map((x) => `${x.name} 127.0.0.1 ${redisPort.get(x.name)}`).join('\n') + '\n');
    }
    for (const n of c.nodes) c.startNode(n.name);
    const s = await c.waitFor('settled', (x) => c.settled(x) && x.nodes.every((n) => n.state === 'master' || n.state === 'slave'), 30_000);
    const m = s.cluster.master!;
    const mp = redisPort.get(m)!;
    assert.match(cli(mp, 'ROLE'), /^master/);
    // The promote pointed both replicas at the master; a diskless full sync
    // may wait up to 5 s to batch replicas.
    const online = () => (cli(mp, 'INFO', 'replication').match(/^slave\d+:.*state=online/gm) ?? []).length;
    const attachBy = Date.now() + 30_000;
    while (online() < 2 && Date.now() < attachBy) await new Promise((r) => setTimeout(r, 100));
    assert.equal(online(), 2, `both replicas in sync with the master: ${cli(mp, 'INFO', 'replication')}`);
    for (const n of c.nodes.filter((x) => x.name !== m)) assert.match(cli(redisPort.get(n.name)!, 'SET', 'x', '1'), /READONLY/, 'replicas refuse writes');

    // Scores reach koi status: the freshness of each copy.
    const scored = await c.waitFor('scores in koi status', (x) => x.nodes.every((n) => n.services[0]?.score !== null && n.services[0]?.score !== undefined), 10_000);
    assert.ok(scored.nodes.every((n) => (n.services[0]!.score ?? -1) >= 0));

    // A client writes on and on; a write counts once WAIT says a replica has it.
    const acked: string[] = [];
    let refused = 0;
    let i = 0;
    const write = () => {
      const key = `k${i++}`;
      const r = spawnSync('redis-cli', ['-p', String(mp), 'SET', key, key], { encoding: 'utf8' });
      if (!/^OK/.test(r.stdout)) {
        refused++;
        return;
      }
      if (Number(cli(mp, 'WAIT', '1', '3000')) >= 1) acked.push(key);
    };
    for (let n = 0; n < 100; n++) write();
    // The master's machine dies between two writes: koinode, its scripts, and Redis.
    const pid = redisPid(c, m);
    const killedAt = Date.now();
    c.kill9(m);
    if (pid !== null) process.kill(pid, 'SIGKILL');
    for (let n = 0; n < 5; n++) write(); // refused: nobody listens
    const after = await c.waitFor('a new master', (x) => x.cluster.master !== null && x.cluster.master !== m && c.settled(x), 20_000);
    const np = redisPort.get(after.cluster.master!)!;
    const failoverMs = Date.now() - killedAt;
    assert.match(cli(np, 'ROLE'), /^master/);
    assert.ok(acked.length >= 20, `${acked.length} of 100 writes acknowledged before the kill (WAIT 1 within 3 s)`);
    const lost = acked.filter((k) => cli(np, 'GET', k) !== k);
    assert.deepEqual(lost, [], `${lost.length} of ${acked.length} acknowledged writes lost`);
    t.diagnostic(`kill -9 of the master machine: acknowledged ${acked.length}, lost ${lost.length}, refused ${refused} (sent after the kill); a new master with every service promoted ${failoverMs} ms after the kill (as koi status saw it)`);

    // The old master comes back: its Redis is started again, as a replica of the new one.
    c.startNode(m);
    await c.waitFor('the old master back as a slave', (x) => x.nodes.find((n) => n.name === m)!.state === 'slave', 30_000);
    assert.match(cli(redisPort.get(m)!, 'ROLE'), /^slave/);
    assert.equal(cli(np, 'SET', 'after', 'failover'), 'OK');
    const end = Date.now() + 10_000;
    while (cli(redisPort.get(m)!, 'GET', 'after') !== 'failover' && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
    assert.equal(cli(redisPort.get(m)!, 'GET', 'after'), 'failover', 'the old master follows the new one');

    // A master cut off from every replica (here: both frozen) stops taking writes.
    const replicas = c.nodes.filter((x) => x.name !== after.cluster.master).map((x) => redisPid(c, x.name)!);
    for (const p of replicas) process.kill(p, 'SIGSTOP');
    try {
      const by = Date.now() + 20_000;
      let reply = '';
      while (Date.now() < by && !/NOREPLICAS/.test((reply = cli(np, 'SET', 'cut', 'off')))) await new Promise((r) => setTimeout(r, 200));
      assert.match(reply, /NOREPLICAS/, 'writes refused once no replica is recent (min-replicas-to-write 1)');
    } finally {
      for (const p of replicas) process.kill(p, 'SIGCONT');
    }
  } finally {
    for (const port of redisPort.values()) cli(port, 'SHUTDOWN', 'NOSAVE');
    await c.stop();
  }
});
