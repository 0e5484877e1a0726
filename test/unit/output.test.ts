// The CLI's table: a one-cell row (the recovery note under a failed node in
// koi status) spans the table and must not push the columns apart.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { recoveryNote, table } from '../../src/cli/output';

const o = { json: false, color: false };

test('a one-cell row is a note: it sets no column width', () => {
  const note = recoveryNote(o, { nextRecoveryInMs: 40_000, recoveryWaitReason: 'automatic recovery 3 of 5 (backoff 10.0s doubling per failure, at most 10m), or koi recover n3 now' })!;
  assert.equal(note, '  └ next try in 40s: automatic recovery 3 of 5 (backoff 10.0s doubling per failure, at most 10m), or koi recover n3 now');
  assert.equal(table([['NODE', 'STATE'], ['n3', 'failed'], [note], ['n10', 'slave']]), ['NODE  STATE', 'n3    failed', note, 'n10   slave'].join('\n'));
});

test('no note without a reason; no countdown when no try is scheduled', () => {
  assert.equal(recoveryNote(o, { nextRecoveryInMs: null, recoveryWaitReason: null }), null);
  assert.equal(recoveryNote(o, {}), null);
  assert.equal(recoveryNote(o, { nextRecoveryInMs: null, recoveryWaitReason: 'maintenance: no recovery until koi maintenance off' }), '  └ no try scheduled: maintenance: no recovery until koi maintenance off');
});
