// The one mapping from errors to the CLI's exit status and its one-line message.
import { AuthError, ConfigError, RefusedError, UnreachableError, UsageError } from '../errors';

export const EXIT = { ok: 0, refused: 1, usage: 2, unreachable: 3 } as const;

export function exitFor(e: unknown): { code: number; message: string } {
  const message = e instanceof Error ? e.message : String(e);
  if (e instanceof ConfigError || e instanceof UsageError) return { code: EXIT.usage, message };
  if (e instanceof UnreachableError) return { code: EXIT.unreachable, message };
  if (e instanceof RefusedError || e instanceof AuthError) return { code: EXIT.refused, message };
  return { code: EXIT.refused, message };
}
