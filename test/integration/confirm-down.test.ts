// The operator's way out when no fence is configured: a master's machine died
// during maintenance, so after `maintenance off` nobody may be promoted until
// it answers — or the operator runs `koi confirm-down`. Real koinodes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TestCluster } from './harness';

test('koi status says what the leader waits for; koi confirm-down frees a dead master and is recorded', async () => {
  const c = await TestCluster.start();
  try {
    await c.waitFor('settled, led by n1', (x) => c.settled(x) && x.cluster.leader === 'n1', 15_000);
    let r = await c.koi(['promote', 'n2']);
    for (let i = 0; i < 5 && r.code !== 0; i++) r = await c.koi(['promote', 'n2']);
    assert.equal(r.code, 0, r.stderr);
    await c.waitFor('n2 master', (x) => x.cluster.master === 'n2' && c.settled(x), 10_000);
    assert.equal((await c.koi(['maintenance', 'on'])).code, 0);
    c.kill9('n2');
    assert.equal((await c.koi(['maintenance', 'off'])).code, 0);
    const s = await c.waitFor('the leader waiting for n2', (x) => x.cluster.master === null && x.cluster.waitingFor.some((w) => w.node === 'n2'), 10_000);
    assert.match(s.cluster.waitingFor[0]!.reason, /koi confirm-down n2/);
    const text = await c.koi(['status']);
    assert.match(text.stdout, /waiting: n2 may have held the role through maintenance/);
    // Still nobody after a while: only n2 or the operator can free the role.
    await new Promise((res) => setTimeout(res, 3000));
    assert.equal((await c.status())?.cluster.master ?? null, null, 'no master while n2 may hold');
    // A command that cannot take effect says why instead of a bare "ok".
    const promote = await c.koi(['promote', 'n3']);
    assert.equal(promote.code, 0, promote.stderr);
    assert.match(promote.stdout, /accepted, but it cannot take effect yet: .*n2 may have held the role/);
    const stop = await c.koi(['stop', 'n2', '--json']);
    assert.match(JSON.parse(stop.stdout).note ?? '', /n2 is unreachable: it acts on this when it answers again/);
    assert.equal((await c.koi(['start', 'n2'])).code, 0);
    const refused = await c.koi(['confirm-down', 'n3']);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /n3 is reachable/);
    const ok = await c.koi(['confirm-down', 'n2']);
    assert.equal(ok.code, 0, ok.stderr);
    const after = await c.waitFor('a new master', (x) => x.cluster.master !== null && x.cluster.master !== 'n2', 10_000);
    assert.deepEqual(after.cluster.waitingFor, []);
    const f = await c.koi(['failures', '--json']);
    const records = JSON.parse(f.stdout) as { node: string; event: string }[];
    assert.ok(records.some((x) => x.node === 'n2' && x.event === 'confirm-down'), f.stdout);
  } finally {
    await c.stop();
  }
});
