// winston logging: coloured lines for people, JSON lines for machines, or a
// file. Every line carries the node and the component.
import * as winston from 'winston';

export type LogTarget = 'console' | 'json' | `file:${string}`;
export type LogLevel = 'error' | 'warn' | 'info' | 'debug';

export interface Log {
  error(component: string, msg: string, meta?: Record<string, unknown>): void;
  warn(component: string, msg: string, meta?: Record<string, unknown>): void;
  info(component: string, msg: string, meta?: Record<string, unknown>): void;
  debug(component: string, msg: string, meta?: Record<string, unknown>): void;
  close(): Promise<void>;
}

export function parseLogTarget(raw: string): LogTarget {
  if (raw === 'console' || raw === 'json') return raw;
  if (raw.startsWith('file:') && raw.length > 5) return raw as LogTarget;
  throw new Error(`--log ${raw}: use console, json or file:PATH`);
}

export function createLog(node: string, target: LogTarget, level: LogLevel, color: boolean): Log {
  const human = winston.format.printf((i) => {
    const { level: lvl, message, timestamp, component, node: n, ...rest } = i as Record<string, unknown>;
    const extra = Object.keys(rest).length > 0 ? ` ${JSON.stringify(rest)}` : '';
    return `${String(timestamp)} ${String(lvl)} ${String(n)} ${String(component)}: ${String(message)}${extra}`;
  });
  let transport: winston.transport;
  if (target === 'json') {
    transport = new winston.transports.Console({ format: winston.format.combine(winston.format.timestamp(), winston.format.json()) });
  } else if (target === 'console') {
    const fmts = [winston.format.timestamp({ format: 'HH:mm:ss.SSS' }), ...(color ? [winston.format.colorize()] : []), human];
    transport = new winston.transports.Console({ format: winston.format.combine(...fmts), stderrLevels: [] });
  } else {
    transport = new winston.transports.File({ filename: target.slice(5), format: winston.format.combine(winston.format.timestamp(), winston.format.json()) });
  }
  const logger = winston.createLogger({ level, defaultMeta: { node }, transports: [transport] });
  // Skip disabled levels before winston: it would push them through its streams first.
  const emit = (lvl: LogLevel) => (component: string, msg: string, meta?: Record<string, unknown>) => {
    if (logger.isLevelEnabled(lvl)) logger.log(lvl, msg, { component, ...meta });
  };
  return {
    error: emit('error'),
    warn: emit('warn'),
    info: emit('info'),
    debug: emit('debug'),
    close: () =>
      new Promise((resolve) => {
        logger.on('finish', () => resolve());
        logger.end();
        setTimeout(resolve, 500).unref();
      }),
  };
}

/** At most one line per key per interval (a misconfigured peer must not flood the log). */
export class RateLimiter {
  private readonly last = new Map<string, number>();
  constructor(private readonly intervalMs = 60_000) {}
  allow(key: string, nowMs = Date.now()): boolean {
    const t = this.last.get(key);
    if (t !== undefined && nowMs - t < this.intervalMs) return false;
    this.last.set(key, nowMs);
    if (this.last.size > 1000) this.last.clear();
    return true;
  }
}
