// The one mapping between koi's errors and gRPC status codes, both ways.
// Free of grpc-js at run time, so `koi` can use it without loading grpc-js.
import type { ServiceError } from '@grpc/grpc-js';
import { AuthError, RefusedError, UnreachableError } from '../errors';

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

/** What a caller of `address` makes of a non-OK status: an error that says what to do. */
export function fromStatus(code: number, details: string, address: string, timeoutMs: number): Error {
  switch (code) {
    case Code.UNAVAILABLE:
    case Code.DEADLINE_EXCEEDED:
      return new UnreachableError(`no node answered at ${address} within ${Math.round(timeoutMs / 100) / 10}s — is koinode running?`);
    case Code.UNAUTHENTICATED:
      // The node's words say what to do for a clock or replay refusal; only a
      // failed signature means another secret.
      return /failed authentication/.test(details)
        ? new AuthError(`${address} refused us: ${details} — use the cluster's secret (see -f)`, 'secret')
        : new AuthError(`${address} refused us: ${details}`, 'replay');
    case Code.PERMISSION_DENIED:
      return new AuthError(`${address} refused us: ${details}`, 'cluster');
    default:
      return new Error(`${address}: ${details}`);
  }
}
