// Signed envelopes: the hand-built HMAC equals Node's, and the receiver
// refuses a wrong secret, another cluster, a replay and a stale clock.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { Authenticator, HmacSha256 } from '../../src/transport/auth';
import { AuthError } from '../../src/errors';
import { PROTOCOL_MINOR } from '../../src/transport/schema';

test('HmacSha256 gives what createHmac gives, for short, block-sized, long and non-ASCII keys', () => {
  for (const secret of ['k', 'chaos-secret-0123456789abcdef', 'x'.repeat(64), 'y'.repeat(65), 'ключ-🔑'.repeat(9)]) {
    const key = new HmacSha256(secret);
    for (const parts of [[Buffer.alloc(0)], [Buffer.from('koi.v1\nn1\n'), randomBytes(700)], [randomBytes(64), randomBytes(1)]]) {
      const want = createHmac('sha256', secret);
      for (const p of parts) want.update(p);
      assert.deepEqual(key.digest(...parts), want.digest(), `secret of ${Buffer.byteLength(secret)} bytes`);
    }
  }
});

test('an envelope opens with the same secret and cluster, once, within the window', () => {
  let now = 1_800_000_000_000;
  const clock = () => now;
  const a = new Authenticator('secret-0123456789abcdef', 13, 'n1', 60_000, clock);
  const b = new Authenticator('secret-0123456789abcdef', 13, 'n2', 60_000, clock);
  const body = Buffer.from([0x0a, 0x02, 0x0a, 0x00]);
  const env = a.seal(body);
  assert.equal(env.nonce.length, 12);
  assert.notDeepEqual(a.seal(body).nonce, a.seal(body).nonce, 'fresh nonces');
  assert.deepEqual(b.open(env), { from: 'n1', body, minor: PROTOCOL_MINOR });
  const reason = (f: () => unknown) => {
    try {
      f();
    } catch (e) {
      assert.ok(e instanceof AuthError);
      return e.reason;
    }
    return 'accepted';
  };
  assert.equal(reason(() => b.open(env)), 'replay');
  assert.equal(reason(() => new Authenticator('another-secret-0123456789', 13, 'n3', 60_000, clock).open(a.seal(body))), 'secret');
  assert.equal(reason(() => new Authenticator('secret-0123456789abcdef', 14, 'n3', 60_000, clock).open(a.seal(body))), 'cluster');
  const old = a.seal(body);
  now += 61_000;
  assert.equal(reason(() => b.open(old)), 'replay');
  assert.equal(reason(() => b.open({ ...a.seal(body), body: Buffer.from([0x0a, 0x00]) })), 'secret', 'a changed body');
  assert.equal(reason(() => b.open({ ...a.seal(body), protocol_minor: 0 })), 'secret', 'the version is signed too');
  assert.equal(reason(() => b.open({ ...a.seal(body), protocol_major: 2 })), 'version');
  assert.equal(reason(() => b.open({ ...a.seal(body), protocol_major: 0, protocol_minor: 0 })), 'version', 'a koinode from before protocol versions');
  b.setSecret('rotated-secret-0123456789');
  assert.equal(reason(() => b.open(a.seal(body))), 'secret');
});
