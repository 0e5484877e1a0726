// Counting a fault-injection run's leader changes and splitting them into
// disturbed and quiet time, on hand-made logs and timelines.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { countLeaderChanges, electionsIn, leaderFindings, loadWarnings, takeoverBackoffs, type Election, type LeaderInput, type Span } from '../chaos/leaders';

test('electionsIn: reads every "elected leader" line of a console log, on the day nearest the run', () => {
  const near = new Date(2026, 0, 10, 23, 59, 0, 0).getTime();
  const log = [
    '23:59:30.040 info n1 election: elected leader for epoch 4',
    '23:59:31.000 warn n1 election: stepped down in epoch 4: lost quorum of 2 electors',
    '23:59:31.500 debug n1 election: campaign for epoch 5',
    '00:00:02.250 info n1 election: elected leader for epoch 7 {"x":1}',
    '00:00:03.000 info n1 master: n1 is master (elected leader for epoch 7, epoch 7)',
  ].join('\n');
  const at = (d: number, h: number, m: number, s: number, ms: number) => new Date(2026, 0, d, h, m, s, ms).getTime();
  assert.deepEqual(electionsIn(log, near), [
    { atMs: at(10, 23, 59, 30, 40), node: 'n1', epoch: 4 },
    { atMs: at(11, 0, 0, 2, 250), node: 'n1', epoch: 7 },
  ]);
});

test('takeoverBackoffs: a failed takeover or rescue waits the time its warning names', () => {
  const near = new Date(2026, 0, 10, 12, 0, 0, 0).getTime();
  const log = [
    '12:00:01.000 warn n1 core: takeover of n3 failed: n2 did not answer; next try in 4.0s at the earliest',
    '12:00:02.000 warn n2 core: rescue (leader without a master) of n3 failed: none of n1 answered; next try in 2.5s at the earliest',
    '12:00:03.000 warn n1 core: dropped a message from n2: bad epoch',
  ].join('\n');
  const t = (s: number) => new Date(2026, 0, 10, 12, 0, s, 0).getTime();
  assert.deepEqual(takeoverBackoffs(log, near), [
    { fromMs: t(1), toMs: t(5), what: "n1's takeover of n3 failed" },
    { fromMs: t(2), toMs: t(4) + 500, what: "n2's rescue of n3 failed" },
  ]);
});

test('loadWarnings: a slow round trip to a quorum, or a stalled event loop, as koinode warns of them', () => {
  const near = new Date(2026, 0, 10, 12, 0, 0, 0).getTime();
  const log = [
    '12:00:01.000 warn n1 core: round trip to a quorum of electors is 414ms; heartbeat_interval 100ms and leader_timeout 500ms tolerate about 320ms — fix the network or raise leader_timeout (and master_lease) on every node',
    '12:00:01.100 warn n1 core: round trip to a quorum of electors is back within what the timings tolerate (320ms)',
    '12:00:02.000 warn n1 core: event loop stalled for 190ms with less lease than that left: letting go of the master role now',
  ].join('\n');
  const t = (s: number, ms = 0) => new Date(2026, 0, 10, 12, 0, s, ms).getTime();
  assert.deepEqual(loadWarnings(log, near), [
    { fromMs: t(1), toMs: t(1), what: 'n1: round trip to a quorum 414ms' },
    { fromMs: t(1, 810), toMs: t(2), what: 'n1: event loop stalled 190ms' },
  ]);
});

const el = (atMs: number, node: string, epoch: number): Election => ({ atMs, node, epoch });
const span = (fromMs: number, toMs: number, what = 'fault'): Span => ({ fromMs, toMs, what });

/** A 10-minute window, two faults, 5 s of settle allowance. */
function base(elections: Election[], more: Partial<LeaderInput> = {}): LeaderInput {
  return {
    elections,
    disturbances: [span(100_000, 110_000, 'partition'), span(200_000, 205_000, 'kill -9 n1'), span(202_000, 204_000, 'koi promote n2')],
    backoffs: [],
    load: [],
    settleMs: 5000,
    fromMs: 0,
    toMs: 600_000,
    ...more,
  };
}

