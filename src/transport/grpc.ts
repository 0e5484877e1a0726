// Channel options and credentials shared by koinode and koi.
import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { tlsFiles, type KoiConfig } from '../config/config';

/** Keepalives find a dead TCP peer; the protocol's own timeouts decide roles. */
export const CHANNEL_OPTIONS: grpc.ChannelOptions = {
  'grpc.keepalive_time_ms': 5000,
  'grpc.keepalive_timeout_ms': 3000,
  'grpc.keepalive_permit_without_calls': 1,
  'grpc.http2.max_pings_without_data': 0,
  'grpc.initial_reconnect_backoff_ms': 200,
  'grpc.max_reconnect_backoff_ms': 2000,
  'grpc.max_receive_message_length': 4 * 1024 * 1024,
};

export function serverCredentials(c: KoiConfig): grpc.ServerCredentials {
  const t = tlsFiles(c);
  if (t === null) return grpc.ServerCredentials.createInsecure();
  return grpc.ServerCredentials.createSsl(readFileSync(t.ca), [{ private_key: readFileSync(t.key), cert_chain: readFileSync(t.cert) }], true);
}

export function channelCredentials(c: Pick<KoiConfig, 'cluster'>): grpc.ChannelCredentials {
  const t = tlsFiles(c);
  if (t === null) return grpc.credentials.createInsecure();
  return grpc.credentials.createSsl(readFileSync(t.ca), readFileSync(t.key), readFileSync(t.cert));
}
