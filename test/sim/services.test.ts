// The runner's service supervision on the simulator: status exit codes and
// their corrective actions, disabled services, boot reconciliation,
// maintenance resume, failure and automatic recovery.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { adminSync, assertNoViolations, cluster, eventsOf, masterOf, names, settled } from './kit';

const STATUS_INTERVAL = 1000; // simParams()

function runsOf(w: ReturnType<typeof cluster>, node: string, sinceMs: number) {
  return w.runLog.filter((r) => r.node === node && r.atMs >= sinceMs).map((r) => `${r.service}/${r.event}`);
}

test('status runs every status_interval on started and promoted services', () => {
  const w = cluster({ nodes: names(3) });
  assert.ok(w.runUntilTrue(() => settled(w), 3000));
  const t0 = w.nowMs;
  w.runFor(5 * STATUS_INTERVAL);
  for (const n of ['n1', 'n2', 'n3']) {
    const statuses = runsOf(w, n, t0).filter((r) => r === 'db/status').length;
    assert.ok(statuses >= 4 && statuses <= 6, `${n} ran status ${statuses} times in 5 intervals`);
  }
  assertNoViolations(w);
});

test('status 92 on a started service re-runs start; a master whose service died loses the role', () => {
  const w = cluster({ nodes: names(3) });
  assert.ok(w.runUntilTrue(() => settled(w), 3000));
  const m = masterOf(w)!;
  const slave = ['n1', 'n2', 'n3'].find((n) => n !== m)!;
  let once = new Set([slave, m]);
  w.decide = (node, req) => (req.event === 'status' && once.delete(node) ? { exitCode: 92 } : undefined);
  const t0 = w.nowMs;
  w.runFor(3 * STATUS_INTERVAL);
  assert.ok(runsOf(w, slave, t0).includes('db/start'), 'slave restarted');
  assert.equal(runsOf(w, m, t0).filter((r) => r !== 'db/status')[0], 'db/start', 'the old master restarted its service');
  assert.ok(settled(w), 'one master again');
  assert.ok(eventsOf(w, 'master-revoked', t0).some((e) => e.ev.master === m), 'the role moved off the runner whose service died');
  assert.equal(eventsOf(w, 'runner-failed', t0).length, 0, '92 is not a failure');
  once = new Set();
  assertNoViolations(w);
});

test('status 92 of one of two services on the master: the role moves although the other service still holds it', () => {
  const w = cluster({ nodes: names(3), services: [{ name: 'vip', priority: 10 }, { name: 'db', priority: 20 }] });
  assert.ok(w.runUntilTrue(() => settled(w), 3000));
  const m = masterOf(w)!;
  let once = true;
  // The others stay promotable (no random 93): somewhere for the role to go.
  w.decide = (node, req) => {
    if (req.event !== 'status') return undefined;
    if (node === m && req.service === 'db' && once) return (once = false), { exitCode: 92 };
    return node !== m && w.checker.level(node, req.service) > 0 ? { exitCode: 0 } : undefined;
  };
  const t0 = w.nowMs;
  assert.ok(w.runUntilTrue(() => !once && settled(w) && masterOf(w) !== m, 6 * STATUS_INTERVAL), `the role left ${m}: ${masterOf(w)}`);
  assert.ok(eventsOf(w, 'master-revoked', t0).some((e) => e.ev.master === m), 'revoked');
  assert.ok(runsOf(w, m, t0).includes('vip/demote'), 'the service that still held it was demoted');
  assert.equal(eventsOf(w, 'runner-failed', t0).length, 0, '92 is not a failure');
  assertNoViolations(w);
});

test('status 90 on a runner that is not master makes it demote', () => {
  const w = cluster({ nodes: names(3) });
  assert.ok(w.runUntilTrue(() => settled(w), 3000));
  const m = masterOf(w)!;
  const slave = ['n1', 'n2', 'n3'].find((n) => n !== m)!;
  let fired = false;
  w.decide = (node, req) => {
    if (node === slave && req.event === 'status' && !fired) {
      fired = true;
      return { exitCode: 90 };
    }
    return undefined;
  };
  const t0 = w.nowMs;
  w.runFor(3 * STATUS_INTERVAL);
  assert.ok(runsOf(w, slave, t0).includes('db/demote'), 'the self-proclaimed master was demoted');
  assert.equal(masterOf(w), m);
  assertNoViolations(w);
});

test('status 93 makes a runner not promotable; the master moves elsewhere when needed', () => {
  const w = cluster({ nodes: names(3) });
  assert.ok(w.runUntilTrue(() => settled(w), 3000));
  const m = masterOf(w)!;
  const others = ['n1', 'n2', 'n3'].filter((n) => n !== m);
  const resyncing = others[0]!;
  w.decide = (node, req) => (node === resyncing && req.event === 'status' ? { exitCode: 93 } : undefined);
  w.runFor(2 * STATUS_INTERVAL);
  const l = w.leaders()[0]!;
  assert.equal(w.core(l)!.leaderViews()!.get(resyncing)!.report!.promotable, false);
  assert.equal(adminSync(w, { kind: 'promote', node: resyncing }).startsWith('refused'), true, 'koi promote refuses it');
  w.crash(m);
  assert.ok(w.runUntilTrue(() => settled(w), 5000));
  assert.equal(masterOf(w), others[1], 'the runner that is not resyncing became master');
  assertNoViolations(w);
});

