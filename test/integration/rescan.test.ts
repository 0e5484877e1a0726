// The services folder is rescanned while koinode runs (issue 17): at every
// status round, on koi reconfigure and on SIGHUP. A new service is started
// and promoted without touching the others, a removed one is stopped (not a
// failure), a malformed entry is a warning. Also maintenance freezing a
// script that runs through it. Real koinode, real recording scripts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, copyFileSync, mkdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO } from '../../src/demo/local-cluster';
import { TestCluster } from './harness';
import { alive, until } from './probes';

const ONE = [{ name: 'n1' }];
const RECORD = join(REPO, 'services', 'testing', 'record');

/** Journal of n1 as "service event phase [exit]", statuses left out. */
function events(c: TestCluster, service?: string): string[] {
  return c
    .journalLines()
    .filter((l) => l[1] === 'n1' && l[3] !== 'status' && (service === undefined || l[2] === service))
    .map((l) => `${l[2]} ${l[3]} ${l[4]}${l[4] === 'end' ? ` ${l[5]}` : ''}`);
}

function addService(c: TestCluster, entry: string): void {
  const p = join(c.node('n1').services, entry);
  copyFileSync(RECORD, p);
  chmodSync(p, 0o755);
}

function servicesOf(s: { nodes: { name: string; services: { name: string; state: string }[] }[] }): string {
  return s.nodes[0]!.services.map((x) => `${x.name}:${x.state}`).join(' ');
}

/** n1 master; then web, which lives elsewhere (the folder holds a link to it), added and promoted. */
async function linkedWebPromoted(c: TestCluster): Promise<void> {
  await c.waitFor('n1 master', (x) => c.settled(x), 8000);
  const real = join(c.root, 'opt-web');
  mkdirSync(real);
  for (const ev of ['start', 'stop', 'status', 'promote', 'demote']) {
    copyFileSync(RECORD, join(real, ev));
    chmodSync(join(real, ev), 0o755);
  }
  symlinkSync(real, join(c.node('n1').services, '20-web'));
  await c.waitFor('web promoted', (x) => servicesOf(x) === 'db:promoted web:promoted', 8000);
}

test('a service added to the running master is started and promoted in order; the others are not touched; removing it stops it', async () => {
  const c = await TestCluster.start(ONE, { services: ['10-db', '30-app'] });
  try {
    await c.waitFor('n1 master', (x) => c.settled(x), 8000);
    const before = events(c).length;
    addService(c, '20-web');
    const s = await c.waitFor('web promoted', (x) => c.settled(x) && servicesOf(x) === 'db:promoted web:promoted app:promoted', 8000);
    assert.equal(s.cluster.master, 'n1', 'still the master');
    assert.deepEqual(events(c).slice(before), ['web start begin', 'web start end 0', 'web promote begin', 'web promote end 0'], 'only the new service ran (after its status)');
    assert.match(c.log('n1'), /services: .*: added web/);

    // A malformed entry is a warning; koinode keeps running.
    writeFileSync(join(c.node('n1').services, '40-broken'), 'not executable\n');
    await until('warning about the broken entry', () => /ignoring .*40-broken: a file service must be executable/.test(c.log('n1')), 5000);
    assert.ok(alive(c.node('n1').proc!.pid!), 'koinode runs on');

    const mark = events(c).length;
    rmSync(join(c.node('n1').services, '20-web'));
    // Its script is gone: the demote and stop cannot run, and that fails nothing.
    const t = await c.waitFor('web gone from the folder is let go', (x) => !x.nodes[0]!.services.some((y) => y.name === 'web' && y.state === 'promoted'), 8000);
    assert.notEqual(t.nodes[0]!.state, 'failed', 'no runner failure');
    assert.equal(t.cluster.master, 'n1');
    assert.ok(!events(c).slice(mark).some((e) => e.startsWith('db ') || e.startsWith('app ')), `others untouched: ${events(c).slice(mark).join(', ')}`);
    assert.match(c.log('n1'), /removed web/);
  } finally {
    await c.stop();
  }
});

test('a removed service whose scripts are still there (a link that left the folder) is demoted and stopped, then forgotten', async () => {
  const c = await TestCluster.start(ONE, { services: ['10-db'] });
  try {
    await linkedWebPromoted(c);
    rmSync(join(c.node('n1').services, '20-web'));
    await until('web demoted and stopped', () => events(c, 'web').includes('web stop end 0'), 8000);
    assert.deepEqual(events(c, 'web').slice(-4), ['web demote begin', 'web demote end 0', 'web stop begin', 'web stop end 0']);
    const s = await c.waitFor('web forgotten', (x) => servicesOf(x) === 'db:promoted', 5000);
    assert.notEqual(s.nodes[0]!.state, 'failed');
    assert.equal(s.cluster.master, 'n1');
  } finally {
    await c.stop();
  }
});

