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
  Call(req: Envelope, opts: grpc.CallOptions, cb: (e: grpc.ServiceError | null, res?: Envelope) => void): grpc.ClientUnaryCall;
  Watch(req: Envelope): grpc.ClientReadableStream<Envelope>;
}

export class AdminClient {
  private readonly stub: AdminStub;

  constructor(
    readonly address: string,
    private readonly auth: Authenticator,
    creds: grpc.ChannelCredentials,
  ) {
    this.stub = new (AdminClientCtor())(address, creds, { ...CHANNEL_OPTIONS, 'grpc.initial_reconnect_backoff_ms': 100 }) as unknown as AdminStub;
  }

  call(req: AdminRequest, timeoutMs: number): Promise<AdminResponse> {
    return new Promise((resolve, reject) => {
      const deadline = new Date(Date.now() + timeoutMs);
      this.stub.Call(this.auth.seal(encodeAdminRequest(req)), { deadline }, (err, res) => {
        if (err !== null) {
          reject(fromStatus(err.code, err.details || err.message, this.address, timeoutMs));
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

  /** Stream events until `stop()`; `onEnd` gets the error that ended it, if any. */
  watch(onEvent: (payload: unknown) => void, onEnd: (err: Error | null) => void): { stop(): void } {
    const stream = this.stub.Watch(this.auth.seal(encodeAdminRequest({ op: 'watch' })));
    stream.on('data', (env: Envelope) => {
      try {
        onEvent(decodeWatchEvent(this.auth.open(env).body));
      } catch (e) {
        onEnd(e as Error);
        stream.cancel();
      }
    });
    stream.on('error', (e: grpc.ServiceError) => {
      if (e.code !== grpc.status.CANCELLED) onEnd(fromStatus(e.code, e.details || e.message, this.address, 0));
    });
    stream.on('end', () => onEnd(null));
    return { stop: () => stream.cancel() };
  }

  close(): void {
    this.stub.close();
  }
}
