// Service supervision with real koinode processes and real recording
// scripts: every event, ordering, failures of each event, status codes,
// hangs, noise, disabled, maintenance and automatic recovery.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TestCluster } from './harness';

const ONE = [{ name: 'n1' }];
const TWO = [{ name: 'n1', priority: 2 }, { name: 'n2', priority: 1 }];

/** Journal as "service event phase [exit]" strings for one node. */
function events(c: TestCluster, node = 'n1', skipStatus = true): string[] {
  return c
    .journalLines()
    .filter((l) => l[1] === node && !(skipStatus && l[3] === 'status'))
    .map((l) => `${l[2]} ${l[3]} ${l[4]}${l[4] === 'end' ? ` ${l[5]}` : ''}`);
}

async function waitJournal(c: TestCluster, what: string, pred: (e: string[]) => boolean, node = 'n1', timeoutMs = 8000): Promise<string[]> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    const e = events(c, node, false);
    if (pred(e)) return e;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}; journal of ${node}:\n${events(c, node, false).join('\n')}`);
}

const has = (e: string[], s: string) => e.includes(s);

test('the full cycle start → promote → demote → stop, and a null service', async () => {
  const c = await TestCluster.start(ONE, { services: ['10-db', '20-empty+'] });
  try {
    const s = await c.waitFor('n1 master', (x) => c.settled(x), 8000);
    assert.deepEqual(s.nodes[0]!.services.map((x) => [x.name, x.state]), [['db', 'promoted'], ['empty', 'promoted']]);
    assert.equal((await c.koi(['stop', 'n1'])).code, 0);
    await waitJournal(c, 'stop end', (e) => has(e, 'db stop end 0'));
    assert.deepEqual(events(c), ['db start begin', 'db start end 0', 'db promote begin', 'db promote end 0', 'db demote begin', 'db demote end 0', 'db stop begin', 'db stop end 0']);
    const st = await c.waitFor('stopped', (x) => x.nodes[0]!.state === 'stopped');
    assert.equal(st.cluster.master, null);
  } finally {
    await c.stop();
  }
});

test('five services (10, 10, 20 and two without priority) start, promote and stop in order', async () => {
  const c = await TestCluster.start(ONE, { services: ['10-a', '10-b', '20-c', 'd', 'e'], start: false });
  try {
    c.setFlag('sleep-start', '0.3');
    c.setFlag('sleep-promote', '0.3');
    c.setFlag('sleep-demote', '0.3');
    c.setFlag('sleep-stop', '0.3');
    c.startNode('n1');
    await c.waitFor('all promoted', (x) => c.settled(x) && x.nodes[0]!.services.every((s) => s.state === 'promoted'), 10_000);
    assert.equal((await c.koi(['stop', 'n1'])).code, 0);
    const e = await waitJournal(c, 'all stopped', (x) => ['a', 'b', 'c', 'd', 'e'].every((s) => has(x, `${s} stop end 0`)), 'n1', 15_000);
    const at = (s: string) => {
      const i = e.indexOf(s);
      assert.ok(i >= 0, `${s} in journal`);
      return i;
    };
    for (const ev of ['start', 'promote']) {
      assert.ok(at(`c ${ev} begin`) > at(`a ${ev} end 0`) && at(`c ${ev} begin`) > at(`b ${ev} end 0`), `${ev}: 20 after both 10s`);
      assert.ok(at(`b ${ev} begin`) < at(`a ${ev} end 0`), `${ev}: equal priorities together`);
    }
    assert.ok(at('d start begin') < at('a start end 0') && at('e start begin') < at('a start end 0'), 'unprioritised services do not wait');
    assert.ok(at('c promote begin') > Math.max(at('a start end 0'), at('c start end 0')), 'every start before any promote');
    for (const ev of ['demote', 'stop']) {
      assert.ok(at(`a ${ev} begin`) > at(`c ${ev} end 0`) && at(`b ${ev} begin`) > at(`c ${ev} end 0`), `${ev}: 10s after 20`);
    }
    assert.ok(at('a stop begin') > at('a demote end 0') && at('c stop begin') > at('b demote end 0'), 'every demote before any stop');
  } finally {
    await c.stop();
  }
});

for (const ev of ['start', 'promote', 'status'] as const) {
  test(`a failing ${ev}: failed script, then stop; the runner is failed and the failure recorded`, async () => {
    const c = await TestCluster.start(ONE, { services: ['10-db'], start: false });
    try {
      c.setFlag(ev === 'status' ? 'status-n1-db' : `fail-n1-db-${ev}`, ev === 'status' ? '1' : '');
      c.startNode('n1');
      if (ev === 'status') {
        // At boot a failing status only means "not running"; it must fail later, on a started service.
        await c.waitFor('started', (x) => x.nodes[0]!.services[0]!.state !== 'stopped', 8000);
      }
      await c.waitFor('failed', (x) => x.nodes[0]!.state === 'failed', 10_000);
      const e = await waitJournal(c, 'stop after failed', (x) => x.indexOf('db stop end 0') > x.indexOf('db failed end 0') && x.indexOf('db failed end 0') > 0);
      assert.ok(e.includes(`db ${ev} end 1`));
      const f = JSON.parse((await c.koi(['failures', '--json'])).stdout) as { node: string; service: string; event: string; exitCode: number }[];
      assert.ok(f.some((r) => r.node === 'n1' && r.service === 'db' && r.event === ev && r.exitCode === 1), JSON.stringify(f));
    } finally {
      await c.stop();
    }
  });
}

test('a failing stop and a failing demote fail the runner too; a failing failed script changes nothing', async () => {
  const c = await TestCluster.start(ONE, { services: ['10-db'] });
  try {
    await c.waitFor('master', (x) => c.settled(x), 8000);
    c.setFlag('fail-n1-db-demote');
    c.setFlag('fail-n1-db-failed');
    assert.equal((await c.koi(['demote'])).code, 0);
    await c.waitFor('failed', (x) => x.nodes[0]!.state === 'failed', 8000);
    const e = await waitJournal(c, 'stop', (x) => has(x, 'db stop end 0'));
    assert.deepEqual(e.slice(e.indexOf('db demote begin')).filter((l) => !l.startsWith('db status')), ['db demote begin', 'db demote end 1', 'db failed begin', 'db failed end 1', 'db stop begin', 'db stop end 0']);
    c.clearFlag('fail-n1-db-demote');
    c.clearFlag('fail-n1-db-failed');
    c.setFlag('fail-n1-db-stop');
    assert.equal((await c.koi(['recover', 'n1'])).code, 0);
    await c.waitFor('recovered', (x) => x.nodes[0]!.state !== 'failed' && x.nodes[0]!.services[0]!.state === 'started', 8000);
    assert.equal((await c.koi(['stop', 'n1'])).code, 0);
    await c.waitFor('failed on stop', (x) => x.nodes[0]!.state === 'failed', 8000);
    const f = JSON.parse((await c.koi(['failures', '--json'])).stdout) as { event: string }[];
    assert.deepEqual(f.map((r) => r.event), ['demote', 'stop']);
  } finally {
    await c.stop();
  }
});

test('status 92 re-runs start; 90 on a runner that is not master demotes it; 93 makes it unpromotable', async () => {
  const c = await TestCluster.start(TWO, { services: ['10-db'] });
  try {
    const s = await c.waitFor('settled', (x) => c.settled(x) && x.nodes.every((n) => n.reachable), 8000);
    const slave = s.nodes.find((n) => n.name !== s.cluster.master)!.name;
    c.setFlag(`status-${slave}-db`, '92');
    await waitJournal(c, 'start again', (e) => e.filter((l) => l === 'db start end 0').length >= 2, slave);
    c.setFlag(`status-${slave}-db`, '90');
    await waitJournal(c, 'demote', (e) => has(e, 'db demote end 0'), slave);
    c.setFlag(`status-${slave}-db`, '93');
    await new Promise((r) => setTimeout(r, 1500));
    const r = await c.koi(['promote', slave]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`koi: ${slave} cannot be promoted: not promotable yet`));
    c.setFlag(`status-${slave}-db`, '0');
    await new Promise((r2) => setTimeout(r2, 1500));
    assert.equal((await c.koi(['promote', slave])).code, 0, 'promotable again once status says 0');
  } finally {
    await c.stop();
  }
});

test('a promote that hangs past promote_timeout is killed and counts as a failure', async () => {
  const c = await TestCluster.start(ONE, { services: ['10-db'], start: false, extra: { service: { promote_timeout: '1s' } } });
  try {
    c.setFlag('hang-n1-db-promote');
    c.startNode('n1');
    await c.waitFor('failed', (x) => x.nodes[0]!.state === 'failed', 10_000);
    const e = events(c);
    const log = c.log('n1');
    assert.match(log, /db\/promote ran past its time limit: SIGTERM/);
    // The script's TERM trap writes its end line, unless the grace ran out first on a loaded machine.
    const killed = /db\/promote ran past its time limit: SIGKILL/.test(log);
    assert.ok(e.includes('db promote end TERM') || killed, e.join('\n'));
    const f = JSON.parse((await c.koi(['failures', '--json'])).stdout) as { event: string; signal: string | null; exitCode: number | null }[];
    assert.ok(f.some((r) => r.event === 'promote' && (r.signal === 'SIGTERM' || r.signal === 'SIGKILL' || r.exitCode === 143)), JSON.stringify(f));
  } finally {
    await c.stop();
  }
});

test('a service printing 10 MB does not grow koinode, which keeps answering', async () => {
  const c = await TestCluster.start(ONE, { services: ['10-db'], start: false });
  try {
    writeFileSync(join(c.node('n1').services, '20-noisy'), '#!/bin/sh\ncase "$1" in\n  start) head -c 10000000 /dev/zero | tr "\\0" "y" | fold -w 200; touch noisy-ran ;;\n  status) [ -f noisy-ran ] || exit 92 ;;\nesac\nexit 0\n', { mode: 0o755 });
    c.startNode('n1');
    await c.waitFor('settled', (x) => c.settled(x), 15_000);
    const pid = c.node('n1').proc!.pid!;
    const { readFileSync } = await import('node:fs');
    const rssKb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
    assert.ok(rssKb < 150_000, `koinode RSS ${rssKb} kB`);
    assert.ok(c.log('n1').length < 2_000_000, 'the log holds a bounded part of it');
    assert.match(c.log('n1'), /output truncated/);
  } finally {
    await c.stop();
  }
});

test('a disabled file stops the service and makes the runner unelectable until removed', async () => {
  const c = await TestCluster.start(TWO, { services: ['10-db/'], extra: { time: { status_interval: '500ms' } } });
  try {
    const s = await c.waitFor('settled', (x) => c.settled(x) && x.nodes.every((n) => n.reachable), 8000);
    const m = s.cluster.master!;
    const flag = join(c.node(m).services, '10-db', 'disabled');
    writeFileSync(flag, '');
    const moved = await c.waitFor('master moved', (x) => x.cluster.master !== null && x.cluster.master !== m && c.settled(x), 8000);
    assert.equal(moved.nodes.find((n) => n.name === m)!.services[0]!.disabled, true);
    await waitJournal(c, 'stopped', (e) => has(e, 'db stop end 0'), m);
    rmSync(flag);
    await c.waitFor('started again', (x) => x.nodes.find((n) => n.name === m)!.state === 'slave', 8000);
  } finally {
    await c.stop();
  }
});

test('leaving maintenance runs status first', async () => {
  const c = await TestCluster.start(ONE, { services: ['10-db'] });
  try {
    await c.waitFor('master', (x) => c.settled(x), 8000);
    assert.equal((await c.koi(['maintenance', 'on'])).code, 0);
    await new Promise((r) => setTimeout(r, 300));
    const n = c.journalLines().length;
    const before = events(c, 'n1', false).length;
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(c.journalLines().length, n, 'frozen');
    assert.equal((await c.koi(['maintenance', 'off'])).code, 0);
    const e = await waitJournal(c, 'a script after maintenance', (x) => x.length > before);
    assert.equal(e[before], 'db status begin', `first script after maintenance: ${e.slice(before).join(', ')}`);
  } finally {
    await c.stop();
  }
});

test('automatic recovery waits auto_recover_wait, doubling, then gives up', async () => {
  const base = 1000;
  const c = await TestCluster.start(ONE, { services: ['10-db'], start: false, extra: { service: { auto_recover: '2', auto_recover_wait: `${base}ms` } } });
  try {
    c.setFlag('fail-n1-db-start');
    c.startNode('n1');
    await waitJournal(c, 'three starts', (e) => e.filter((l) => l === 'db start end 1').length >= 3, 'n1', 15_000);
    const starts = c.journalLines().filter((l) => l[1] === 'n1' && l[3] === 'start' && l[4] === 'begin').map((l) => Number(BigInt(l[0]!) / 1_000_000n));
    const ends = c.journalLines().filter((l) => l[1] === 'n1' && l[3] === 'stop' && l[4] === 'end').map((l) => Number(BigInt(l[0]!) / 1_000_000n));
    const wait1 = starts[1]! - ends[0]!;
    const wait2 = starts[2]! - ends[1]!;
    // Load only lengthens a wait, so the lower bounds are firm; a constant
    // wait of any length fails the difference (doubling adds `base`).
    assert.ok(wait1 >= base - 50, `first wait ${wait1}ms, at least ${base}ms`);
    assert.ok(wait2 >= 2 * base - 50, `second wait ${wait2}ms, at least ${2 * base}ms`);
    assert.ok(wait2 - wait1 >= 0.7 * base, `second wait ${wait2}ms is not double the first ${wait1}ms`);
    // A third recovery would come after a doubled wait again (4 × base): give it that, and more.
    await new Promise((r) => setTimeout(r, 5 * base));
    assert.equal(c.journalLines().filter((l) => l[1] === 'n1' && l[3] === 'start' && l[4] === 'begin').length, 3, 'no third recovery');
    const s = await c.status();
    assert.equal(s!.nodes[0]!.state, 'failed');
  } finally {
    await c.stop();
  }
});
