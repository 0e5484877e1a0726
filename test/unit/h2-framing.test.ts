// gRPC's length-prefixed framing as koi's HTTP/2 client reads it: messages
// split across chunks or packed into one, compression refused, size bounded.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MessageFramer } from '../../src/transport/h2-admin-client';

test('frames come back whole however the bytes are chunked', () => {
  const msgs = [Buffer.from('a'), Buffer.alloc(0), Buffer.alloc(70_000, 7), Buffer.from('last')];
  const wire = Buffer.concat(msgs.map((m) => MessageFramer.frame(m)));
  for (const size of [1, 3, 5, 6, 1000, wire.length]) {
    const f = new MessageFramer();
    const got: Buffer[] = [];
    for (let i = 0; i < wire.length; i += size) got.push(...f.push(wire.subarray(i, i + size)));
    assert.deepEqual(got, msgs, `chunks of ${size}`);
  }
});

test('a compressed or oversized message is refused', () => {
  const compressed = MessageFramer.frame(Buffer.from('x'));
  compressed[0] = 1;
  assert.throws(() => new MessageFramer().push(compressed), /compressed/);
  const huge = Buffer.alloc(5);
  huge.writeUInt32BE(5 * 1024 * 1024, 1);
  assert.throws(() => new MessageFramer().push(huge), /over the/);
});
