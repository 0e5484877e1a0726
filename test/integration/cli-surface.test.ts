// The koi commands the README lists that no other test runs: local, tree,
// status NODE, stop/start NODE, reconfigure NODE, and the default -t.
// One 3-node cluster serves every command check.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Socket } from 'node:net';
import { readFileSync, writeFileSync } from 'node:fs';
import type { LocalJson, StatusJson } from '../../src/admin-types';
import { freePorts } from '../../src/demo/local-cluster';
import { koi, TestCluster } from './harness';

test('koi status without -t gives up after the default 6 s on a node that accepts and never answers: exit 3, one line', async () => {
  const sockets: Socket[] = [];
  const silent = createServer((s) => sockets.push(s)); // accepts, reads nothing, says nothing
  const [port] = await freePorts(1);
  await new Promise<void>((r) => silent.listen(port, '127.0.0.1', r));
  // Any readable configuration will do for the secret; -H/-p aim koi at the silent port.
  const c = await TestCluster.start([{ name: 'n1' }], { start: false });
  try {
    const t0 = Date.now();
    const r = await koi(['-f', c.node('n1').conf, '-H', '127.0.0.1', '-p', String(port), 'status'], 20_000);
    const took = Date.now() - t0;
    assert.ok(sockets.length >= 1, 'koi did connect: the wait was for an answer, not for a connection');
    assert.equal(r.code, 3, r.stderr);
    assert.equal(r.stderr, `koi: no node answered at 127.0.0.1:${port} within 6s — is koinode running?\n`);
    assert.equal(r.stdout, '');
    assert.ok(took >= 5500, `gave up after ${took}ms, before the default 6 s`);
  } finally {
    for (const s of sockets) s.destroy();
    silent.close();
    await c.stop();
  }
});

/** The tree koi should print for this status (the README: services per node in priority order). */
function expectedTree(s: StatusJson): string {
  const lines = [`cluster ${s.cluster.id} (epoch ${s.cluster.epoch})`];
  s.nodes.forEach((n, i) => {
    const last = i === s.nodes.length - 1;
    const tags = [n.leader ? 'leader' : '', s.cluster.master === n.name ? 'master' : ''].filter((x) => x !== '').join(', ');
    lines.push(`${last ? '└──' : '├──'} ${n.name} ${n.state}${tags ? ` [${tags}]` : ''}`);
    const byPriority = [...n.services].sort((a, b) => a.priority! - b.priority!);
    byPriority.forEach((sv, j) => {
      lines.push(`${last ? '    ' : '│   '}${j === byPriority.length - 1 ? '└──' : '├──'} ${sv.priority}-${sv.name} ${sv.state}`);
    });
  });
  return `${lines.join('\n')}\n`;
}

