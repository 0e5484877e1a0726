// The Redis master/replica example service, end to end: three real
// redis-servers under three koinodes; data written to the master survives a
// kill -9 of the master's machine (koinode and Redis) and the new master
// takes writes.
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

test('Redis example: keys written before a kill -9 of the master are on the new master, which takes writes', async (t) => {
  if (spawnSync('redis-server', ['--version']).status !== 0) {
    t.skip('redis-server is not installed (.ci/run installs it)');
    return;
  }
  const ports = await freePorts(3);
  const c = await TestCluster.start(undefined, { services: [], start: false, extra: { time: { status_interval: '500ms' } } });
  const redisPort = new Map(c.nodes.map((n, i) => [n.name, ports[i]!]));
  try {
    for (const n of c.nodes) {
      const dir = join(n.services, '30-redis');
      cpSync(join(REPO, 'services', 'examples', '30-redis'), dir, { recursive: true });
      copyFileSync(join(REPO, 'services', 'koi-service.sh'), join(n.services, 'koi-service.sh'));
      writeFileSync(join(dir, 'redis.conf.sh'), `REDIS_PORT=${redisPort.get(n.name)}\nREDIS_DIR=${join(n.dir, 'redis')}\n`);
      writeFileSync(join(dir, 'nodes'), c.nodes.map((x) => `${x.name} 127.0.0.1 ${redisPort.get(x.name)}`).join('\n') + '\n');
    }
    for (const n of c.nodes) c.startNode(n.name);
    const s = await c.waitFor('settled', (x) => c.settled(x) && x.nodes.every((n) => n.state === 'master' || n.state === 'slave'), 15_000);
    const m = s.cluster.master!;
    const mp = redisPort.get(m)!;
    assert.match(cli(mp, 'ROLE'), /^master/);
    // Replicas attach asynchronously (a status run points them at the master)
    // and Redis delays a diskless full sync by 5 s to batch replicas, so a
    // replica that arrives late waits for a second round: allow for both.
    const online = () => (cli(mp, 'INFO', 'replication').match(/^slave\d+:.*state=online/gm) ?? []).length;
    const attachBy = Date.now() + 30_000;
    while (online() < 2 && Date.now() < attachBy) await new Promise((r) => setTimeout(r, 100));
    assert.equal(online(), 2, `both replicas in sync with the master: ${cli(mp, 'INFO', 'replication')}`);
    for (let i = 0; i < 50; i++) assert.equal(cli(mp, 'SET', `k${i}`, `v${i}`), 'OK');
    assert.equal(cli(mp, 'WAIT', '2', '5000'), '2', 'both replicas acknowledged the writes');
    for (const n of c.nodes.filter((x) => x.name !== m)) {
      assert.match(cli(redisPort.get(n.name)!, 'ROLE'), /^slave/);
      assert.match(cli(redisPort.get(n.name)!, 'SET', 'x', '1'), /READONLY/, 'replicas refuse writes');
    }
    // The master's machine dies: koinode, its scripts, and Redis.
    c.kill9(m);
    const pidFile = join(c.node(m).dir, 'redis', 'redis.pid');
    if (existsSync(pidFile)) process.kill(Number(readFileSync(pidFile, 'utf8')), 'SIGKILL');
    const after = await c.waitFor('a new master', (x) => x.cluster.master !== null && x.cluster.master !== m && c.settled(x), 15_000);
    const np = redisPort.get(after.cluster.master!)!;
    assert.match(cli(np, 'ROLE'), /^master/);
    for (let i = 0; i < 50; i++) assert.equal(cli(np, 'GET', `k${i}`), `v${i}`);
    assert.equal(cli(np, 'SET', 'after', 'failover'), 'OK');
    const other = c.nodes.find((x) => x.name !== m && x.name !== after.cluster.master)!;
    const op = redisPort.get(other.name)!;
    const end = Date.now() + 8000;
    while (cli(op, 'GET', 'after') !== 'failover' && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
    assert.equal(cli(op, 'GET', 'after'), 'failover', 'the remaining replica follows the new master');
  } finally {
    for (const [name, port] of redisPort) {
      cli(port, 'SHUTDOWN', 'NOSAVE');
      void name;
    }
    await c.stop();
  }
});
