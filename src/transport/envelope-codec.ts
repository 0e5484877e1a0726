// Protobuf encoding of koi.v1.Envelope by hand, for every call and stream of
// koinode and koi (see wire.ts). test/unit/envelope-codec.test.ts proves it
// agrees with @grpc/proto-loader.
import type { Envelope } from './auth';

function varint(n: number, out: number[]): void {
  while (n >= 0x80) {
    out.push((n % 0x80) | 0x80);
    n = Math.floor(n / 0x80);
  }
  out.push(n);
}

function field(no: number, wire: 0 | 2, out: number[]): void {
  varint(no * 8 + wire, out);
}

/** Every field is written, even when empty, as protobufjs does for set fields. */
export function encodeEnvelope(e: Envelope): Buffer {
  const parts: Buffer[] = [];
  const num = (no: number, v: number) => {
    const h: number[] = [];
    field(no, 0, h);
    varint(v, h);
    parts.push(Buffer.from(h));
  };
  const bytes = (no: number, b: Buffer) => {
    const h: number[] = [];
    field(no, 2, h);
    varint(b.length, h);
    parts.push(Buffer.from(h), b);
  };
  bytes(1, Buffer.from(e.from, 'utf8'));
  num(2, e.cluster);
  num(3, Number(e.ts_ms));
  bytes(4, e.nonce);
  bytes(5, e.body);
  bytes(6, e.mac);
  return Buffer.concat(parts);
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
