// The hand-written Envelope codec of the admin client must agree, byte for
// byte, with what @grpc/proto-loader makes of proto/koi.proto.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { koiPackage } from '../../src/transport/grpc';
import { decodeEnvelope, encodeEnvelope } from '../../src/transport/envelope-codec';
import type { Envelope } from '../../src/transport/auth';

type Codec = { requestSerialize(v: unknown): Buffer; requestDeserialize(b: Buffer): Envelope };

test('hand codec and proto-loader agree on Envelope, both ways', () => {
  const call = (koiPackage().Admin.service as unknown as { Call: Codec }).Call;
  const samples: Envelope[] = [
    { from: 'koi', cluster: 13, ts_ms: 1795310762812, nonce: randomBytes(12), body: Buffer.from('{"op":"status"}'), mac: randomBytes(32) },
    { from: 'nœud-ü', cluster: 2 ** 31 - 1, ts_ms: 2 ** 52 + 5, nonce: randomBytes(12), body: randomBytes(5000), mac: randomBytes(32) },
    { from: '', cluster: 0, ts_ms: 0, nonce: Buffer.alloc(0), body: Buffer.alloc(0), mac: Buffer.alloc(0) },
  ];
  for (const e of samples) {
    const mine = encodeEnvelope(e);
    const theirs = call.requestSerialize(e);
    assert.deepEqual(mine, theirs);
    const back = decodeEnvelope(theirs);
    const ref = call.requestDeserialize(mine);
    assert.equal(back.from, ref.from);
    assert.equal(back.cluster, ref.cluster);
    assert.equal(String(back.ts_ms), String(ref.ts_ms));
    assert.deepEqual(back.nonce, Buffer.from(ref.nonce));
    assert.deepEqual(back.body, Buffer.from(ref.body));
    assert.deepEqual(back.mac, Buffer.from(ref.mac));
  }
  assert.throws(() => decodeEnvelope(Buffer.from([0x2a, 0x05, 0x01])), /truncated/);
});