test('koi local, tree, status NODE, stop/start NODE and reconfigure NODE on a real cluster', async () => {
  // 20-b sorts before 10-a nowhere but in this list: the tree must still show 10 first.
  const c = await TestCluster.start(undefined, { services: ['20-b', '10-a'] });
  try {
    const s = await c.waitFor('settled under n1, all up', (x) => c.settled(x) && x.cluster.leader === 'n1' && x.nodes.every((n) => n.reachable), 12_000);

    // koi local answers for the node it talks to, not for the leader.
    const lj = await c.koi(['local', '--json'], 'n2');
    assert.equal(lj.code, 0, lj.stderr);
    const l = JSON.parse(lj.stdout) as LocalJson;
    assert.equal(l.name, 'n2');
    assert.equal(l.address, `127.0.0.1:${c.node('n2').port}`);
    assert.equal(l.leader, 'n1');
    assert.equal(l.master, s.cluster.master);
    assert.equal(l.config, c.node('n2').conf);
    assert.equal(l.servicesFolder, c.node('n2').services);
    assert.equal(l.pid, c.node('n2').proc!.pid);
    assert.deepEqual(l.services.map((x) => x.name).sort(), ['a', 'b']);
    const lt = await c.koi(['local'], 'n2');
    assert.equal(lt.code, 0, lt.stderr);
    assert.match(lt.stdout, new RegExp(`^node +n2 \\(elector\\+runner\\) at 127\\.0\\.0\\.1:${c.node('n2').port}$`, 'm'));
    assert.match(lt.stdout, /^leader +n1$/m);
    assert.match(lt.stdout, new RegExp(`^koinode +pid ${l.pid}, up `, 'm'));

    // koi tree: compare with a status taken just before and just after (a settled cluster does not move).
    let tree = '';
    let want = 'no stable status';
    for (let i = 0; i < 5 && tree !== want; i++) {
      const before = (await c.status('n1'))!;
      const t = await c.koi(['tree'], 'n3');
      assert.equal(t.code, 0, t.stderr);
      const after = (await c.status('n1'))!;
      tree = t.stdout;
      want = expectedTree(after);
      if (expectedTree(before) !== want) tree = ''; // moved meanwhile: try again
    }
    assert.equal(tree, want);
    assert.match(tree, /── n1 \w+ \[leader/);
    assert.match(tree, /10-a \w+\n.*20-b \w+/);

    // koi status NODE: that node only; an unknown name is refused with the known ones.
    const one = await c.koi(['status', 'n2', '--json'], 'n3');
    assert.equal(one.code, 0, one.stderr);
    const oj = JSON.parse(one.stdout) as StatusJson;
    assert.deepEqual(oj.nodes.map((n) => n.name), ['n2']);
    assert.equal(oj.cluster.leader, 'n1');
    const oneText = await c.koi(['status', 'n3']);
    assert.equal(oneText.code, 0, oneText.stderr);
    const rows = oneText.stdout.split('\n').filter((r) => /^n\d/.test(r));
    assert.deepEqual(rows.map((r) => r.split(/\s+/)[0]), ['n3']);
    const none = await c.koi(['status', 'nosuch']);
    assert.equal(none.code, 1);
    assert.equal(none.stderr, 'koi: no node named nosuch — known: n1, n2, n3\n');

    // koi stop NODE, then koi start NODE, on a runner that is not the master.
    const x = s.nodes.find((n) => n.name !== s.cluster.master && n.name !== 'n1')!.name;
    const mark = c.journalLines().length;
    const stop = await c.koi(['stop', x]);
    assert.equal(stop.code, 0, stop.stderr);
    assert.equal(stop.stdout, `stop ${x}: its services will stop until koi start\n`);
    await c.waitFor(`${x} stopped`, (y) => {
      const n = y.nodes.find((m) => m.name === x)!;
      return n.state === 'stopped' && n.services.every((sv) => sv.state === 'stopped');
    });
    const stopped = c.journalLines().slice(mark);
    const events = () => c.journalLines().slice(mark).filter((j) => j[1] === x && j[3] !== 'status' && j[4] === 'begin').map((j) => `${j[2]}/${j[3]}`);
    assert.deepEqual(events(), ['b/stop', 'a/stop'], stopped.map((j) => j.join(' ')).join('\n'));
    const start = await c.koi(['start', x]);
    assert.equal(start.code, 0, start.stderr);
    assert.equal(start.stdout, `start ${x}: its services will start\n`);
    await c.waitFor(`${x} back`, (y) => {
      const n = y.nodes.find((m) => m.name === x)!;
      return n.state === 'slave' && n.services.every((sv) => sv.state === 'started');
    });
    assert.deepEqual(events(), ['b/stop', 'a/stop', 'a/start', 'b/start']);

    // koi reconfigure NODE through another node: n2 reloads its own file, n1 does not.
    const conf2 = c.node('n2').conf;
    writeFileSync(conf2, readFileSync(conf2, 'utf8').replace(/^priority = .*$/m, 'priority = 7'));
    const n1Reloads = () => (c.log('n1').match(/reloaded /g) ?? []).length;
    const before = n1Reloads();
    const rc = await c.koi(['reconfigure', 'n2', '--json'], 'n1');
    assert.equal(rc.code, 0, rc.stderr);
    assert.deepEqual(JSON.parse(rc.stdout), { ok: true, reloaded: conf2, needRestart: ['[node]'] });
    const rt = await c.koi(['reconfigure', 'n2'], 'n3');
    assert.equal(rt.stdout, `reloaded ${conf2}; restart koinode to apply [node]\n`);
    assert.match(c.log('n2'), new RegExp(`reloaded ${conf2.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}; \\[node\\] changed but need a restart`));
    assert.equal(n1Reloads(), before, 'n1 did not reload');
    const bad = await c.koi(['reconfigure', 'nosuch']);
    assert.equal(bad.code, 1);
    assert.equal(bad.stderr, 'koi: no node named nosuch — see koi status for the names\n');
  } finally {
    await c.stop();
  }
});
