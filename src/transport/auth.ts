// Signed envelopes: an HMAC over the sender, the cluster id, a timestamp, a
// nonce, the protocol version and the exact bytes of the typed body, with a
// replay window. Nothing unsigned is ever decoded.
import { hash, randomBytes, timingSafeEqual } from 'node:crypto';
import { AuthError } from '../errors';
import { ownProtocol, type ProtocolRange } from './schema';

export interface Envelope {
  from: string;
  cluster: number;
  ts_ms: string | number;
  nonce: Buffer;
  body: Buffer;
  mac: Buffer;
  protocol_major: number;
  protocol_minor: number;
}

export const REPLAY_WINDOW_MS = 60_000;

const BLOCK_BYTES = 64;

/**
 * HMAC-SHA256 (RFC 2104) from two one-shot hashes and a key padded once.
 * Byte for byte what createHmac gives (test/unit/auth.test.ts), without
 * building a stream object per message: that was a third of an idle
 * leader's CPU.
 */
export class HmacSha256 {
  private readonly inner: Buffer;
  private readonly outer: Buffer;

  constructor(secret: string) {
    let key: Buffer = Buffer.from(secret, 'utf8');
    if (key.length > BLOCK_BYTES) key = hash('sha256', key, 'buffer');
    this.inner = Buffer.alloc(BLOCK_BYTES, 0x36);
    this.outer = Buffer.alloc(BLOCK_BYTES, 0x5c);
    for (let i = 0; i < key.length; i++) {
      this.inner[i]! ^= key[i]!;
      this.outer[i]! ^= key[i]!;
    }
  }

  digest(...parts: Buffer[]): Buffer {
    const innerHash = hash('sha256', Buffer.concat([this.inner, ...parts]), 'buffer');
    return hash('sha256', Buffer.concat([this.outer, innerHash]), 'buffer');
  }
}

function mac(key: HmacSha256, from: string, cluster: number, tsMs: number, nonce: Buffer, major: number, minor: number, body: Buffer): Buffer {
  return key.digest(Buffer.from(`koi.v1\n${from}\n${cluster}\n${tsMs}\n${nonce.toString('hex')}\n${major}.${minor}\n`, 'utf8'), body);
}

/** A sealed envelope's body and who sent it, in which protocol minor. */
export interface Opened {
  from: string;
  body: Buffer;
  minor: number;
}

/** Nonces come from a pool refilled a few hundred at a time. */
const NONCE_BYTES = 12;
let noncePool = Buffer.alloc(0);
function nextNonce(): Buffer {
  if (noncePool.length < NONCE_BYTES) noncePool = randomBytes(NONCE_BYTES * 256);
  const n = Buffer.from(noncePool.subarray(0, NONCE_BYTES));
  noncePool = noncePool.subarray(NONCE_BYTES);
  return n;
}

export class Authenticator {
  /** Nonces seen within the window, with the time they may be forgotten. */
  private readonly seen = new Map<string, number>();
  private lastPruneMs = 0;

  private key: HmacSha256;

  constructor(
    secret: string,
    readonly clusterId: number,
    readonly self: string,
    private readonly windowMs = REPLAY_WINDOW_MS,
    private readonly wallMs: () => number = Date.now,
    readonly protocol: ProtocolRange = ownProtocol(),
  ) {
    this.key = new HmacSha256(secret);
  }

  /** A reload may change the secret (every node must then change it too). */
  setSecret(secret: string): void {
    this.key = new HmacSha256(secret);
  }

  /** Sign a serialized body written in protocol minor `minor`. */
  seal(body: Buffer, minor: number = this.protocol.maxMinor): Envelope {
    const nonce = nextNonce();
    const ts = this.wallMs();
    const major = this.protocol.major;
    return { from: this.self, cluster: this.clusterId, ts_ms: ts, nonce, body, mac: mac(this.key, this.self, this.clusterId, ts, nonce, major, minor, body), protocol_major: major, protocol_minor: minor };
  }

  /**
   * The one compatibility rule: the same major, and a minor no older than
   * the oldest we accept (newer minors only add fields). Throws AuthError
   * 'version' saying both sides' versions.
   */
  checkVersion(major: number, minor: number, from: string): void {
    const p = this.protocol;
    if (major === p.major && minor >= p.minMinor) return;
    const theirs = major === 0 ? 'none (a koinode from before protocol versions, JSON bodies)' : `${major}.${minor}`;
    throw new AuthError(`incompatible protocol ${theirs} from ${from}: this node speaks ${p.major}.${p.minMinor}–${p.major}.${p.maxMinor} — upgrade the older node (docs/OPERATIONS.md, rolling upgrade)`, 'version');
  }

  /**
   * Verify; throws AuthError saying why it was refused. The version is
   * checked first: a node of another major (or of koi before protocol
   * versions) signs differently, and "wrong secret" would mislead.
   */
  open(env: Partial<Envelope> | undefined): Opened {
    if (env === undefined || typeof env.from !== 'string' || env.from === '' || !Buffer.isBuffer(env.nonce) || !Buffer.isBuffer(env.body) || !Buffer.isBuffer(env.mac)) {
      throw new AuthError('malformed envelope', 'malformed');
    }
    const major = Number(env.protocol_major ?? 0);
    const minor = Number(env.protocol_minor ?? 0);
    this.checkVersion(major, minor, env.from);
    const ts = Number(env.ts_ms);
    const cluster = Number(env.cluster);
    const expected = mac(this.key, env.from, cluster, ts, env.nonce, major, minor, env.body);
    if (env.mac.length !== expected.length || !timingSafeEqual(env.mac, expected)) {
      throw new AuthError(`message from ${env.from} failed authentication — the secret differs from ours`, 'secret');
    }
    if (cluster !== this.clusterId) {
      throw new AuthError(`message from ${env.from} is for cluster ${cluster}, we are cluster ${this.clusterId}`, 'cluster');
    }
    const now = this.wallMs();
    if (!Number.isFinite(ts) || Math.abs(now - ts) > this.windowMs) {
      throw new AuthError(`message from ${env.from} is ${Math.round((now - ts) / 1000)}s off our clock (window ±${this.windowMs / 1000}s) — check NTP`, 'replay');
    }
    const key = `${env.from}/${env.nonce.toString('hex')}`;
    if (this.seen.has(key)) throw new AuthError(`message from ${env.from} was replayed`, 'replay');
    this.seen.set(key, now + this.windowMs);
    this.prune(now);
    return { from: env.from, body: env.body, minor };
  }

  private prune(now: number): void {
    if (now - this.lastPruneMs < 5000) return;
    this.lastPruneMs = now;
    for (const [k, until] of this.seen) if (until < now) this.seen.delete(k);
  }
}

/** A fresh secret for `koi keygen`: 32 random bytes, base64. */
export function newSecret(): string {
  return randomBytes(32).toString('base64');
}
