// Safety timings that differ between nodes (a rolling change): each node says
// its own in its hello, the leader logs the difference once, and koi status
// shows every node's values and warns.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { TestCluster } from './harness';

test('a node with another master_lease: its hello tells the leader, koi status shows it and warns', async () => {
  const c = await TestCluster.start(undefined, { start: false });
  try {
    const n2 = c.node('n2');
    const conf = readFileSync(n2.conf, 'utf8');
    assert.match(conf, /master_lease = 1s/);
    writeFileSync(n2.conf, conf.replace('master_lease = 1s', 'master_lease = 1500ms'), { mode: 0o600 });
    for (const n of c.nodes) c.startNode(n.name);
    const s = await c.waitFor('settled, every node heard', (x) => c.settled(x) && x.cluster.leader === 'n1' && x.nodes.every((n) => n.timings !== null), 15_000);
    const t = Object.fromEntries(s.nodes.map((n) => [n.name, n.timings]));
    assert.deepEqual(t.n2, { masterLeaseMs: 1500, demoteTimeoutMs: 1000 });
    assert.deepEqual(t.n1, { masterLeaseMs: 1000, demoteTimeoutMs: 1000 });
    const text = await c.koi(['status']);
    assert.match(text.stdout, /master_lease\/demote_timeout differ \(.*n2 1500\/1000ms.*\): a leader waits out the longest/);
    const log = readFileSync(c.node('n1').log, 'utf8');
    assert.match(log, /n2 says master_lease = 1500ms, ours is 1000ms/);
    assert.equal(log.split('n2 says master_lease').length - 1, 1, 'logged once');
  } finally {
    await c.stop();
  }
});
