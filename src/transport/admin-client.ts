// Calling the Admin service of a node: used by `koi` and by a node that
// forwards a command to the leader.
import * as grpc from '@grpc/grpc-js';
import type { AdminRequest, AdminResponse } from '../admin-types';
import type { Authenticator, Envelope } from './auth';
import { CHANNEL_OPTIONS } from './grpc';
import { AdminClientCtor } from './wire';
import { fromStatus } from './status';
import { decodeAdminReply, decodeWatchEvent, encodeAdminRequest } from './admin-codec';

interface AdminStub extends grpc.Client {
  Call(req: Envelope, md: grpc.Metadata, opts: grpc.CallOptions, cb: (e: grpc.ServiceError | null, res?: Envelope) => void): grpc.ClientUnaryCall;
  Watch(req: Envelope, md: grpc.Metadata): grpc.ClientReadableStream<Envelope>;
}

/**
 * Not wait-for-ready: a refused connection, an unknown host name or a failed
 * TLS handshake ends the call at once with UNAVAILABLE and grpc-js's reason,
 * instead of waiting out the deadline for a channel that may come up.
 */
const failFast = (): grpc.Metadata => new grpc.Metadata({ waitForReady: false });

export class AdminClient {
  private readonly stub: AdminStub;
  private readonly tls: boolean;

  constructor(
    readonly address: string,
    private readonly auth: Authenticator,
    creds: grpc.ChannelCredentials,
  ) {
    this.tls = creds._isSecure();
    this.stub = new (AdminClientCtor())(address, creds, { ...CHANNEL_OPTIONS, 'grpc.initial_reconnect_backoff_ms': 100 }) as unknown as AdminStub;
  }

  call(req: AdminRequest, timeoutMs: number): Promise<AdminResponse> {
    return new Promise((resolve, reject) => {
      const deadline = new Date(Date.now() + timeoutMs);
      this.stub.Call(this.auth.seal(encodeAdminRequest(req)), failFast(), { deadline }, (err, res) => {
        if (err !== null) {
          reject(fromStatus(err.code, err.details || err.message, this.address, timeoutMs, { tls: this.tls }));
          return;
        }
        try {
          resolve(decodeAdminReply(this.auth.open(res).body));
        } catch (e) {
          reject(e);
        }
      });
    });
  }

  /**
   * Stream events until `stop()`; `onEnd` gets the error that ended it, if
   * any, once. The channel's keepalive pings (CHANNEL_OPTIONS) end a stream
   * whose node froze or whose connection went half-open.
   */
  watch(onEvent: (payload: unknown) => void, onEnd: (err: Error | null) => void): { stop(): void } {
    const stream = this.stub.Watch(this.auth.seal(encodeAdminRequest({ op: 'watch' })), failFast());
    let stopped = false;
    let ended = false;
    let events = 0;
    const end = (err: Error | null) => {
      if (ended) return;
      ended = true;
      onEnd(err);
    };
    stream.on('data', (env: Envelope) => {
      if (ended) return;
      try {
        events++;
        onEvent(decodeWatchEvent(this.auth.open(env).body));
      } catch (e) {
        end(e as Error);
        stopped = true;
        stream.cancel();
      }
    });
    stream.on('error', (e: grpc.ServiceError) => {
      if (stopped && e.code === grpc.status.CANCELLED) return end(null);
      end(fromStatus(e.code, e.details || e.message, this.address, 0, { tls: this.tls, stream: events > 0 }));
    });
    stream.on('end', () => end(null));
    return {
      stop: () => {
        stopped = true;
        stream.cancel();
      },
    };
  }

  close(): void {
    this.stub.close();
  }
}
