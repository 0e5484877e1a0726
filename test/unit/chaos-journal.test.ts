// The fault-injection checker on hand-made journals: each fault it exists to
// find is fed to it once, next to the same journal without the fault.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkJournal, leaseExpiries, parseJournal, violationsOf, type JournalReport, type RunOutcome } from '../chaos/journal';
import { countLeaderChanges } from '../chaos/leaders';

const PRIORITIES = new Map<string, number | null>([
  ['vip', 10],
  ['db', 20],
  ['mon', null],
]);

/** A journal written line by line, 10 ms apart, as the record script writes it. */
class Journal {
  private readonly lines: string[] = [];
  tMs = 1_700_000_000_000;

  line(node: string, svc: string, event: string, phase: 'begin' | 'end', code: string): this {
    this.tMs += 10;
    this.lines.push(`${BigInt(this.tMs) * 1_000_000n} ${node} ${svc} ${event} ${phase} ${code}`);
    return this;
  }

  begin(node: string, svc: string, event: string): this {
    return this.line(node, svc, event, 'begin', '-');
  }

  end(node: string, svc: string, event: string, code = '0'): this {
    return this.line(node, svc, event, 'end', code);
  }

  /** The machine went down (`crash` by the runner, `fence` by the fence script). */
  down(node: string, how: string): this {
    this.tMs += 10;
    this.lines.push(`${BigInt(this.tMs) * 1_000_000n} ${node} * ${how} - -`);
    return this;
  }

  /** One script, begun and ended. */
  run(node: string, svc: string, event: string, code = '0'): this {
    return this.begin(node, svc, event).end(node, svc, event, code);
  }

  /** Services of `node` started and promoted in the right order. */
  master(node: string): this {
    return this.run(node, 'mon', 'start').run(node, 'vip', 'start').run(node, 'db', 'start').run(node, 'mon', 'promote').run(node, 'vip', 'promote').run(node, 'db', 'promote');
  }

  slave(node: string): this {
    return this.run(node, 'mon', 'start').run(node, 'vip', 'start').run(node, 'db', 'start');
  }

  check(expired = new Map<string, number[]>()): JournalReport {
    return checkJournal(parseJournal(`${this.lines.join('\n')}\n`), PRIORITIES, expired);
  }
}

/** n1 master, n2 slave, then n1 hands over to n2 in order. */
function switchover(): Journal {
  return new Journal().master('n1').slave('n2').run('n1', 'mon', 'demote').run('n1', 'db', 'demote').run('n1', 'vip', 'demote').run('n2', 'vip', 'promote').run('n2', 'db', 'promote').run('n2', 'mon', 'promote');
}

test('journal: a clean switchover has no overlap and no order violation', () => {
  const r = switchover().check();
  assert.deepEqual(r.overlaps, []);
  assert.deepEqual(r.orderViolations, []);
  assert.equal(r.masterChanges, 1);
  assert.equal(r.masterAtEnd, 'n2');
  assert.deepEqual(r.failoversMs, [110], 'from the begin of n1’s first demote to the end of n2’s last promote, 11 lines later');
});

test('journal: a promote while another node holds is an overlap', () => {
  const r = new Journal().master('n1').slave('n2').run('n1', 'db', 'demote').run('n2', 'vip', 'promote').check();
  assert.equal(r.overlaps.length, 1);
  assert.match(r.overlaps[0]!, / n2 vip promote begin - while n1 holds mon,vip$/);
});

test('journal: a start before a lower priority is started is an order violation', () => {
  const r = new Journal().run('n1', 'db', 'start').run('n1', 'vip', 'start').check();
  assert.deepEqual(r.orderViolations.map((v) => v.replace(/^\d+ /, '')), ['n1 db start begin -: vip (priority 10) not started']);
});

test('journal: a promote before a lower priority is promoted is an order violation', () => {
  const r = new Journal().slave('n1').run('n1', 'db', 'promote').check();
  assert.deepEqual(r.orderViolations.map((v) => v.replace(/^\d+ /, '')), ['n1 db promote begin -: vip (priority 10) not promoted']);
});

test('journal: a demote while a higher priority is still promoted is an order violation', () => {
  const r = new Journal().master('n1').run('n1', 'vip', 'demote').run('n1', 'db', 'demote').check();
  assert.deepEqual(r.orderViolations.map((v) => v.replace(/^\d+ /, '')), ['n1 vip demote begin -: db (priority 20) still promoted']);
});

test('journal: a stop while a higher priority is still started is an order violation', () => {
  const j = new Journal().slave('n1').run('n1', 'vip', 'stop').run('n1', 'db', 'stop');
  const r = j.check();
  assert.deepEqual(r.orderViolations.map((v) => v.replace(/^\d+ /, '')), ['n1 vip stop begin -: db (priority 20) still started']);
  const inOrder = new Journal().slave('n1').run('n1', 'db', 'stop').run('n1', 'mon', 'stop').run('n1', 'vip', 'stop').check();
  assert.deepEqual(inOrder.orderViolations, []);
});

