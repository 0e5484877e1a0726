// KOI_SCORE: how a status line is read, and how the leader compares and
// bounds the freshness of runners (issue 12).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bestScores, compareScores, lagOf } from '../../src/core/master';
import type { RunnerReport, ServiceReport } from '../../src/core/types';
import { parseScore } from '../../src/daemon/daemon';

function report(services: Partial<ServiceReport>[]): RunnerReport {
  return {
    state: 'slave',
    holding: false,
    promotable: true,
    disabled: false,
    failed: false,
    failcount: 0,
    lastFailureAgoMs: null,
    uptimeMs: 0,
    pendingFailures: [],
    services: services.map((s) => ({ name: 'db', priority: 10, state: 'started', running: null, failed: false, notPromotable: false, disabled: false, ...s })),
  } as RunnerReport;
}

test('a status line KOI_SCORE=<n> gives a whole number; anything else after KOI_SCORE= is refused; other lines are not scores', () => {
  assert.equal(parseScore('KOI_SCORE=12345'), 12345);
  assert.equal(parseScore('  KOI_SCORE=0 '), 0);
  assert.equal(parseScore('KOI_SCORE=-1'), 'bad');
  assert.equal(parseScore('KOI_SCORE=1.5'), 'bad');
  assert.equal(parseScore('KOI_SCORE=99999999999999999'), 'bad', 'beyond what a number holds exactly');
  assert.equal(parseScore('KOI_SCORE='), 'bad');
  assert.equal(parseScore('score 12'), null);
  assert.equal(parseScore('# KOI_SCORE=3'), null);
});

test('runners compare service by service in start order; the first difference decides; no score is below any', () => {
  const a = report([{ name: 'vip', priority: 5 }, { name: 'db', priority: 10, score: 100 }]);
  const b = report([{ name: 'vip', priority: 5 }, { name: 'db', priority: 10, score: 90 }]);
  assert.ok(compareScores(a, b) < 0, 'a is fresher');
  assert.ok(compareScores(b, a) > 0);
  assert.equal(compareScores(a, a), 0);
  const none = report([{ name: 'db', priority: 10 }]);
  assert.ok(compareScores(b, none) < 0, 'a score beats none');
  // Two scored services: the one that starts first decides.
  const c = report([{ name: 'db', priority: 10, score: 5 }, { name: 'log', priority: 20, score: 1000 }]);
  const d = report([{ name: 'db', priority: 10, score: 6 }, { name: 'log', priority: 20, score: 1 }]);
  assert.ok(compareScores(d, c) < 0);
});

test('lag is measured against the best score the leader knows, per service', () => {
  const best = bestScores({
    views: new Map([
      ['n1', { report: report([{ name: 'db', score: 1000 }]) }],
      ['n2', { report: report([{ name: 'db', score: 900 }]) }],
      ['n3', { report: null }],
    ]),
  } as never);
  assert.deepEqual([...best], [['db', 1000]]);
  assert.equal(lagOf(report([{ name: 'db', score: 900 }]), best), 100);
  assert.equal(lagOf(report([{ name: 'db', score: 1000 }]), best), 0);
  assert.equal(lagOf(report([{ name: 'db' }]), best), 1000, 'no score: as far behind as the best');
});
