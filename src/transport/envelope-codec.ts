// Protobuf encoding of koi.v1.Envelope by hand, for every call and stream of
// koinode and koi (see wire.ts). test/unit/envelope-codec.test.ts proves it
// agrees with @grpc/proto-loader.
import type { Envelope } from './auth';

function varintBytes(n: number): number {
  let k = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 0x80);
    k++;
  }
  return k;
}

function writeVarint(buf: Buffer, at: number, n: number): number {
  while (n >= 0x80) {
    buf[at++] = (n % 0x80) | 0x80;
    n = Math.floor(n / 0x80);
  }
  buf[at++] = n;
  return at;
}

// Field keys (field number * 8 + wire type), each one byte.
const FROM = 0x0a, CLUSTER = 0x10, TS = 0x18, NONCE = 0x22, BODY = 0x2a, MAC = 0x32;

/**
 * Every field is written, even when empty, as protobufjs does for set
 * fields. One allocation: this runs for every heartbeat and reply.
 */
export function encodeEnvelope(e: Envelope): Buffer {
  const fromBytes = Buffer.byteLength(e.from, 'utf8');
  const ts = Number(e.ts_ms);
  const lenOf = (n: number) => 1 + varintBytes(n) + n;
  const size = lenOf(fromBytes) + 1 + varintBytes(e.cluster) + 1 + varintBytes(ts) + lenOf(e.nonce.length) + lenOf(e.body.length) + lenOf(e.mac.length);
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  out[at++] = FROM;
  at = writeVarint(out, at, fromBytes);
  at += out.write(e.from, at, 'utf8');
  out[at++] = CLUSTER;
  at = writeVarint(out, at, e.cluster);
  out[at++] = TS;
  at = writeVarint(out, at, ts);
  for (const [key, b] of [[NONCE, e.nonce], [BODY, e.body], [MAC, e.mac]] as const) {
    out[at++] = key;
    at = writeVarint(out, at, b.length);
    at += b.copy(out, at);
  }
  return out;
}

export function decodeEnvelope(buf: Buffer): Envelope {
  const e: Envelope = { from: '', cluster: 0, ts_ms: '0', nonce: Buffer.alloc(0), body: Buffer.alloc(0), mac: Buffer.alloc(0) };
  let i = 0;
  const readVarint = (): number => {
    let n = 0;
    let mul = 1;
    for (;;) {
      if (i >= buf.length) throw new Error('truncated envelope');
      const b = buf[i++]!;
      n += (b & 0x7f) * mul;
      if ((b & 0x80) === 0) return n;
      mul *= 0x80;
      if (mul > 2 ** 63) throw new Error('varint too long');
    }
  };
  while (i < buf.length) {
    const key = readVarint();
    const no = Math.floor(key / 8);
    const wire = key % 8;
    if (wire === 0) {
      const v = readVarint();
      if (no === 2) e.cluster = v;
      else if (no === 3) e.ts_ms = String(v);
    } else if (wire === 2) {
      const len = readVarint();
      if (i + len > buf.length) throw new Error('truncated envelope');
      const b = buf.subarray(i, i + len);
      i += len;
      if (no === 1) e.from = b.toString('utf8');
      else if (no === 4) e.nonce = Buffer.from(b);
      else if (no === 5) e.body = Buffer.from(b);
      else if (no === 6) e.mac = Buffer.from(b);
    } else if (wire === 1) i += 8;
    else if (wire === 5) i += 4;
    else throw new Error(`unsupported wire type ${wire}`);
  }
  return e;
}
