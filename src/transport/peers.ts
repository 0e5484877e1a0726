// Long-lived peer streams: one per pair of nodes, opened by the node whose
// name sorts first and used by both sides. Reconnects with backoff. Every
// envelope is authenticated; a bad one is refused and changes nothing.
import * as grpc from '@grpc/grpc-js';
import type { Message, PeerInfo } from '../core/types';
import type { PeerAddress } from '../config/config';
import { formatHostPort } from '../config/values';
import { AuthError } from '../errors';
import type { Authenticator, Envelope } from './auth';
import { CHANNEL_OPTIONS } from './grpc';
import { PeerClient } from './wire';
import { decodePeer, encodePeer, type HelloExtras, type PeerPayload } from './peer-codec';
import { serviceError } from './status';

type Stream = grpc.ClientDuplexStream<Envelope, Envelope> | grpc.ServerDuplexStream<Envelope, Envelope>;

export interface PeerHandlers {
  onMessage(from: string, msg: Message): void;
  onHello(info: PeerInfo): void;
  /** A refused envelope (bad secret, other cluster, replay, malformed). */
  onRefused(from: string, err: AuthError): void;
  onLinkChange(peer: string, up: boolean): void;
}

interface Link {
  stream: Stream | null;
  /** The far side said hello on this stream. */
  greeted: boolean;
  /** The newest protocol minor the far side said it speaks (null: no hello yet). */
  peerMaxMinor: number | null;
}

/** A peer's version as `koi status` shows it. */
export interface PeerVersion {
  software: string;
  protocol: string;
  compatible: boolean;
}

/** Bytes an envelope takes on the wire: its protobuf encoding plus gRPC's 5-byte message prefix. */
export function envelopeBytes(e: Envelope): number {
  const varint = (n: number) => (n < 0x80 ? 1 : Math.ceil(Math.log2(n + 1) / 7));
  const field = (len: number) => (len === 0 ? 0 : 1 + varint(len) + len);
  const num = (n: number) => (n === 0 ? 0 : 1 + varint(n));
  return 5 + field(Buffer.byteLength(e.from)) + num(e.cluster) + num(Number(e.ts_ms)) + field(e.nonce.length) + field(e.body.length) + field(e.mac.length) + num(e.protocol_major) + num(e.protocol_minor);
}

export interface TrafficCounters {
  bytesSent: number;
  bytesReceived: number;
  messagesSent: number;
  messagesReceived: number;
  dropped: number;
}

export class PeerLinks {
  private readonly links = new Map<string, Link>();
  private readonly clients = new Map<string, grpc.Client>();
  private readonly retry = new Map<string, NodeJS.Timeout>();
  private readonly backoffMs = new Map<string, number>();
  private closed = false;
  /** What each peer said of its version (or sent before it was refused as incompatible). */
  readonly versions = new Map<string, PeerVersion>();
  private readonly known: ReadonlySet<string>;
  readonly traffic: TrafficCounters = { bytesSent: 0, bytesReceived: 0, messagesSent: 0, messagesReceived: 0, dropped: 0 };

  constructor(
    private self: PeerInfo,
    private readonly peers: PeerAddress[],
    private readonly auth: Authenticator,
    private readonly creds: () => grpc.ChannelCredentials,
    private readonly handlers: PeerHandlers,
    private readonly extras: HelloExtras,
  ) {
    for (const p of peers) if (p.name !== self.name) this.links.set(p.name, { stream: null, greeted: false, peerMaxMinor: null });
    this.known = new Set(peers.map((p) => p.name));
  }

  /** The server side of Peer.Link. */
  readonly serve = (call: grpc.ServerDuplexStream<Envelope, Envelope>): void => {
    let peer: string | null = null;
    call.on('data', (env: Envelope) => {
      const from = this.receive(env, peer, (err) => {
        // Tell the far side why, so it can log it too; then hang up.
        if (peer === null) call.emit('error', serviceError(err));
      });
      if (from === null) return;
      if (peer === null) {
        peer = from;
        this.attach(from, call);
      }
    });
    call.on('error', () => peer !== null && this.detach(peer, call));
    call.on('end', () => {
      if (peer !== null) this.detach(peer, call);
      call.end();
    });
    call.on('cancelled', () => peer !== null && this.detach(peer, call));
  };

