// [cluster] quorum set by hand, elector = false and runner = false on real
// processes. Two electors and two runner-only nodes: the default quorum (a
// majority of the 4 listed nodes, 3) could never be met by 2 electors, so a
// leader at all shows the configured quorum of 2 is the one in force.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { LocalJson } from '../../src/admin-types';
import { TestCluster } from './harness';

test('quorum = 2 of two electors; the elector-only node leads and runs no script; runner-only nodes never lead', async () => {
  const c = await TestCluster.start(
    [
      { name: 'e1', priority: 5, runner: false },
      { name: 'e2', priority: 4 },
      // The highest priorities, on nodes that may not lead.
      { name: 'r1', priority: 9, elector: false },
      { name: 'r2', priority: 8, elector: false },
    ],
    { extra: { cluster: { quorum: '2' } } },
  );
  try {
    const s = await c.waitFor('settled under e1, all up', (x) => c.settled(x) && x.cluster.leader === 'e1' && x.nodes.every((n) => n.reachable), 12_000);
    assert.deepEqual(s.cluster.quorum, { required: 2, electors: 2, reachable: 2 });
    const e1 = s.nodes.find((n) => n.name === 'e1')!;
    assert.deepEqual([e1.elector, e1.runner, e1.state, e1.services], [true, false, 'elector', []]);
    for (const r of ['r1', 'r2']) {
      const n = s.nodes.find((x) => x.name === r)!;
      assert.deepEqual([n.elector, n.runner], [false, true]);
    }
    assert.notEqual(s.cluster.master, 'e1');

    // The elector-only node cannot be made master; runner-only nodes follow.
    const p = await c.koi(['promote', 'e1'], 'e2');
    assert.equal(p.code, 1, p.stdout);
    assert.equal(p.stderr, 'koi: e1 is not a runner — only runners can be master\n');
    const l = JSON.parse((await c.koi(['local', '--json'], 'r1')).stdout) as LocalJson;
    assert.equal(l.leader, 'e1');
    assert.notEqual(l.role, 'leader');

    // e2 gone: e1 alone is 1 elector of the 2 required, so no leader at all, and
    // r1 (priority 9) does not step in.
    c.kill9('e2');
    const end = Date.now() + 8000;
    let leaderless = false;
    // e1 steps down first; the runners forget it leader_timeout after its
    // last heartbeat, so wait for all three before watching.
    while (!leaderless && Date.now() < end) {
      leaderless = true;
      for (const n of ['e1', 'r1', 'r2']) {
        const r = await c.koi(['local', '--json', '-t', '2'], n);
        if (!(r.code === 0 && (JSON.parse(r.stdout) as LocalJson).leader === null)) leaderless = false;
      }
      if (!leaderless) await new Promise((res) => setTimeout(res, 100));
    }
    assert.ok(leaderless, 'e1 kept leading (or was still followed) without a quorum of 2');
    // Watch a while longer: nobody leads (lease and election timeouts are 1 s and 0.5 s).
    const watchEnd = Date.now() + 2500;
    while (Date.now() < watchEnd) {
      for (const n of ['e1', 'r1', 'r2']) {
        const r = await c.koi(['local', '--json', '-t', '2'], n);
        assert.equal(r.code, 0, r.stderr);
        const v = JSON.parse(r.stdout) as LocalJson;
        assert.equal(v.leader, null, `${n} sees ${v.leader} leading without a quorum`);
        assert.notEqual(v.role, 'leader', `${n} leads without a quorum`);
      }
    }

    assert.deepEqual(c.journalLines().filter((j) => j[1] === 'e1'), [], 'e1 ran a script');
    assert.ok(c.journalLines().some((j) => j[1] === 'r1') && c.journalLines().some((j) => j[1] === 'r2'), 'the runner-only nodes ran their services');
    for (const n of ['r1', 'r2']) assert.doesNotMatch(c.log(n), /elected leader/);
  } finally {
    await c.stop();
  }
});
