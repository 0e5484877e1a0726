// The one mapping from koi's errors to gRPC status codes.
import { status, type ServiceError } from '@grpc/grpc-js';
import { AuthError, RefusedError, UnreachableError } from '../errors';

export function toStatus(e: unknown): { code: status; details: string } {
  const details = e instanceof Error ? e.message : String(e);
  if (e instanceof AuthError) {
    switch (e.reason) {
      case 'secret':
      case 'replay':
        return { code: status.UNAUTHENTICATED, details };
      case 'cluster':
      case 'unknown-peer':
        return { code: status.PERMISSION_DENIED, details };
      case 'malformed':
        return { code: status.INVALID_ARGUMENT, details };
    }
  }
  if (e instanceof RefusedError) return { code: status.FAILED_PRECONDITION, details };
  if (e instanceof UnreachableError) return { code: status.UNAVAILABLE, details };
  return { code: status.INTERNAL, details };
}

export function serviceError(e: unknown): Partial<ServiceError> {
  const s = toStatus(e);
  return { code: s.code, details: s.details, message: s.details };
}