test('leader changes: split into disturbed time (fault to heal plus the settle allowance) and quiet time', () => {
  const r = countLeaderChanges(
    base([
      el(-9000, 'n3', 1), // the cluster's first leader: not a change
      el(-4000, 'n1', 2), // start-up, before the window
      el(105_000, 'n2', 3),
      el(115_000, 'n1', 4), // the last ms of the settle allowance
      el(115_001, 'n1', 5), // just after it: quiet
      el(203_000, 'n2', 6),
      el(601_000, 'n3', 7), // the run is stopping the nodes
    ]),
  );
  assert.equal(r.outside, 2);
  // Disturbed: 100–115 s and 200–210 s (overlapping spans counted once).
  assert.equal(r.during.ms, 25_000);
  assert.equal(r.during.changes, 3);
  assert.equal(r.during.perMinute, 3 / (25_000 / 60_000));
  assert.equal(r.quiet.ms, 575_000);
  assert.equal(r.quiet.changes, 1);
  assert.equal(r.quiet.perMinute, 1 / (575_000 / 60_000));
  assert.equal(r.unexplained.length, 1);
  assert.match(r.unexplained[0]!, /^n1 elected for epoch 5 at \S+ \(before: n1, epoch 4\), 5001ms after the run's last action ended$/);
});

test('leader changes: disturbed time is clipped to the counted window', () => {
  const r = countLeaderChanges(base([], { disturbances: [span(-3000, 1000), span(598_000, 700_000)] }));
  assert.equal(r.during.ms, 6000 + 2000);
  assert.equal(r.quiet.ms, 592_000);
  assert.equal(r.during.perMinute, 0, 'no change, no rate');
});

test('leader changes: a takeover that failed in disturbed time explains the one after its wait, and chains', () => {
  const elections = [el(-1000, 'n3', 1), el(135_000, 'n1', 2)];
  assert.equal(countLeaderChanges(base(elections)).quiet.changes, 1, 'without the backoffs it is quiet');
  // Failed at 112 s (inside 100–115 s): waits to 122 s, disturbed until 127 s;
  // failed again at 126 s: waits to 131 s, disturbed until 136 s.
  const backoffs = [span(126_000, 131_000, "n1's takeover of n3 failed"), span(112_000, 122_000, "n1's takeover of n3 failed")];
  const r = countLeaderChanges(base(elections, { backoffs }));
  assert.equal(r.during.changes, 1);
  assert.deepEqual(r.unexplained, []);
  assert.equal(r.during.ms, 36_000 + 10_000, '100–136 s and 200–210 s');
  // A takeover that failed in quiet time is no excuse.
  const quietFail = countLeaderChanges(base([el(-1000, 'n3', 1), el(310_000, 'n1', 2)], { backoffs: [span(300_000, 308_000)] }));
  assert.equal(quietFail.unexplained.length, 1);
  assert.equal(quietFail.during.ms, 25_000);
});

test('leader changes: a quiet one within the settle allowance after a load warning is counted but no finding', () => {
  const elections = [el(0, 'n1', 1), el(300_000, 'n1', 2), el(400_000, 'n2', 3)];
  const load = [span(295_000, 295_000, 'n1: round trip to a quorum 414ms'), span(394_000, 394_500, 'n2: event loop stalled 500ms')];
  const r = countLeaderChanges(base(elections, { load }));
  assert.equal(r.quiet.changes, 2);
  assert.equal(r.underLoad.length, 1);
  assert.match(r.underLoad[0]!, /^n1 elected for epoch 2 .* after n1: round trip to a quorum 414ms$/);
  assert.equal(r.unexplained.length, 1, 'a warning 5.5 s before is too old');
  assert.match(r.unexplained[0]!, /^n2 elected for epoch 3 /);
  assert.deepEqual(leaderFindings(countLeaderChanges(base(elections.slice(0, 2), { load }))), []);
});

test('leader changes: the finding appears only beyond the tolerance (none)', () => {
  assert.deepEqual(leaderFindings(countLeaderChanges(base([el(0, 'n1', 1), el(105_000, 'n2', 2)]))), []);
  const f = leaderFindings(countLeaderChanges(base([el(0, 'n1', 1), el(300_000, 'n1', 2)])));
  assert.equal(f.length, 1);
  assert.match(f[0]!, /^1 leader change\(s\) in quiet time, more than 5000ms after every fault, command and restart of the run and with no load warning from a koinode: n1 elected for epoch 2 /);
});