test('journal: a master whose lease ran out demotes all at once, excused only on that node and only then', () => {
  const j = new Journal().master('n1').slave('n2');
  const expiredAt = j.tMs + 5;
  j.begin('n1', 'vip', 'demote').begin('n1', 'mon', 'demote').begin('n1', 'db', 'demote').end('n1', 'vip', 'demote').end('n1', 'mon', 'demote').end('n1', 'db', 'demote');
  assert.equal(j.check(new Map([['n1', [expiredAt]]])).orderViolations.length, 0);
  assert.equal(j.check(new Map([['n2', [expiredAt]]])).orderViolations.length, 1, 'another node’s lease is no excuse');
  assert.equal(j.check().orderViolations.length, 1, 'without a lease expiry the order holds');
  // Once n1 held nothing, its old expiry excuses nothing more.
  j.master('n1').run('n1', 'vip', 'demote');
  assert.equal(j.check(new Map([['n1', [expiredAt]]])).orderViolations.length, 1);
});

test('journal: a failing service runs failed then stop in no order; the others still keep theirs', () => {
  const j = new Journal().master('n1').run('n1', 'vip', 'status', '1').run('n1', 'vip', 'failed').run('n1', 'vip', 'stop');
  assert.deepEqual(j.check().orderViolations, [], 'the failure sequence is unordered');
  j.run('n1', 'db', 'demote').run('n1', 'mon', 'stop').run('n1', 'vip', 'start').run('n1', 'vip', 'stop').run('n1', 'db', 'stop');
  assert.deepEqual(j.check().orderViolations.map((v) => v.replace(/^\d+ /, '')), ['n1 vip stop begin -: db (priority 20) still started'], 'a later stop of the same service is ordered again');
});

test('journal: a crash or fence takes every service of the machine down', () => {
  for (const how of ['crash', 'fence']) {
    const r = new Journal().master('n1').slave('n2').down('n1', how).run('n2', 'vip', 'promote').run('n2', 'db', 'promote').run('n2', 'mon', 'promote').check();
    assert.deepEqual(r.overlaps, [], how);
    assert.equal(r.masterAtEnd, 'n2');
  }
  const stillUp = new Journal().master('n1').slave('n2').run('n2', 'vip', 'promote').check();
  assert.equal(stillUp.overlaps.length, 1, 'without it, n1 still holds');
});

// ---- the run's verdict --------------------------------------------------------------

/** Leader elections at 0 (the first, no change), 20 s (inside a fault) and 50 s (quiet). */
const leaders = (quietChange: boolean) =>
  countLeaderChanges({
    elections: [
      { atMs: 0, node: 'n1', epoch: 1 },
      { atMs: 20_000, node: 'n2', epoch: 2 },
      ...(quietChange ? [{ atMs: 50_000, node: 'n1', epoch: 3 }] : []),
    ],
    disturbances: [{ fromMs: 15_000, toMs: 25_000, what: 'partition' }],
    backoffs: [],
    load: [],
    settleMs: 5000,
    fromMs: 1000,
    toMs: 60_000,
  });
const CLEAN: RunOutcome = { journal: switchover().check(), zombies: 0, leftovers: 0, convergeMs: 3000, convergeBoundMs: 5000, leaders: leaders(false) };

test('verdict: a clean run has no violation', () => {
  assert.deepEqual(violationsOf(CLEAN), []);
});

test('verdict: each fault of a run is reported', () => {
  const cases: [Partial<RunOutcome>, RegExp][] = [
    [{ journal: new Journal().master('n1').slave('n2').run('n2', 'vip', 'promote').check() }, /^1 overlapping master interval\(s\): /],
    [{ journal: new Journal().slave('n1').run('n1', 'vip', 'stop').check() }, /^1 priority-order violation\(s\): .*n1 vip stop begin -: db \(priority 20\) still started$/],
    [{ journal: new Journal().run('n1', 'db', 'start').check() }, /^1 priority-order violation\(s\): .*db start begin -: vip \(priority 10\) not started$/],
    [{ zombies: 2 }, /^2 zombie\(s\) left unreaped by koinode$/],
    [{ leftovers: 1 }, /^1 process\(es\) still running after every koinode stopped$/],
    [{ convergeMs: null }, /^no convergence within 5000ms of the final heal$/],
    [{ convergeMs: 5001 }, /^no convergence within 5000ms of the final heal$/],
    [{ leaders: leaders(true) }, /^1 leader change\(s\) in quiet time, more than 5000ms after every fault, command and restart of the run and with no load warning from a koinode: n1 elected for epoch 3 at \S+ \(before: n2, epoch 2\), 25000ms after the run's last action ended$/],
  ];
  for (const [fault, expected] of cases) {
    const v = violationsOf({ ...CLEAN, ...fault });
    assert.equal(v.length, 1, `${JSON.stringify(fault)} gave ${JSON.stringify(v)}`);
    assert.match(v[0]!, expected);
  }
});

test('leaseExpiries: reads a console log’s lease warnings and urgent demotes, on the day nearest the run', () => {
  const near = new Date(2026, 0, 10, 23, 59, 0, 0).getTime();
  const log = [
    '23:59:30.040 info n1 scripts: db/demote {"service":"db","event":"demote"}',
    '23:59:30.250 info n1 scripts: db/demote (lease expired: all at once) {"service":"db","event":"demote"}',
    '23:59:30.645 warn n1 runner: master lease expired without renewal: demoting every service now',
    '00:00:05.007 warn n1 runner: master lease expired without renewal: demoting every service now',
    '00:00:06.000 warn n1 master: n2 is no longer master: unreachable',
  ].join('\n');
  const at = (d: number, h: number, m: number, s: number, ms: number) => new Date(2026, 0, d, h, m, s, ms).getTime();
  assert.deepEqual(leaseExpiries(log, near), [at(10, 23, 59, 30, 250), at(10, 23, 59, 30, 645), at(11, 0, 0, 5, 7)]);
});
