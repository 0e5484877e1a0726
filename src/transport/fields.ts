// Checks applied to every decoded field before anything reaches the core or
// the daemon: a message that fails one is refused whole, never half-applied.
import { AuthError } from '../errors';

export function bad(what: string): never {
  throw new AuthError(`malformed message: ${what}`, 'malformed');
}

export function need(cond: boolean, what: string): void {
  if (!cond) bad(what);
}

/** Node names as the configuration allows them. */
export const NODE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
/** Service names: directory names under the services folder. */
const SERVICE_NAME = /^[^/\0]{1,255}$/;

/** The configuration allows durations up to a week; a little more than that passes. */
const MAX_DURATION_MS = 8 * 86_400_000;

/** A count, epoch, sequence number or incarnation. */
export function count(x: unknown, what: string): number {
  need(typeof x === 'number' && Number.isSafeInteger(x) && x >= 0, what);
  return x as number;
}

/** A sequence number or version that is -1 while there is none yet. */
export function countOrNone(x: unknown, what: string): number {
  need(typeof x === 'number' && Number.isSafeInteger(x) && x >= -1, what);
  return x as number;
}

/** A clock reading or a signed difference of readings, in ms. */
export function timeMs(x: unknown, what: string): number {
  need(typeof x === 'number' && Number.isFinite(x) && Math.abs(x) < 1e15, what);
  return x as number;
}

/** A duration the sender announces: positive and no longer than a configuration allows. */
export function durationMs(x: unknown, what: string): number {
  need(typeof x === 'number' && Number.isFinite(x) && x > 0 && x <= MAX_DURATION_MS, what);
  return x as number;
}

export function optional<T>(x: unknown, check: (v: unknown, what: string) => T, what: string): T | undefined {
  return x === undefined || x === null ? undefined : check(x, what);
}

export function bool(x: unknown, what: string): boolean {
  need(typeof x === 'boolean', what);
  return x as boolean;
}

export function text(x: unknown, what: string, maxChars = 8192): string {
  need(typeof x === 'string' && x.length <= maxChars, what);
  return x as string;
}

export function int(x: unknown, what: string, min: number, max: number): number {
  need(typeof x === 'number' && Number.isInteger(x) && x >= min && x <= max, what);
  return x as number;
}

export function nodeName(x: unknown, what: string): string {
  need(typeof x === 'string' && NODE_NAME.test(x), `${what} (not a node name)`);
  return x as string;
}

/** A node name that must be one of this cluster's nodes. */
export function knownNode(x: unknown, what: string, known: ReadonlySet<string>): string {
  const n = nodeName(x, what);
  need(known.has(n), `${what} (${n} is not in [cluster] transport)`);
  return n;
}

export function serviceName(x: unknown, what: string): string {
  need(typeof x === 'string' && SERVICE_NAME.test(x), what);
  return x as string;
}

export function list<T>(x: unknown, what: string, max: number, each: (v: unknown, what: string) => T): T[] {
  need(Array.isArray(x) && x.length <= max, `${what} (at most ${max})`);
  return (x as unknown[]).map((v, i) => each(v, `${what}[${i}]`));
}

export function object(x: unknown, what: string): Record<string, unknown> {
  need(typeof x === 'object' && x !== null && !Array.isArray(x), what);
  return x as Record<string, unknown>;
}

/**
 * A proto enum name (`RUNNER_STATE_MASTER`) as koi's lowercase word
 * (`master`), which must be one of `allowed`.
 */
export function enumWord<T extends string>(x: unknown, prefix: string, allowed: readonly T[], what: string): T {
  need(typeof x === 'string' && x.startsWith(prefix), what);
  const word = (x as string).slice(prefix.length).toLowerCase().replace(/_/g, '-') as T;
  need(allowed.includes(word), `${what} (${String(x)})`);
  return word;
}

/** koi's word as the proto enum name. */
export function enumName(prefix: string, word: string): string {
  return prefix + word.toUpperCase().replace(/-/g, '_');
}