  start(): void {
    for (const p of this.peers) if (p.name !== this.self.name && this.self.name < p.name) this.dial(p);
    // A stream can hang without an error (a peer that stalls one way, a half-open
    // connection): whatever we dial and has not greeted us within 3 s is dialed again.
    this.watchdog = setInterval(() => this.redialStuck(), 1000);
    this.watchdog.unref();
  }

  private watchdog: NodeJS.Timeout | null = null;
  private readonly dialedAt = new Map<string, number>();

  private redialStuck(): void {
    const now = Date.now();
    for (const p of this.peers) {
      if (p.name === this.self.name || this.self.name > p.name) continue;
      const link = this.links.get(p.name)!;
      const since = this.dialedAt.get(p.name) ?? now;
      if (link.greeted || this.retry.has(p.name) || now - since < 3000) continue;
      const stale = link.stream;
      this.detach(p.name, stale as Stream);
      try {
        (stale as grpc.ClientDuplexStream<Envelope, Envelope> | null)?.cancel();
      } catch {
        // already gone
      }
      this.dial(p);
    }
  }

  send(to: string, msg: Message): void {
    const link = this.links.get(to);
    if (link === undefined || link.stream === null) {
      this.traffic.dropped++;
      return;
    }
    this.write(link, link.stream, { type: 'msg', msg });
  }

  isUp(peer: string): boolean {
    return this.links.get(peer)?.greeted ?? false;
  }

  close(): void {
    this.closed = true;
    if (this.watchdog !== null) clearInterval(this.watchdog);
    for (const t of this.retry.values()) clearTimeout(t);
    for (const l of this.links.values()) {
      try {
        l.stream?.end();
      } catch {
        // closing anyway
      }
    }
    for (const c of this.clients.values()) c.close();
  }

  /** Written in the newest minor both ends speak (ours until the far side's hello). */
  private write(link: Link, stream: Stream, payload: PeerPayload): void {
    const ours = this.auth.protocol.maxMinor;
    const minor = link.peerMaxMinor === null ? ours : Math.min(ours, link.peerMaxMinor);
    let env: Envelope;
    try {
      env = this.auth.seal(encodePeer(payload, minor), minor);
    } catch (e) {
      // A value our own core made that the schema cannot carry: a bug, never a crash.
      this.handlers.onRefused(this.self.name, new AuthError(`cannot encode a ${payload.type === 'msg' ? payload.msg.kind : 'hello'}: ${(e as Error).message}`, 'malformed'));
      this.traffic.dropped++;
      return;
    }
    this.traffic.bytesSent += envelopeBytes(env);
    this.traffic.messagesSent++;
    try {
      stream.write(env);
    } catch {
      this.traffic.dropped++;
    }
  }

  /** Authenticate and dispatch; returns the sender, or null when refused. */
  private receive(env: Envelope, expected: string | null, onRefuse?: (err: AuthError) => void): string | null {
    this.traffic.messagesReceived++;
    let from: string;
    try {
      if (env !== null && typeof env === 'object' && Buffer.isBuffer(env.body)) this.traffic.bytesReceived += envelopeBytes(env);
      let body: Buffer;
      ({ from, body } = this.auth.open(env));
      if (expected !== null && from !== expected) throw new AuthError(`${from} sent on the link of ${expected}`, 'unknown-peer');
      if (!this.links.has(from)) throw new AuthError(`${from} is not in [cluster] transport`, 'unknown-peer');
      // A link we serve and have not attached yet: only the peer whose name
      // sorts first dials us, and it says hello before anything else. Checked
      // before anything reaches the core.
      if (expected === null && from >= this.self.name) throw new AuthError(`${from} opened a link it should not open`, 'unknown-peer');
      const p = decodePeer(body, this.known);
      if (expected === null && p.type !== 'hello') throw new AuthError(`${from} sent a ${p.msg.kind} before its hello`, 'malformed');
      if (p.type === 'hello') {
        if (p.info.name !== from) throw new AuthError(`hello from ${from} names ${p.info.name}`, 'malformed');
        const link = this.links.get(from)!;
        const pr = p.extras.protocol;
        this.auth.checkVersion(pr.major, pr.maxMinor, from);
        link.peerMaxMinor = pr.maxMinor;
        this.versions.set(from, { software: p.extras.softwareVersion, protocol: `${pr.major}.${pr.maxMinor}`, compatible: true });
        if (!link.greeted) {
          link.greeted = true;
          this.handlers.onLinkChange(from, true);
        }
        this.handlers.onHello(p.info);
      } else {
        this.handlers.onMessage(from, p.msg);
      }
      return from;
    } catch (e) {
      const err = e instanceof AuthError ? e : new AuthError(String(e), 'malformed');
      const sender = typeof env?.from === 'string' ? env.from : '?';
      // What an envelope refused for its version says is unsigned: shown
      // only while no greeted link proves that peer compatible, and clamped.
      if (err.reason === 'version' && this.links.has(sender) && !this.links.get(sender)!.greeted) {
        const n = (x: unknown) => Math.min(9999, Math.max(0, Math.trunc(Number(x ?? 0)) || 0));
        this.versions.set(sender, { software: '', protocol: `${n(env.protocol_major)}.${n(env.protocol_minor)}`, compatible: false });
      }
      this.handlers.onRefused(sender, err);
      onRefuse?.(err);
      return null;
    }
  }