test('koi reconfigure and SIGHUP rescan at once', async () => {
  const c = await TestCluster.start(ONE, { services: ['10-db'], extra: { time: { status_interval: '30s' } } });
  try {
    await c.waitFor('n1 master', (x) => c.settled(x), 8000);
    addService(c, '20-web');
    assert.equal((await c.koi(['reconfigure'])).code, 0);
    await c.waitFor('web promoted after koi reconfigure', (x) => servicesOf(x) === 'db:promoted web:promoted', 5000);
    // Found by the reload itself, not by the 5 s rescan timer: its line follows the reload's.
    const after = (what: RegExp) => {
      const lines = c.log('n1').split('\n');
      const i = lines.findIndex((l) => what.test(l));
      return i >= 0 && /config: reloaded/.test(lines[i - 1] ?? '');
    };
    assert.ok(after(/services: .*: added web/), 'the rescan came with the reload');
    // Scripts added to a directory service take effect: a directory with only start and stop.
    const dir = join(c.node('n1').services, '30-cache');
    mkdirSync(dir);
    copyFileSync(RECORD, join(dir, 'start'));
    chmodSync(join(dir, 'start'), 0o755);
    process.kill(c.node('n1').proc!.pid!, 'SIGHUP');
    await c.waitFor('cache promoted after SIGHUP', (x) => servicesOf(x) === 'db:promoted web:promoted cache:promoted', 5000);
    assert.ok(after(/services: .*: added cache/), 'the rescan came with the SIGHUP reload');
    assert.deepEqual(events(c, 'cache'), ['cache start begin', 'cache start end 0'], 'no promote script: nothing else ran');
    // A rename keeps the service but moves its priority; a stop script added meanwhile is used.
    renameSync(dir, join(c.node('n1').services, '05-cache'));
    copyFileSync(RECORD, join(c.node('n1').services, '05-cache', 'stop'));
    chmodSync(join(c.node('n1').services, '05-cache', 'stop'), 0o755);
    process.kill(c.node('n1').proc!.pid!, 'SIGHUP');
    await until('the rename was seen', () => /changed cache/.test(c.log('n1')), 5000);
    assert.equal((await c.koi(['stop', 'n1'])).code, 0);
    await until('cache stopped by its new stop script', () => events(c, 'cache').includes('cache stop end 0'), 8000);
    // Priority 5 now: it stops after web (20) and db (10).
    const order = events(c).filter((e) => e.endsWith('stop begin'));
    assert.deepEqual(order, ['web stop begin', 'db stop begin', 'cache stop begin']);
  } finally {
    await c.stop();
  }
});

test('maintenance freezes a script that runs through it: not killed at its time limit, its failure no verdict; a status resumes', async () => {
  const c = await TestCluster.start(ONE, { services: ['10-db'], extra: { service: { start_timeout: '3s' } } });
  try {
    await c.waitFor('n1 master', (x) => c.settled(x), 8000);
    c.setFlag('sleep-start', '6');
    c.setFlag('fail-n1-web-start');
    addService(c, '20-web');
    await until('web start begins', () => events(c, 'web').includes('web start begin'), 8000);
    assert.equal((await c.koi(['maintenance', 'on'])).code, 0);
    await until('web start ends by itself', () => events(c, 'web').some((e) => e.startsWith('web start end')), 10_000);
    assert.deepEqual(events(c, 'web'), ['web start begin', 'web start end 1'], 'ran its 6 s past the 3 s limit, not killed');
    const s = await c.waitFor('maintenance, nothing failed', (x) => x.cluster.maintenance, 3000);
    assert.notEqual(s.nodes[0]!.state, 'failed', 'a failure during maintenance is no verdict');
    c.clearFlag('fail-n1-web-start');
    c.clearFlag('sleep-start');
    assert.equal((await c.koi(['maintenance', 'off'])).code, 0);
    // Supervision resumes from a status: web is not running, so it is started and promoted.
    await c.waitFor('web promoted after maintenance', (x) => c.settled(x) && servicesOf(x) === 'db:promoted web:promoted', 10_000);
    assert.deepEqual(events(c, 'web').slice(-4), ['web start begin', 'web start end 0', 'web promote begin', 'web promote end 0']);
  } finally {
    await c.stop();
  }
});

test('renaming a service back and forth between scans never fails the runner (a script that vanished did not run)', async () => {
  const c = await TestCluster.start(ONE, { services: ['10-db', '30-cache'] });
  try {
    await c.waitFor('n1 master', (x) => c.settled(x), 8000);
    const dir = c.node('n1').services;
    // status_interval 1s: statuses spawn all the time; the 5 s rescan lags behind.
    for (let i = 0; i < 5; i++) {
      renameSync(join(dir, i % 2 === 0 ? '30-cache' : '05-cache'), join(dir, i % 2 === 0 ? '05-cache' : '30-cache'));
      await new Promise((r) => setTimeout(r, 1370));
    }
    const s = await c.waitFor('settled', (x) => c.settled(x), 10_000);
    assert.equal(s.cluster.master, 'n1');
    assert.notEqual(s.nodes[0]!.state, 'failed');
    assert.doesNotMatch(c.log('n1'), /runner: failed/);
  } finally {
    await c.stop();
  }
});

test('a service removed while koinode was down is taken down by the next koinode with the scripts known of it', async () => {
  const c = await TestCluster.start(ONE, { services: ['10-db'] });
  try {
    await linkedWebPromoted(c);
    const pid = c.node('n1').proc!.pid!;
    c.kill9('n1');
    await until('n1 gone', () => !alive(pid), 5000);
    rmSync(join(c.node('n1').services, '20-web'));
    const mark = events(c, 'web').length;
    c.startNode('n1');
    // The master's koinode died holding the role: web counts as promoted, is demoted and stopped.
    await until('web demoted and stopped by the next koinode', () => events(c, 'web').slice(mark).includes('web stop end 0'), 15_000);
    assert.deepEqual(events(c, 'web').slice(mark), ['web demote begin', 'web demote end 0', 'web stop begin', 'web stop end 0']);
    await c.waitFor('web forgotten, n1 master again', (x) => c.settled(x) && servicesOf(x) === 'db:promoted', 15_000);
    assert.match(c.log('n1'), /web was a service before this start and is no longer in .*: it is asked and taken down/);
  } finally {
    await c.stop();
  }
});
