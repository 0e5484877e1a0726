// `koi`'s calls to a node's Admin service: gRPC over node:http2, without
// grpc-js. Loading grpc-js costs about 65 ms, more than everything else a
// short command does; one unary call (or one server stream for `koi watch`)
// needs only gRPC's framing: a 5-byte prefix per message, the status in the
// trailers. The daemon keeps using grpc-js for links and forwarding.
import { readFileSync } from 'node:fs';
import * as http2 from 'node:http2';
import type { AdminRequest, AdminResponse } from '../admin-types';
import type { TlsFiles } from '../config/config';
import { AuthError, UnreachableError } from '../errors';
import type { Authenticator, Envelope } from './auth';
import { decodeEnvelope, encodeEnvelope } from './envelope-codec';
import { Code, fromStatus } from './status';

const MAX_MESSAGE_BYTES = 4 * 1024 * 1024;

/** Splits a byte stream into gRPC length-prefixed messages. */
export class MessageFramer {
  private buf: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): Buffer[] {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    const out: Buffer[] = [];
    while (this.buf.length >= 5) {
      if (this.buf[0] !== 0) throw new Error('compressed message (koi never asks for compression)');
      const n = this.buf.readUInt32BE(1);
      if (n > MAX_MESSAGE_BYTES) throw new Error(`message of ${n} bytes is over the ${MAX_MESSAGE_BYTES}-byte limit`);
      if (this.buf.length < 5 + n) break;
      out.push(this.buf.subarray(5, 5 + n));
      this.buf = this.buf.subarray(5 + n);
    }
    return out;
  }

  static frame(msg: Buffer): Buffer {
    const head = Buffer.alloc(5);
    head.writeUInt32BE(msg.length, 1);
    return Buffer.concat([head, msg]);
  }
}

interface Ending {
  code: number;
  details: string;
}

function statusOf(h: http2.IncomingHttpHeaders): Ending | null {
  const raw = h['grpc-status'];
  if (raw === undefined) return null;
  let details = String(h['grpc-message'] ?? '');
  try {
    details = decodeURIComponent(details);
  } catch {
    // keep it as sent
  }
  return { code: Number(raw), details };
}

export class H2AdminClient {
  private session: http2.ClientHttp2Session | null = null;

  constructor(
    readonly address: string,
    private readonly auth: Authenticator,
    private readonly tls: TlsFiles | null,
  ) {}

  private open(): http2.ClientHttp2Session {
    if (this.session !== null && !this.session.destroyed) return this.session;
    const t = this.tls;
    const s =
      t === null
        ? http2.connect(`http://${this.address}`)
        : http2.connect(`https://${this.address}`, { ca: readFileSync(t.ca), cert: readFileSync(t.cert), key: readFileSync(t.key) });
    // Errors reach each stream; the session's own must not crash the process.
    s.on('error', () => undefined);
    this.session = s;
    return s;
  }

  /**
   * One method call; `onMessage` gets each envelope, the promise settles with
   * the final status. Transport failures become UnreachableError.
   */
  private invoke(method: string, req: AdminRequest, timeoutMs: number, onMessage: (e: Envelope) => void): { done: Promise<Ending>; cancel(): void } {
    let stream: http2.ClientHttp2Stream | null = null;
    const headers: http2.OutgoingHttpHeaders = {
      ':method': 'POST',
      ':path': `/koi.v1.Admin/${method}`,
      'content-type': 'application/grpc',
      te: 'trailers',
    };
    if (timeoutMs > 0) headers['grpc-timeout'] = `${Math.min(Math.max(1, Math.round(timeoutMs)), 99_999_999)}m`;
    let cancel = () => undefined as void;
    const done = new Promise<Ending>((resolve, reject) => {
      let ending: Ending | null = null;
      let settled = false;
      const finish = (e: Ending | Error) => {
        if (settled) return;
        settled = true;
        if (timer !== null) clearTimeout(timer);
        if (e instanceof Error) reject(e);
        else resolve(e);
      };
      const unreachable = () => fromStatus(Code.UNAVAILABLE, '', this.address, timeoutMs);
      const timer = timeoutMs > 0 ? setTimeout(() => {
        stream?.close(http2.constants.NGHTTP2_CANCEL);
        finish(unreachable());
      }, timeoutMs) : null;
      let st: http2.ClientHttp2Stream;
      try {
        st = stream = this.open().request(headers);
      } catch {
        finish(unreachable());
        return;
      }
      cancel = () => {
        st.close(http2.constants.NGHTTP2_CANCEL);
        finish({ code: Code.CANCELLED, details: 'cancelled' });
      };
      const framer = new MessageFramer();
      st.on('response', (h) => {
        ending = statusOf(h);
        if (ending === null && h[':status'] !== 200) ending = { code: Code.UNAVAILABLE, details: `HTTP status ${String(h[':status'])}` };
      });
      st.on('data', (chunk: Buffer) => {
        try {
          for (const m of framer.push(chunk)) onMessage(decodeEnvelope(m));
        } catch (e) {
          st.close(http2.constants.NGHTTP2_CANCEL);
          finish(e instanceof AuthError || e instanceof UnreachableError ? e : new AuthError(`${this.address} sent a bad message: ${(e as Error).message}`, 'malformed'));
        }
      });
      st.on('trailers', (h) => {
        ending = statusOf(h) ?? ending;
      });
      st.on('error', () => finish(unreachable()));
      st.on('close', () => finish(ending ?? (settled ? { code: Code.CANCELLED, details: '' } : unreachable())));
      st.end(MessageFramer.frame(encodeEnvelope(this.auth.seal(req))));
    });
    return { done, cancel: () => cancel() };
  }

  async call(req: AdminRequest, timeoutMs: number): Promise<AdminResponse> {
    let reply: Envelope | null = null;
    const end = await this.invoke('Call', req, timeoutMs, (e) => {
      reply = e;
    }).done;
    if (end.code !== Code.OK) throw fromStatus(end.code, end.details, this.address, timeoutMs);
    if (reply === null) throw new AuthError(`${this.address} answered without a message`, 'malformed');
    return this.auth.open(reply).payload as AdminResponse;
  }

  /** Stream events until `stop()`; `onEnd` gets the error that ended it, if any. */
  watch(onEvent: (payload: unknown) => void, onEnd: (err: Error | null) => void): { stop(): void } {
    const call = this.invoke('Watch', { op: 'watch' }, 0, (e) => onEvent(this.auth.open(e).payload));
    call.done.then(
      (end) => {
        if (end.code === Code.OK) onEnd(null);
        else if (end.code !== Code.CANCELLED) onEnd(fromStatus(end.code, end.details, this.address, 0));
      },
      (e: Error) => onEnd(e),
    );
    return { stop: () => call.cancel() };
  }

  close(): void {
    // destroy, not close: a graceful close waits for a connection that was
    // accepted but never answered, and koi would hang after its error line.
    this.session?.destroy();
    this.session = null;
  }
}