  /** What this node says of itself changed (a reload): say hello again on every open link. */
  setSelf(info: PeerInfo): void {
    this.self = info;
    for (const link of this.links.values()) if (link.stream !== null) this.write(link, link.stream, this.hello());
  }

  private attach(peer: string, stream: Stream): void {
    const link = this.links.get(peer)!;
    if (link.stream !== null && link.stream !== stream) {
      try {
        link.stream.end();
      } catch {
        // replaced
      }
    }
    link.stream = stream;
    this.write(link, stream, this.hello());
  }

  private hello(): PeerPayload {
    return { type: 'hello', info: this.self, extras: this.extras };
  }

  private detach(peer: string, stream: Stream): void {
    const link = this.links.get(peer);
    if (link === undefined || link.stream !== stream) return;
    link.stream = null;
    if (link.greeted) {
      link.greeted = false;
      this.handlers.onLinkChange(peer, false);
    }
  }

  private dial(p: PeerAddress): void {
    if (this.closed) return;
    let client = this.clients.get(p.name);
    if (client === undefined) {
      client = new (PeerClient())(formatHostPort(p), this.creds(), CHANNEL_OPTIONS);
      this.clients.set(p.name, client);
    }
    const stream = (client as unknown as { Link(): grpc.ClientDuplexStream<Envelope, Envelope> }).Link();
    this.dialedAt.set(p.name, Date.now());
    // A new stream: the far side's version is known again from its hello.
    this.links.get(p.name)!.peerMaxMinor = null;
    this.attach(p.name, stream);
    let gone = false;
    const lost = () => {
      if (gone) return;
      gone = true;
      this.detach(p.name, stream);
      this.redial(p);
    };
    stream.on('data', (env: Envelope) => {
      if (this.receive(env, p.name) !== null) this.backoffMs.delete(p.name);
    });
    stream.on('error', (e: grpc.ServiceError) => {
      if (e.code === grpc.status.UNAUTHENTICATED || e.code === grpc.status.PERMISSION_DENIED) {
        this.handlers.onRefused(p.name, new AuthError(`${p.name} refused us: ${e.details}`, 'secret'));
      }
      if (e.code === grpc.status.FAILED_PRECONDITION && /incompatible protocol/.test(e.details)) {
        const speaks = /speaks \d+\.\d+–(\d+\.\d+)/.exec(e.details)?.[1] ?? '?';
        this.versions.set(p.name, { software: '', protocol: speaks, compatible: false });
        this.handlers.onRefused(p.name, new AuthError(`${p.name} refused us: ${e.details}`, 'version'));
      }
      lost();
    });
    stream.on('end', lost);
  }

  private redial(p: PeerAddress): void {
    if (this.closed || this.retry.has(p.name)) return;
    const wait = Math.min((this.backoffMs.get(p.name) ?? 100) * 2, 2000);
    this.backoffMs.set(p.name, wait);
    const t = setTimeout(() => {
      this.retry.delete(p.name);
      this.dial(p);
    }, wait / 2 + Math.random() * (wait / 2));
    t.unref();
    this.retry.set(p.name, t);
  }
}

