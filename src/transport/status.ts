// The one mapping between koi's errors and gRPC status codes, both ways.
// Free of grpc-js at run time, so `koi` can use it without loading grpc-js.
import type { ServiceError } from '@grpc/grpc-js';
import { AuthError, RefusedError, UnreachableError } from '../errors';
import { VERSION } from '../version';

/** The gRPC status codes koi uses (the numbers are fixed by gRPC). */
export const Code = {
  OK: 0,
  CANCELLED: 1,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  PERMISSION_DENIED: 7,
  FAILED_PRECONDITION: 9,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16,
} as const;

export function toStatus(e: unknown): { code: number; details: string } {
  const details = e instanceof Error ? e.message : String(e);
  if (e instanceof AuthError) {
    switch (e.reason) {
      case 'secret':
      case 'replay':
        return { code: Code.UNAUTHENTICATED, details };
      case 'cluster':
      case 'unknown-peer':
        return { code: Code.PERMISSION_DENIED, details };
      case 'malformed':
        return { code: Code.INVALID_ARGUMENT, details };
      case 'version':
        return { code: Code.FAILED_PRECONDITION, details };
    }
  }
  if (e instanceof RefusedError) return { code: Code.FAILED_PRECONDITION, details };
  if (e instanceof UnreachableError) return { code: Code.UNAVAILABLE, details };
  return { code: Code.INTERNAL, details };
}

export function serviceError(e: unknown): Partial<ServiceError> {
  const s = toStatus(e);
  return { code: s.code, details: s.details, message: s.details };
}

/** How the call was made, for the words of its failure. */
export interface CallContext {
  /** Whether koi spoke TLS ([cluster] tls_cert/tls_key/tls_ca). */
  tls?: boolean;
  /** A server stream (koi watch) that was already running. */
  stream?: boolean;
}

/** The host part of HOST:PORT or [V6]:PORT: the name a certificate must carry. */
function hostOf(address: string): string {
  const m = /^\[([^\]]+)\](?::\d+)?$/.exec(address) ?? /^([^:]+)(?::\d+)?$/.exec(address);
  return m !== null ? m[1]! : address;
}

/**
 * grpc-js's words for why a channel failed, without its wrapping: "No
 * connection established. Last error: Error: connect ECONNREFUSED
 * 127.0.0.1:1. Resolution note: " becomes "connect ECONNREFUSED 127.0.0.1:1";
 * an OpenSSL line keeps only its reason.
 */
export function lastError(details: string): string {
  let d = details.replace(/^No connection established\. Last error: /, '').replace(/\.?\s*Resolution note:.*$/s, '');
  d = d.replace(/^(?:Error(?: \[\w+\])?: )+/, '').replace(/\s*\(\d{4}-\d\d-\d\dT[\d:.]+Z\)\s*$/, '');
  const ssl = /:(?:SSL routines|[A-Za-z ]+ routines):[^:]*:([^:]+):/.exec(d);
  if (ssl !== null) d = ssl[1]!;
  return d.replace(/\s+/g, ' ').trim();
}

