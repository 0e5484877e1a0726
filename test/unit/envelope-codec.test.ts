// The hand-written Envelope codec and service definitions (src/transport/wire.ts)
// must agree, byte for byte and path for path, with what @grpc/proto-loader
// makes of proto/koi.proto: the .proto stays the source of truth.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { ADMIN_SERVICE, PEER_SERVICE } from '../../src/transport/wire';
import { decodeEnvelope, encodeEnvelope } from '../../src/transport/envelope-codec';
import type { Envelope } from '../../src/transport/auth';

type Codec = { requestSerialize(v: unknown): Buffer; requestDeserialize(b: Buffer): Envelope };

const PROTO = join(__dirname, '..', '..', '..', 'proto', 'koi.proto');

function reference(): Record<string, grpc.ServiceDefinition> {
  const def = protoLoader.loadSync(PROTO, { keepCase: true, longs: String, defaults: true });
  const v1 = (grpc.loadPackageDefinition(def) as unknown as { koi: { v1: Record<string, grpc.ServiceClientConstructor> } }).koi.v1;
  return { Peer: v1.Peer!.service, Admin: v1.Admin!.service };
}

test('hand service definitions match proto/koi.proto: paths and streaming', () => {
  const ref = reference();
  for (const [name, mine] of [['Peer', PEER_SERVICE], ['Admin', ADMIN_SERVICE]] as const) {
    const theirs = ref[name]!;
    assert.deepEqual(Object.keys(mine).sort(), Object.keys(theirs).sort(), `${name} methods`);
    for (const [m, d] of Object.entries(mine)) {
      const t = theirs[m]!;
      assert.equal(d.path, t.path);
      assert.equal(d.requestStream, t.requestStream, `${d.path} requestStream`);
      assert.equal(d.responseStream, t.responseStream, `${d.path} responseStream`);
    }
  }
});

test('hand codec and proto-loader agree on Envelope, both ways', () => {
  const call = (reference().Admin as unknown as { Call: Codec }).Call;
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
