// The voter's rules and what a new leader learns from its votes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decideVote, newestState, oldGrantsBoundMs } from '../../src/core/election';
import { initialClusterState } from '../../src/core/state';
import type { PeerInfo } from '../../src/core/types';

const p = (name: string, priority: number): PeerInfo => ({ name, priority, elector: true, runner: true });
const A = p('a', 2);
const B = p('b', 1);
const C = p('c', 0);
const req = { epoch: 5, preVote: false, takeover: false };

test('a voter with a live leader refuses, unless a higher-ranked elector takes over', () => {
  const v = { self: C, epoch: 4, votedFor: null, liveLeader: B, canRun: true, masterless: false };
  assert.deepEqual(decideVote(v, A, req), { grant: false, outranked: false, reason: 'following live leader b' });
  assert.deepEqual(decideVote(v, A, { ...req, takeover: true }), { grant: true });
  assert.equal(decideVote({ ...v, liveLeader: A }, B, { ...req, takeover: true }).grant, false, 'b does not outrank a');
});

test('a rescue replaces a live leader only while the voter knows of no master', () => {
  const v = { self: C, epoch: 4, votedFor: null, liveLeader: A, canRun: true, masterless: true };
  const rescue = { ...req, takeover: true, rescue: true };
  assert.deepEqual(decideVote(v, B, rescue), { grant: true }, 'b ranks below the leader a, yet may rescue');
  assert.equal(decideVote({ ...v, masterless: false }, B, rescue).grant, false, 'a master exists: nothing to rescue');
  assert.equal(decideVote(v, B, { ...req, takeover: true }).grant, false, 'an ordinary takeover still needs the rank');
});

test('Bully: a voter that outranks the candidate refuses and says so', () => {
  const v = { self: A, epoch: 4, votedFor: null, liveLeader: null, canRun: true, masterless: false };
  assert.deepEqual(decideVote(v, B, req), { grant: false, outranked: true, reason: 'a outranks b' });
  assert.deepEqual(decideVote({ ...v, canRun: false }, B, req), { grant: true }, 'after its own failed campaign it lets others win');
});

test('a voter without a leader does not refuse a takeover or rescue for its rank', () => {
  // The taker follows a live leader this voter cannot hear; refusing would
  // only make the taker yield to a lower-ranked one (test/sim/flaps.test.ts).
  const v = { self: A, epoch: 4, votedFor: null, liveLeader: null, canRun: true, masterless: false };
  assert.deepEqual(decideVote(v, B, { ...req, takeover: true }), { grant: true });
  assert.deepEqual(decideVote(v, B, { ...req, takeover: true, rescue: true }), { grant: true });
  assert.equal(decideVote({ ...v, epoch: 5, votedFor: 'a' }, B, { ...req, takeover: true }).grant, false, 'still one vote per epoch');
});

test('one vote per epoch', () => {
  const v = { self: C, epoch: 5, votedFor: 'a', liveLeader: null, canRun: true, masterless: false };
  assert.equal(decideVote(v, B, req).grant, false);
  assert.equal(decideVote(v, A, req).grant, true, 'the same candidate may ask again');
  assert.equal(decideVote(v, B, { ...req, preVote: true }).grant, true, 'pre-votes bind nothing');
});

test('ties in priority go to the alphabetically first name', () => {
  const v = { self: p('x', 1), epoch: 0, votedFor: null, liveLeader: null, canRun: true, masterless: false };
  assert.equal(decideVote(v, p('w', 1), req).grant, true);
  assert.equal(decideVote(v, p('y', 1), req).grant, false);
});

test('the old-grant bound is the latest voter acknowledgement plus the window', () => {
  const votes = [
    { from: 'a', recvMs: 1000, lastAckAgoMs: 600, state: null, nowMs: 0, incarnation: 1 },
    { from: 'b', recvMs: 1010, lastAckAgoMs: 200, state: null, nowMs: 0, incarnation: 1 },
  ];
  assert.equal(oldGrantsBoundMs(votes, 500), 1310);
});

test('a new leader adopts the newest state among its votes', () => {
  const own = { ...initialClusterState(), versionEpoch: 3, versionSeq: 9 };
  const newer = { ...initialClusterState(), versionEpoch: 4, versionSeq: 1, maintenance: true };
  const older = { ...initialClusterState(), versionEpoch: 3, versionSeq: 2 };
  const votes = [
    { from: 'a', recvMs: 0, lastAckAgoMs: 0, state: older, nowMs: 0, incarnation: 1 },
    { from: 'b', recvMs: 0, lastAckAgoMs: 0, state: newer, nowMs: 0, incarnation: 1 },
  ];
  assert.equal(newestState(own, votes), newer);
  assert.equal(newestState(own, [votes[0]!]), own);
});
