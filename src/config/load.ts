// Loading koi.conf: search path, INI parsing, every key validated once into a
// typed KoiConfig. Errors name the file, section and key and say what to do.
import { accessSync, constants, existsSync, readFileSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import * as ini from 'ini';
import { CONFIG_SEARCH, defaultConfig, type KoiConfig, type PeerAddress } from './config';
import { formatDuration, parseBool, parseDurationMs, parseHostPort, parseInteger, parsePort } from './values';
import { ConfigError } from '../errors';

export interface ConfigFlags {
  name?: string;
  port?: number;
  services?: string;
  /** The CLI only needs the address and secret: skip checks of folders and executables. */
  client?: boolean;
}

export interface LoadedConfig {
  config: KoiConfig;
  warnings: string[];
  /** Rules worth knowing about these values, for `koi check` (not problems). */
  notes: string[];
}

/**
 * The part of the leader's safety margin (SAFETY_MARGIN_MS in
 * src/daemon/daemon.ts) that covers clock rates differing by up to
 * CLOCK_RATE_BOUND over master_lease + demote_timeout (docs/ARCHITECTURE.md).
 */
export const CLOCK_RATE_RESERVE_MS = 50;
export const CLOCK_RATE_BOUND = 0.005;

type Setter = (c: KoiConfig, raw: string, ctx: KeyContext) => void;

interface KeyContext {
  dir: string;
  set: Set<string>;
}

const dur = (f: (c: KoiConfig, ms: number) => void): Setter => (c, raw) => f(c, parseDurationMs(raw));
const path = (f: (c: KoiConfig, p: string) => void): Setter => (c, raw, ctx) => f(c, resolve(ctx.dir, raw.trim()));

/** Every key koi knows, by section. Names follow the original koi.conf. */
const KEYS: Record<string, Record<string, Setter>> = {
  node: {
    name: (c, raw) => {
      const v = raw.trim();
      if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(v)) throw new Error(`"${raw}" is not a valid node name (letters, digits, . _ -)`);
      c.node.name = v;
    },
    elector: (c, raw) => (c.node.elector = parseBool(raw)),
    runner: (c, raw) => (c.node.runner = parseBool(raw)),
    priority: (c, raw) => (c.node.priority = parseInteger(raw, -1_000_000, 1_000_000)),
    port: (c, raw) => (c.node.port = parsePort(raw)),
    bind: (c, raw) => (c.node.bind = raw.trim()),
    state_dir: path((c, p) => (c.node.stateDir = p)),
    metrics: (c, raw) => {
      const v = raw.trim();
      if (['', 'off', 'no', 'false', '0'].includes(v.toLowerCase())) c.node.metrics = null;
      else {
        parseHostPort(v, 0);
        if (!/:\d+$/.test(v)) throw new Error(`"${raw}" needs a port — write HOST:PORT, e.g. 127.0.0.1:9412`);
        c.node.metrics = v;
      }
    },
    watchdog: (c, raw) => {
      const v = raw.trim().toLowerCase();
      if (v !== 'off' && v !== 'auto' && v !== 'required') throw new Error(`"${raw}" is not a watchdog mode — write off, auto or required`);
      c.node.watchdog = v;
    },
    watchdog_device: path((c, p) => (c.node.watchdogDevice = p)),
  },
  cluster: {
    id: (c, raw) => (c.cluster.id = parseInteger(raw, 0, 2 ** 31 - 1)),
    secret: (c, raw) => (c.cluster.secret = raw.trim()),
    secret_file: (c, raw, ctx) => {
      const p = resolve(ctx.dir, raw.trim());
      try {
        c.cluster.secret = readFileSync(p, 'utf8').trim();
      } catch (e) {
        throw new Error(`cannot read ${p}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      }
    },
    transport: (c, raw) => (c.cluster.transport = parseTransport(raw)),
    quorum: (c, raw) => (c.cluster.quorum = parseInteger(raw, 1, 64)),
    fence: path((c, p) => (c.cluster.fence = p)),
    handlers: path((c, p) => (c.cluster.handlers = p)),
    tls_cert: path((c, p) => (c.cluster.tlsCert = p)),
    tls_key: path((c, p) => (c.cluster.tlsKey = p)),
    tls_ca: path((c, p) => (c.cluster.tlsCa = p)),
  },
  service: {
    folder: path((c, p) => (c.service.folder = p)),
    start_timeout: dur((c, ms) => (c.service.startTimeoutMs = ms)),
    stop_timeout: dur((c, ms) => (c.service.stopTimeoutMs = ms)),
    status_timeout: dur((c, ms) => (c.service.statusTimeoutMs = ms)),
    promote_timeout: dur((c, ms) => (c.service.promoteTimeoutMs = ms)),
    demote_timeout: dur((c, ms) => (c.service.demoteTimeoutMs = ms)),
    failed_timeout: dur((c, ms) => (c.service.failedTimeoutMs = ms)),
    auto_recover: (c, raw) => (c.service.autoRecover = parseInteger(raw, 0, 1000)),
    auto_recover_wait: dur((c, ms) => (c.service.autoRecoverWaitMs = ms)),
    failcount_reset: dur((c, ms) => (c.service.failcountResetMs = ms)),
    promote_max_lag: (c, raw) => (c.service.promoteMaxLag = parseInteger(raw, 0, Number.MAX_SAFE_INTEGER)),
  },
  time: {
    heartbeat_interval: dur((c, ms) => (c.time.heartbeatIntervalMs = ms)),
    leader_timeout: dur((c, ms) => (c.time.leaderTimeoutMs = ms)),
    master_lease: dur((c, ms) => (c.time.masterLeaseMs = ms)),
    status_interval: dur((c, ms) => (c.time.statusIntervalMs = ms)),
    failure_promotion_timeout: dur((c, ms) => (c.time.failurePromotionTimeoutMs = ms)),
  },
};

/**
 * `name=host:port` entries, comma or space separated. Without `name=`, the
 * host is the name (node names default to the hostname, so a list of host
 * names just works).
 */
export function parseTransport(raw: string, defaultPort = 42012): PeerAddress[] {
  const out: PeerAddress[] = [];
  for (const entry of raw.split(/[\s,]+/).filter((x) => x !== '')) {
    const eq = entry.indexOf('=');
    const name = eq >= 0 ? entry.slice(0, eq) : null;
    const addr = parseHostPort(eq >= 0 ? entry.slice(eq + 1) : entry, defaultPort);
    const n = name ?? addr.host;
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(n)) throw new Error(`"${entry}": "${n}" is not a valid node name — write NAME=HOST[:PORT]`);
    out.push({ name: n, ...addr });
  }
  if (out.length === 0) throw new Error('lists no node — write NAME=HOST[:PORT] for every node, this one included');
  return out;
}

/** The first configuration file found on the search path, or null. */
export function findConfigFile(files: string[] | undefined): string | null {
  const list = files !== undefined && files.length > 0 ? files : CONFIG_SEARCH;
  for (const f of list) if (existsSync(f)) return resolve(f);
  if (files !== undefined && files.length > 0) {
    throw new ConfigError(files[0]!, null, null, 'file not found — check the -f path');
  }
  return null;
}

/** Parse INI text into a validated configuration. */
export function parseConfig(text: string, file: string, flags: ConfigFlags = {}): LoadedConfig {
  const c = defaultConfig();
  c.file = file;
  const warnings: string[] = [];
  let doc: Record<string, unknown>;
  try {
    doc = ini.parse(text) as Record<string, unknown>;
  } catch (e) {
    throw new ConfigError(file, null, null, `not valid INI: ${(e as Error).message}`);
  }
  const ctx: KeyContext = { dir: resolve(file, '..'), set: new Set() };
  for (const [section, body] of Object.entries(doc)) {
    const keys = KEYS[section];
    if (keys === undefined || typeof body !== 'object' || body === null) {
      const known = Object.keys(KEYS).map((s) => `[${s}]`).join(' ');
      throw new ConfigError(file, section, null, `unknown section (or a key outside any section) — koi knows ${known}`);
    }
    for (const [key, value] of Object.entries(body as Record<string, unknown>)) {
      const set = keys[key];
      if (set === undefined) {
        throw new ConfigError(file, section, key, `unknown key — valid keys in [${section}]: ${Object.keys(keys).join(', ')}`);
      }
      if (typeof value !== 'string' && typeof value !== 'boolean') {
        throw new ConfigError(file, section, key, 'given more than once or as a list — give it once');
      }
      try {
        set(c, String(value), ctx);
      } catch (e) {
        throw new ConfigError(file, section, key, (e as Error).message);
      }
      ctx.set.add(`${section}.${key}`);
    }
  }
  if (ctx.set.has('cluster.secret') && ctx.set.has('cluster.secret_file')) {
    throw new ConfigError(file, 'cluster', 'secret', 'both secret and secret_file are set — keep one');
  }
  if (flags.name !== undefined) c.node.name = flags.name;
  if (flags.port !== undefined) {
    c.node.port = flags.port;
    ctx.set.add('node.port');
  }
  if (flags.services !== undefined) c.service.folder = resolve(flags.services);
  validate(c, file, ctx.set, warnings, flags.client === true);
  if (ctx.set.has('cluster.secret')) warnIfShared(file, 'it holds the cluster secret', warnings);
  return { config: c, warnings, notes: timingNotes(c) };
}

/**
 * The rule for timings across nodes. master_lease and demote_timeout travel
 * in every hello and the leader waits out the longest it has heard of, so a
 * difference is safe but slows failover; leader_timeout and
 * heartbeat_interval do not travel, and a new leader bounds its
 * predecessors' leases with the quorum window its own values give.
 */
function timingNotes(c: KoiConfig): string[] {
  const t = c.time;
  return [
    `master_lease (${formatDuration(t.masterLeaseMs)}) and demote_timeout (${formatDuration(c.service.demoteTimeoutMs)}) should be the same on every node: ` +
      `the leader waits out the longest any node reports, so one node with longer values slows every failover without a fence ` +
      `(about master_lease + demote_timeout: ${seconds(t.masterLeaseMs + c.service.demoteTimeoutMs)} here); koi status shows when they differ`,
    `leader_timeout (${formatDuration(t.leaderTimeoutMs)}), heartbeat_interval (${formatDuration(t.heartbeatIntervalMs)}) and quorum (${c.cluster.quorum}) must be the same on every node: ` +
      `they are not exchanged; a new leader bounds the leases its predecessors granted by the quorum window its own timings give, and any two quorums must share an elector`,
  ];
}

/** 31.5s rather than 31500ms, for sums of durations. */
function seconds(ms: number): string {
  return ms % 1000 === 0 || ms < 1000 ? formatDuration(ms) : `${ms / 1000}s`;
}

function warnIfShared(p: string, why: string, warnings: string[]): void {
  try {
    if ((statSync(p).mode & 0o004) !== 0) warnings.push(`${p} is readable by every user and ${why} — chmod o-r ${p}`);
  } catch {
    // a missing file is reported elsewhere
  }
}

function validate(c: KoiConfig, file: string, set: Set<string>, warnings: string[], client: boolean): void {
  const err = (section: string, key: string, problem: string) => new ConfigError(file, section, key, problem);
  const t = c.time;
  if (t.leaderTimeoutMs <= t.heartbeatIntervalMs) {
    throw err('time', 'leader_timeout', `${formatDuration(t.leaderTimeoutMs)} must be longer than heartbeat_interval (${formatDuration(t.heartbeatIntervalMs)}) — raise leader_timeout or lower heartbeat_interval`);
  }
  if (t.masterLeaseMs < 2 * t.heartbeatIntervalMs) {
    throw err('time', 'master_lease', `${formatDuration(t.masterLeaseMs)} must be at least twice heartbeat_interval (${formatDuration(t.heartbeatIntervalMs)}) — raise master_lease or lower heartbeat_interval`);
  }
  if (t.heartbeatIntervalMs < 10) throw err('time', 'heartbeat_interval', 'must be at least 10ms');
  if (t.masterLeaseMs < t.leaderTimeoutMs + 2 * t.heartbeatIntervalMs) {
    warnings.push(`[time] master_lease ${formatDuration(t.masterLeaseMs)} is shorter than leader_timeout + 2 × heartbeat_interval (${formatDuration(t.leaderTimeoutMs + 2 * t.heartbeatIntervalMs)}): when the leader fails, the master may demote before a new leader renews it`);
  }
  const holdMs = t.masterLeaseMs + c.service.demoteTimeoutMs;
  if (holdMs * CLOCK_RATE_BOUND > CLOCK_RATE_RESERVE_MS) {
    const tolerated = ((CLOCK_RATE_RESERVE_MS / holdMs) * 100).toFixed(2);
    warnings.push(
      `[time] master_lease + [service] demote_timeout is ${seconds(holdMs)}: the leader's safety margin covers clocks whose rates differ by ` +
        `${CLOCK_RATE_BOUND * 100} % only up to ${seconds(CLOCK_RATE_RESERVE_MS / CLOCK_RATE_BOUND)}; at ${seconds(holdMs)} the machines' clock rates must stay within ${tolerated} % ` +
        `of each other (NTP keeps them far closer) — or shorten them`,
    );
  }
  if (c.cluster.secret === '') {
    throw err('cluster', 'secret', 'missing — set secret (or secret_file) to the same value on every node; `koi keygen` prints one');
  }
  if (Buffer.byteLength(c.cluster.secret) < 16) {
    throw err('cluster', set.has('cluster.secret_file') ? 'secret_file' : 'secret', `is ${Buffer.byteLength(c.cluster.secret)} bytes; use at least 16 — \`koi keygen\` prints a good one`);
  }
  if (c.cluster.transport.length === 0) {
    throw err('cluster', 'transport', 'missing — list every node as NAME=HOST[:PORT], this one included');
  }
  const seen = new Map<string, PeerAddress>();
  for (const p of c.cluster.transport) {
    if (seen.has(p.name)) throw err('cluster', 'transport', `node name ${p.name} appears twice — every node needs its own name`);
    seen.set(p.name, p);
  }
  const self = seen.get(c.node.name);
  if (self === undefined) {
    throw err('cluster', 'transport', `this node (${c.node.name}) is missing — add ${c.node.name}=HOST:PORT, or set [node] name to one of ${[...seen.keys()].join(', ')}`);
  }
  if (!set.has('node.port')) c.node.port = self.port;
  else if (self.port !== c.node.port) {
    throw err('cluster', 'transport', `lists ${c.node.name} on port ${self.port} but [node] port is ${c.node.port} — make them agree`);
  }
  const majority = Math.floor(c.cluster.transport.length / 2) + 1;
  if (!set.has('cluster.quorum')) c.cluster.quorum = majority;
  else if (c.cluster.quorum > c.cluster.transport.length) {
    throw err('cluster', 'quorum', `${c.cluster.quorum} is more than the ${c.cluster.transport.length} nodes in transport`);
  } else if (c.cluster.quorum < majority) {
    warnings.push(`[cluster] quorum ${c.cluster.quorum} is less than a majority of ${c.cluster.transport.length}: two partitions can each elect a leader and promote a master — use this only for 2-node clusters, with a fence`);
  }
  const tls = [c.cluster.tlsCert, c.cluster.tlsKey, c.cluster.tlsCa].filter((x) => x !== null).length;
  if (tls !== 0 && tls !== 3) throw err('cluster', 'tls_cert', 'set tls_cert, tls_key and tls_ca together, or none of them');
  if (client) return;
  for (const [key, p] of [['tls_cert', c.cluster.tlsCert], ['tls_key', c.cluster.tlsKey], ['tls_ca', c.cluster.tlsCa]] as const) {
    if (p !== null && !existsSync(p)) throw err('cluster', key, `${p} does not exist`);
  }
  if (c.cluster.fence !== null) {
    try {
      accessSync(c.cluster.fence, constants.X_OK);
    } catch {
      throw err('cluster', 'fence', `${c.cluster.fence} is missing or not executable — chmod +x it or remove the key`);
    }
  }
  if (c.node.runner) {
    let isDir = false;
    try {
      isDir = statSync(c.service.folder).isDirectory();
    } catch {
      isDir = false;
    }
    if (!isDir) {
      throw err('service', 'folder', `${c.service.folder} does not exist or is not a directory — create it (it may be empty) or set [node] runner = false`);
    }
  }
}

/** Find, read and validate the configuration. */
export function loadConfig(files: string[] | undefined, flags: ConfigFlags = {}): LoadedConfig {
  const file = findConfigFile(files);
  if (file === null) {
    throw new ConfigError(CONFIG_SEARCH.join(' or '), null, null, 'no configuration file found — pass -f FILE (see etc/koi.conf for an example)');
  }
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(file, null, null, `cannot read it: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return parseConfig(text, file, flags);
}
