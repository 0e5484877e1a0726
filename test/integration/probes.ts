// Small helpers shared by the integration tests of handlers, metrics and the
// script contract: polling a condition with a deadline, reading the HTTP
// endpoints, editing a node's koi.conf before it starts, and process checks.
import { get } from 'node:http';
import { readFileSync, writeFileSync } from 'node:fs';

/** Poll until `pred` holds (it may be async); throw after `ms`. */
export async function until(what: string, pred: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await pred()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out after ${ms}ms waiting for ${what}`);
}

export function fetchText(url: string): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    get(url, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type'] ?? ''), body }));
    }).on('error', reject);
  });
}

/** The value of one Prometheus sample (`name` or `name{labels}`), or null when absent. */
export function sample(metrics: string, series: string): number | null {
  for (const line of metrics.split('\n')) {
    if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1));
  }
  return null;
}

/** Add `key = value` lines at the top of a section of a koi.conf (the section must exist). */
export function addConf(conf: string, section: string, lines: string[]): void {
  const text = readFileSync(conf, 'utf8');
  if (!text.includes(`[${section}]\n`)) throw new Error(`${conf} has no [${section}]`);
  writeFileSync(conf, text.replace(`[${section}]\n`, `[${section}]\n${lines.join('\n')}\n`));
}

/** Replace one `key = value` line of a koi.conf. */
export function setConf(conf: string, key: string, value: string): void {
  const text = readFileSync(conf, 'utf8');
  const re = new RegExp(`^${key} = .*$`, 'm');
  if (!re.test(text)) throw new Error(`${conf} has no ${key}`);
  writeFileSync(conf, text.replace(re, `${key} = ${value}`));
}

/** Running (a zombie is dead: it only waits for its parent to reap it). */
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

export function readLines(file: string): string[] {
  try {
    return readFileSync(file, 'utf8').split('\n').filter((l) => l !== '');
  } catch {
    return [];
  }
}

/**
 * Slower heartbeats and timeouts than the harness default, for tests whose
 * subject is lost if a loaded machine changes leaders midway (handler events
 * belong to one leadership; a second leader would fence again).
 */
export const STEADY = { time: { heartbeat_interval: '200ms', leader_timeout: '1500ms', master_lease: '2500ms' } };