test('a disabled service is stopped and its runner loses the master role until re-enabled', () => {
  const w = cluster({ nodes: names(3), services: [{ name: 'vip', priority: 10 }, { name: 'db', priority: 20 }] });
  assert.ok(w.runUntilTrue(() => settled(w), 3000));
  const m = masterOf(w)!;
  const t0 = w.nowMs;
  w.setDisabled(m, 'db', true);
  assert.ok(w.runUntilTrue(() => settled(w) && masterOf(w) !== m, 5000), 'master moved');
  assert.ok(runsOf(w, m, t0).includes('db/stop'), 'disabled service stopped');
  assert.ok(!runsOf(w, m, t0).includes('vip/stop'), 'the other service keeps running');
  const t1 = w.nowMs;
  w.setDisabled(m, 'db', false);
  w.runFor(500);
  assert.ok(runsOf(w, m, t1).includes('db/start'), 'started again once the file is gone');
  const l = w.leaders()[0]!;
  assert.equal(w.core(l)!.leaderViews()!.get(m)!.report!.promotable, true);
  assertNoViolations(w);
});

test('boot reconciliation: a service found promoted on a runner that is not master is demoted', () => {
  const w = cluster({ nodes: names(3) });
  assert.ok(w.runUntilTrue(() => settled(w), 3000));
  const m = masterOf(w)!;
  const other = ['n1', 'n2', 'n3'].find((n) => n !== m && n !== 'n1')!;
  w.crash(other);
  // When it comes back its service claims to be master (left over from before).
  let first = true;
  w.decide = (node, req) => {
    if (node === other && req.event === 'status' && first) {
      first = false;
      return { exitCode: 90 };
    }
    return undefined;
  };
  const t0 = w.nowMs;
  w.restart(other);
  w.runFor(2000);
  assert.deepEqual(runsOf(w, other, t0).slice(0, 2), ['db/status', 'db/demote'], 'status first, then demote');
  assert.equal(masterOf(w), m, 'the real master stays');
  assertNoViolations(w);
});

test('maintenance freezes every script and resumes with status first', () => {
  const w = cluster({ nodes: names(3) });
  assert.ok(w.runUntilTrue(() => settled(w), 3000));
  assert.equal(adminSync(w, { kind: 'maintenance', on: true }), 'ok');
  w.runFor(200);
  const t0 = w.nowMs;
  w.runFor(4 * STATUS_INTERVAL);
  assert.deepEqual(w.runLog.filter((r) => r.atMs >= t0), [], 'not even status ran');
  const t1 = w.nowMs;
  assert.equal(adminSync(w, { kind: 'maintenance', on: false }), 'ok');
  w.runFor(300);
  for (const n of ['n1', 'n2', 'n3']) assert.equal(runsOf(w, n, t1)[0], 'db/status', `${n} checked its service first`);
  assert.ok(settled(w));
  assertNoViolations(w);
});

test('a failing service fails the runner, moves the master, and auto-recovers with a doubling wait', () => {
  const w = cluster({ nodes: names(3), params: { autoRecover: 3, autoRecoverWaitMs: 1000 } });
  assert.ok(w.runUntilTrue(() => settled(w), 3000));
  const m = masterOf(w)!;
  // Its status fails, and every start fails from now on.
  let statusFailed = false;
  w.decide = (node, req) => {
    if (node !== m) return undefined;
    if (req.event === 'status' && !statusFailed) {
      statusFailed = true;
      return { exitCode: 1 };
    }
    return req.event === 'start' ? { exitCode: 1 } : undefined;
  };
  const t0 = w.nowMs;
  assert.ok(w.runUntilTrue(() => masterOf(w) !== null && masterOf(w) !== m && settled(w), 8000), 'master moved');
  assert.deepEqual(runsOf(w, m, t0).slice(0, 3), ['db/status', 'db/failed', 'db/stop'], 'failed script, then stop');
  w.runFor(20_000);
  const recoveries = eventsOf(w, 'runner-recovered', t0).filter((e) => e.node === m);
  const failures = eventsOf(w, 'runner-failed', t0).filter((e) => e.node === m);
  assert.equal(recoveries.length, 3, 'auto_recover = 3 attempts');
  assert.equal(failures.length, 4, 'the first failure and one after each attempt');
  const waits = recoveries.map((r, i) => r.atMs - failures[i]!.atMs);
  assert.ok(waits[1]! > 1.8 * waits[0]! && waits[2]! > 1.8 * waits[1]!, `waits double: ${waits.map(Math.round).join(', ')}`);
  const l = w.leaders()[0]!;
  assert.equal(w.core(l)!.leaderViews()!.get(m)!.report!.failed, true, 'stays failed after the last attempt');
  assert.ok(w.core(l)!.state.failures.filter((f) => f.node === m).length >= 4, 'every failure is recorded in the replicated history');

  // koi recover by hand, once the service is fixed.
  w.decide = undefined;
  assert.equal(adminSync(w, { kind: 'recover', node: m }), 'ok');
  assert.ok(w.runUntilTrue(() => w.core(l)!.leaderViews()!.get(m)!.report!.state === 'slave', 3000), 'recovered and started');
  assertNoViolations(w);
});
