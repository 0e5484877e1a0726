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
import { PEER_SERVICE } from './wire';

const PeerCtor = grpc.makeGenericClientConstructor(PEER_SERVICE, 'koi.v1.Peer');
import { checkPeerPayload } from './payload';
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
  readonly traffic: TrafficCounters = { bytesSent: 0, bytesReceived: 0, messagesSent: 0, messagesReceived: 0, dropped: 0 };

  constructor(
    private self: PeerInfo,
    private readonly peers: PeerAddress[],
    private readonly auth: Authenticator,
    private readonly creds: () => grpc.ChannelCredentials,
    private readonly handlers: PeerHandlers,
  ) {
    for (const p of peers) if (p.name !== self.name) this.links.set(p.name, { stream: null, greeted: false });
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
        if (from >= this.self.name || !this.links.has(from)) {
          // Only the peer whose name sorts first dials us; anything else is confused.
          const err = new AuthError(`${from} opened a link it should not open`, 'unknown-peer');
          this.handlers.onRefused(from, err);
          call.emit('error', serviceError(err));
          return;
        }
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
    this.write(link.stream, { type: 'msg', msg });
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

  private write(stream: Stream, payload: unknown): void {
    const env = this.auth.seal(payload);
    this.traffic.bytesSent += env.body.length + 60;
    this.traffic.messagesSent++;
    try {
      stream.write(env);
    } catch {
      this.traffic.dropped++;
    }
  }

  /** Authenticate and dispatch; returns the sender, or null when refused. */
  private receive(env: Envelope, expected: string | null, onRefuse?: (err: AuthError) => void): string | null {
    this.traffic.bytesReceived += (env.body?.length ?? 0) + 60;
    this.traffic.messagesReceived++;
    let from: string;
    let payload: unknown;
    try {
      ({ from, payload } = this.auth.open(env));
      if (expected !== null && from !== expected) throw new AuthError(`${from} sent on the link of ${expected}`, 'unknown-peer');
      if (!this.links.has(from)) throw new AuthError(`${from} is not in [cluster] transport`, 'unknown-peer');
      const p = checkPeerPayload(payload);
      if (p.type === 'hello') {
        if (p.info.name !== from) throw new AuthError(`hello from ${from} names ${p.info.name}`, 'malformed');
        const link = this.links.get(from)!;
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
      this.handlers.onRefused(typeof env?.from === 'string' ? env.from : '?', err);
      onRefuse?.(err);
      return null;
    }
  }

  /** What this node says of itself changed (a reload): say hello again on every open link. */
  setSelf(info: PeerInfo): void {
    this.self = info;
    for (const link of this.links.values()) if (link.stream !== null) this.write(link.stream, { type: 'hello', info });
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
    this.write(stream, { type: 'hello', info: this.self });
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
      client = new PeerCtor(formatHostPort(p), this.creds(), CHANNEL_OPTIONS);
      this.clients.set(p.name, client);
    }
    const stream = (client as unknown as { Link(): grpc.ClientDuplexStream<Envelope, Envelope> }).Link();
    this.dialedAt.set(p.name, Date.now());
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

