// The typed configuration and its defaults (SPEC section 2).
import { hostname } from 'node:os';

export interface PeerAddress {
  name: string;
  host: string;
  port: number;
}

export interface KoiConfig {
  /** The file it came from, or null for defaults and flags only. */
  file: string | null;
  node: {
    name: string;
    elector: boolean;
    runner: boolean;
    priority: number;
    port: number;
    bind: string;
    stateDir: string;
    /** `HOST:PORT` of the metrics and status page, or null. */
    metrics: string | null;
    /** Self-fencing with a watchdog device (docs/OPERATIONS.md, "Fencing and watchdogs"). */
    watchdog: 'off' | 'auto' | 'required';
    watchdogDevice: string;
  };
  cluster: {
    id: number;
    secret: string;
    transport: PeerAddress[];
    /** Electors (self included) a leader must reach. */
    quorum: number;
    fence: string | null;
    handlers: string;
    tlsCert: string | null;
    tlsKey: string | null;
    tlsCa: string | null;
  };
  service: {
    folder: string;
    startTimeoutMs: number;
    stopTimeoutMs: number;
    statusTimeoutMs: number;
    promoteTimeoutMs: number;
    demoteTimeoutMs: number;
    failedTimeoutMs: number;
    autoRecover: number;
    autoRecoverWaitMs: number;
    failcountResetMs: number;
    /** A runner whose KOI_SCORE is more than this behind the best known is not chosen (null: no limit). */
    promoteMaxLag: number | null;
  };
  time: {
    heartbeatIntervalMs: number;
    leaderTimeoutMs: number;
    masterLeaseMs: number;
    statusIntervalMs: number;
    failurePromotionTimeoutMs: number;
  };
}

export const DEFAULT_PORT = 42012;
export const DEFAULT_CLUSTER_ID = 13;
export const CONFIG_SEARCH = ['./koi.conf', '/etc/koi/koi.conf'];

export function defaultConfig(): KoiConfig {
  return {
    file: null,
    node: {
      name: hostname(),
      elector: true,
      runner: true,
      priority: 0,
      port: DEFAULT_PORT,
      bind: '0.0.0.0',
      stateDir: '/var/lib/koi',
      metrics: null,
      watchdog: 'auto',
      watchdogDevice: '/dev/watchdog',
    },
    cluster: {
      id: DEFAULT_CLUSTER_ID,
      secret: '',
      transport: [],
      quorum: 0,
      fence: null,
      handlers: '/etc/koi/handlers',
      tlsCert: null,
      tlsKey: null,
      tlsCa: null,
    },
    service: {
      folder: '/etc/koi/services',
      startTimeoutMs: 60_000,
      stopTimeoutMs: 60_000,
      statusTimeoutMs: 20_000,
      promoteTimeoutMs: 10_000,
      demoteTimeoutMs: 5_000,
      failedTimeoutMs: 20_000,
      autoRecover: 10,
      autoRecoverWaitMs: 10_000,
      failcountResetMs: 30 * 60_000,
      promoteMaxLag: null,
    },
    time: {
      heartbeatIntervalMs: 200,
      leaderTimeoutMs: 1000,
      masterLeaseMs: 1500,
      statusIntervalMs: 5000,
      failurePromotionTimeoutMs: 60_000,
    },
  };
}

/** The peer entry of this node. */
export function selfPeer(c: KoiConfig): PeerAddress {
  const p = c.cluster.transport.find((x) => x.name === c.node.name);
  if (p === undefined) throw new Error(`node ${c.node.name} is not in [cluster] transport`);
  return p;
}

export interface TlsFiles {
  cert: string;
  key: string;
  ca: string;
}

/** The TLS files, when all three are configured (TLS is off otherwise). */
export function tlsFiles(c: Pick<KoiConfig, 'cluster'>): TlsFiles | null {
  const { tlsCert, tlsKey, tlsCa } = c.cluster;
  return tlsCert !== null && tlsKey !== null && tlsCa !== null ? { cert: tlsCert, key: tlsKey, ca: tlsCa } : null;
}
