// The virtual IP example inside a network namespace made by the test (root
// only): the master holds the address, a switchover moves it, koi stop
// removes it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO } from '../../src/demo/local-cluster';
import { TestCluster } from './harness';

const sh = (cmd: string) => spawnSync('sh', ['-c', cmd], { encoding: 'utf8' });

test('VIP example: the address follows the master, inside network namespaces', async (t) => {
  if (process.getuid?.() !== 0 || sh('ip netns list').status !== 0) {
    t.skip('needs root and iproute2 to make network namespaces');
    return;
  }
  const tag = `koivip${process.pid}`;
  const ns = (n: string) => `${tag}-${n}`;
  const names = ['n1', 'n2', 'n3'];
  for (const n of names) {
    const r = sh(`ip netns add ${ns(n)} && ip -n ${ns(n)} link add koi0 type veth peer name koi1 && ip -n ${ns(n)} link set koi0 up`);
    if (r.status !== 0) {
      for (const m of names) sh(`ip netns del ${ns(m)} 2>/dev/null`);
      t.skip(`cannot create network namespaces here: ${r.stderr.trim()}`);
      return;
    }
  }
  const holders = () => names.filter((n) => sh(`ip -n ${ns(n)} -o addr show dev koi0`).stdout.includes(' 10.123.0.10/24'));
  const c = await TestCluster.start(undefined, { services: [], start: false });
  try {
    for (const n of c.nodes) {
      cpSync(join(REPO, 'services', 'examples', '10-vip'), join(n.services, '10-vip'), { recursive: true });
      copyFileSync(join(REPO, 'services', 'koi-service.sh'), join(n.services, 'koi-service.sh'));
      writeFileSync(join(n.services, '10-vip', 'vip.conf.sh'), `VIP=10.123.0.10/24\nDEV=koi0\nNETNS=${ns(n.name)}\n`);
    }
    for (const n of c.nodes) c.startNode(n.name);
    const s = await c.waitFor('settled', (x) => c.settled(x) && x.nodes.every((n) => n.reachable), 10_000);
    assert.deepEqual(holders(), [s.cluster.master]);
    const to = s.cluster.master === 'n2' ? 'n3' : 'n2';
    assert.equal((await c.koi(['promote', to])).code, 0);
    await c.waitFor('switched', (x) => x.cluster.master === to && c.settled(x));
    assert.deepEqual(holders(), [to]);
    assert.equal((await c.koi(['stop', to])).code, 0);
    await c.waitFor('moved on', (x) => x.cluster.master !== null && x.cluster.master !== to && c.settled(x));
    const now = (await c.status())!.cluster.master!;
    assert.deepEqual(holders(), [now], 'exactly one holder after the stop');
  } finally {
    await c.stop();
    for (const n of names) sh(`ip netns del ${ns(n)}`);
  }
});