/** What a caller of `address` makes of a non-OK status: an error that says what to do. */
export function fromStatus(code: number, details: string, address: string, timeoutMs: number, ctx: CallContext = {}): Error {
  const host = hostOf(address);
  switch (code) {
    case Code.UNAVAILABLE: {
      const why = lastError(details);
      // Nothing listens there.
      if (/ECONNREFUSED/.test(details)) return new UnreachableError(`${address} refused the connection — is koinode running on ${address}?`);
      // The name does not resolve.
      if (/Name resolution failed|ENOTFOUND|EAI_AGAIN|EAI_NONAME|getaddrinfo/.test(details))
        return new UnreachableError(`cannot resolve the host name ${host} — check -H, or the node's address in [cluster] transport`);
      if (/EHOSTUNREACH|ENETUNREACH/.test(details)) return new UnreachableError(`no route to ${address} (${why}) — check the address and the network`);
      // TLS: the name, our trust in the node, the node's trust in us, one side without TLS.
      if (/ERR_TLS_CERT_ALTNAME_INVALID|does not match certificate's altnames/.test(details))
        return new RefusedError(`TLS: the certificate of ${address} is not valid for the name ${host} (${why}) — reach the node by a name or address its certificate lists (-H), or issue it a certificate with subjectAltName ${/^[\d.]+$|:/.test(host) ? 'IP' : 'DNS'}:${host}`);
      if (/alert (?:certificate required|bad certificate|unknown ca|certificate unknown|certificate expired|decrypt error|access denied)/.test(details))
        return new RefusedError(`TLS: ${address} refused koi's certificate (${why}) — [cluster] tls_cert and tls_key must be a certificate signed by the CA in the nodes' tls_ca`);
      if (/wrong version number|packet length too long|unexpected eof while reading|http request/.test(details))
        return new RefusedError(`TLS: ${address} does not speak TLS (${why}) — koi has [cluster] tls_cert/tls_key/tls_ca but the node does not: set them on both or on neither`);
      if (/certificate|self.signed|unable to verify|unable to get (?:local )?issuer|CERT_|DEPTH_ZERO/i.test(details))
        return new RefusedError(`TLS: koi does not trust the certificate of ${address} (${why}) — [cluster] tls_ca must be the CA that signed the nodes' certificates`);
      if (/^Failed to connect$/.test(why))
        return ctx.tls === true
          ? new RefusedError(`TLS: ${address} closed the connection during the handshake — it does not accept koi's certificate ([cluster] tls_cert must be signed by the CA in the nodes' tls_ca), or it is not koinode`)
          : new RefusedError(`${address} closed the connection before answering — if the nodes use TLS, give koi [cluster] tls_cert, tls_key and tls_ca too`);
      // A connection that was up and went away: keepalive pings unanswered, or the node's end closed.
      if (ctx.stream === true || /keepalive|Connection dropped|GOAWAY|ECONNRESET|EPIPE|socket hang up|Connection closed|Call cancelled|RST_STREAM|read ETIMEDOUT/i.test(details))
        return new UnreachableError(`lost the connection to ${address} (${why || 'closed'}) — koinode stopped or froze, or the network is cut; retry once it is back`);
      if (/ETIMEDOUT/.test(details)) return new UnreachableError(`no connection to ${address} (${why}) — is the node up, and the port open in its firewall?`);
      return new UnreachableError(why === '' ? `no node answered at ${address} — is koinode running?` : `no connection to ${address}: ${why} — is koinode running on ${address}?`);
    }
    case Code.DEADLINE_EXCEEDED:
      return new UnreachableError(`no node answered at ${address} within ${Math.round(timeoutMs / 100) / 10}s — is koinode running?`);
    case Code.CANCELLED:
      // Not ours (koi's own cancel is not reported): the node ended the call, e.g. while shutting down.
      return new UnreachableError(`${address} ended the call (${details || 'cancelled'}) — koinode is stopping or restarting; retry`);
    case Code.UNAUTHENTICATED:
      // The node's words say what to do for a clock or replay refusal; only a
      // failed signature means another secret.
      return /failed authentication/.test(details)
        ? new AuthError(`${address} refused koi: wrong secret (the node's [cluster] secret differs from the one koi read) — give koi the cluster's secret or secret_file (see -f)`, 'secret')
        : new AuthError(`${address} refused us: ${details}`, 'replay');
    case Code.PERMISSION_DENIED: {
      const m = /is for cluster (\d+), we are cluster (\d+)/.exec(details);
      return m !== null
        ? new AuthError(`${address} refused koi: wrong cluster id (koi sent ${m[1]}, the node is cluster ${m[2]}) — set [cluster] id = ${m[2]} in koi's configuration (see -f)`, 'cluster')
        : new AuthError(`${address} refused us: ${details}`, 'cluster');
    }
    case Code.FAILED_PRECONDITION:
      if (/^incompatible protocol/.test(details))
        return new RefusedError(`${address} speaks another protocol version (${details}) — use koi from the same koi release as that koinode (this koi is ${VERSION})`);
      return new RefusedError(`${address}: ${details}`);
    default:
      return new Error(`${address}: ${details}`);
  }
}
