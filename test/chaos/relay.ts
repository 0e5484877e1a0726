// TCP relays between koinodes: one per ordered pair (X dials Y through
// relay XY). Per direction they can cut (connections dropped and refused),
// stall (bytes held, as a one-way loss looks to TCP) and delay with jitter.
import { createServer, connect, type Server, type Socket } from 'node:net';

export interface Direction {
  /** Hold bytes going this way (one-way loss). */
  stalled: boolean;
  delayMs: number;
  jitterMs: number;
}

export class Relay {
  readonly up: Direction = { stalled: false, delayMs: 0, jitterMs: 0 };
  readonly down: Direction = { stalled: false, delayMs: 0, jitterMs: 0 };
  private cut = false;
  private readonly server: Server;
  private readonly conns = new Set<Socket>();
  port = 0;

  constructor(
    readonly from: string,
    readonly to: string,
    private readonly targetPort: number,
    private readonly rand: () => number,
  ) {
    this.server = createServer((client) => this.accept(client));
  }

  listen(): Promise<number> {
    return new Promise((resolve) => this.server.listen(0, '127.0.0.1', () => resolve((this.port = (this.server.address() as { port: number }).port))));
  }

  setCut(cut: boolean): void {
    this.cut = cut;
    if (cut) for (const s of this.conns) s.destroy();
  }

  close(): void {
    this.setCut(true);
    this.server.close();
  }

  private accept(client: Socket): void {
    if (this.cut) {
      client.destroy();
      return;
    }
    const server = connect(this.targetPort, '127.0.0.1');
    this.conns.add(client).add(server);
    const drop = () => {
      client.destroy();
      server.destroy();
      this.conns.delete(client);
      this.conns.delete(server);
    };
    client.on('error', drop).on('close', drop);
    server.on('error', drop).on('close', drop);
    this.pipe(client, server, this.up);
    this.pipe(server, client, this.down);
  }

  /** Forward in order; stalled bytes wait, delayed bytes keep their order. */
  private pipe(src: Socket, dst: Socket, d: Direction): void {
    // Chunks with the time they may leave; one timer drains them in order.
    const queue: { at: number; chunk: Buffer }[] = [];
    let lastAt = 0;
    let timer: NodeJS.Timeout | null = null;
    const flush = () => {
      timer = null;
      if (dst.destroyed) {
        queue.length = 0;
        return;
      }
      const now = Date.now();
      while (!d.stalled && queue.length > 0 && queue[0]!.at <= now) dst.write(queue.shift()!.chunk);
      if (queue.length > 0) timer = setTimeout(flush, d.stalled ? 50 : Math.max(1, queue[0]!.at - now));
    };
    src.on('data', (chunk: Buffer) => {
      if (d.delayMs === 0 && !d.stalled && queue.length === 0) {
        if (!dst.destroyed) dst.write(chunk);
        return;
      }
      const at = Math.max(lastAt, Date.now() + d.delayMs + this.rand() * d.jitterMs);
      lastAt = at;
      queue.push({ at, chunk });
      timer ??= setTimeout(flush, Math.max(1, at - Date.now()));
    });
    src.on('close', () => {
      if (timer !== null) clearTimeout(timer);
      queue.length = 0;
    });
  }
}

/** Relays for every ordered pair of nodes, addressed by names. */
export class RelayMesh {
  readonly relays = new Map<string, Relay>();

  constructor(
    names: string[],
    ports: Record<string, number>,
    rand: () => number,
  ) {
    for (const a of names) for (const b of names) if (a !== b) this.relays.set(`${a}>${b}`, new Relay(a, b, ports[b]!, rand));
  }

  async listen(): Promise<void> {
    await Promise.all([...this.relays.values()].map((r) => r.listen()));
  }

  /** The port `from` uses to reach `to`. */
  portFor(from: string, to: string): number {
    return this.relays.get(`${from}>${to}`)!.port;
  }

  /** Traffic from `from` to `to`: upstream of relay from>to, downstream of relay to>from. */
  private directions(from: string, to: string): Direction[] {
    return [this.relays.get(`${from}>${to}`)!.up, this.relays.get(`${to}>${from}`)!.down];
  }

  cutPair(a: string, b: string, cut: boolean): void {
    this.relays.get(`${a}>${b}`)!.setCut(cut);
    this.relays.get(`${b}>${a}`)!.setCut(cut);
  }

  stall(from: string, to: string, stalled: boolean): void {
    for (const d of this.directions(from, to)) d.stalled = stalled;
  }

  delay(from: string, to: string, delayMs: number, jitterMs: number): void {
    for (const d of this.directions(from, to)) {
      d.delayMs = delayMs;
      d.jitterMs = jitterMs;
    }
  }

  healAll(): void {
    for (const r of this.relays.values()) {
      r.setCut(false);
      for (const d of [r.up, r.down]) Object.assign(d, { stalled: false, delayMs: 0, jitterMs: 0 });
    }
  }

  close(): void {
    for (const r of this.relays.values()) r.close();
  }
}
