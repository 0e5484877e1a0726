// The gRPC client (grpc-js) is loaded only by the commands that talk to a
// node: `koi check`, `koi keygen` and --help stay fast.
import type * as ClientModule from '../transport/admin-client';
import type * as AuthModule from '../transport/auth';
import type * as GrpcModule from '../transport/grpc';
import type { KoiConfig } from '../config/config';

export function connect(address: string, c: KoiConfig): ClientModule.AdminClient {
  const { AdminClient } = require('../transport/admin-client') as typeof ClientModule;
  const { Authenticator } = require('../transport/auth') as typeof AuthModule;
  const { channelCredentials } = require('../transport/grpc') as typeof GrpcModule;
  return new AdminClient(address, new Authenticator(c.cluster.secret, c.cluster.id, 'koi'), channelCredentials(c));
}

export function newSecret(): string {
  return (require('../transport/auth') as typeof AuthModule).newSecret();
}
