// The client is loaded only by the commands that talk to a node: `koi check` and
// `koi keygen` stay fast, and so does --help.
import type * as ClientModule from '../transport/h2-admin-client';
import type * as AuthModule from '../transport/auth';
import { tlsFiles, type KoiConfig } from '../config/config';

export function connect(address: string, c: KoiConfig): ClientModule.H2AdminClient {
  const { H2AdminClient } = require('../transport/h2-admin-client') as typeof ClientModule;
  const { Authenticator } = require('../transport/auth') as typeof AuthModule;
  return new H2AdminClient(address, new Authenticator(c.cluster.secret, c.cluster.id, 'koi'), tlsFiles(c));
}

export function newSecret(): string {
  return (require('../transport/auth') as typeof AuthModule).newSecret();
}
