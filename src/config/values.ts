// Parsing of single configuration values. Each parser returns the value or
// throws a plain message that the loader wraps with file, section and key.

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** `250ms`, `2s`, `1.5m`, `1h`; a bare number is milliseconds (as in the original). */
export function parseDurationMs(raw: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/i.exec(raw);
  if (m === null) throw new Error(`"${raw}" is not a duration — write e.g. 200ms, 5s, 10m or 1h`);
  const ms = Number(m[1]) * DURATION_UNITS[(m[2] ?? 'ms').toLowerCase()]!;
  if (!Number.isFinite(ms) || ms > 7 * 24 * 3_600_000) throw new Error(`"${raw}" is too long a duration`);
  return Math.round(ms);
}

const TRUE = new Set(['true', 'yes', 'on', '1']);
const FALSE = new Set(['false', 'no', 'off', '0']);

export function parseBool(raw: string | boolean): boolean {
  if (typeof raw === 'boolean') return raw;
  const v = raw.trim().toLowerCase();
  if (TRUE.has(v)) return true;
  if (FALSE.has(v)) return false;
  throw new Error(`"${raw}" is not a boolean — write true/false, yes/no, on/off or 1/0`);
}

export function parseInteger(raw: string, min: number, max: number): number {
  const v = raw.trim();
  if (!/^-?\d+$/.test(v)) throw new Error(`"${raw}" is not a whole number`);
  const n = Number(v);
  if (n < min || n > max) throw new Error(`${n} is out of range ${min}..${max}`);
  return n;
}

export function parsePort(raw: string): number {
  return parseInteger(raw, 1, 65535);
}

export interface HostPort {
  host: string;
  port: number;
}

/** `host`, `host:port`, `[v6]:port` or a bare IPv6 address. */
export function parseHostPort(raw: string, defaultPort: number): HostPort {
  const v = raw.trim();
  if (v === '') throw new Error('empty address');
  const bracket = /^\[([^\]]+)\](?::(\d+))?$/.exec(v);
  if (bracket !== null) return { host: bracket[1]!, port: bracket[2] === undefined ? defaultPort : parsePort(bracket[2]) };
  const colons = v.split(':').length - 1;
  if (colons > 1) return { host: v, port: defaultPort }; // bare IPv6
  if (colons === 1) {
    const [host, port] = v.split(':') as [string, string];
    if (host === '') throw new Error(`"${raw}" has no host`);
    return { host, port: parsePort(port) };
  }
  if (!/^[A-Za-z0-9._-]+$/.test(v)) throw new Error(`"${raw}" is not a host name or address`);
  return { host: v, port: defaultPort };
}

export function formatHostPort(a: HostPort): string {
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

export function formatDuration(ms: number): string {
  if (ms % 3_600_000 === 0 && ms > 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0 && ms > 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0 && ms > 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}
