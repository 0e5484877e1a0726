// What the daemon tells the metrics, in a few calls. The counters and
// histograms behind them (prom-client, src/observe/metrics.ts) are loaded only
// on a node with `[node] metrics = HOST:PORT`; elsewhere the calls do nothing.
import type { Server } from 'node:http';
import type * as MetricsModule from './metrics';

export interface MetricsRecorder {
  /** The leader designated a master. */
  failover(): void;
  fence(ok: boolean): void;
  /** A service script finished; `failed` as koi counts failures (a status exit of 90..93 is an answer, not a failure). */
  scriptDone(service: string, event: string, durationMs: number, failed: boolean): void;
  /** The leader took in a heartbeat acknowledgement: its round trip. */
  heartbeatRtt(node: string, rttMs: number): void;
}

export const noMetrics: MetricsRecorder = {
  failover: () => {},
  fence: () => {},
  scriptDone: () => {},
  heartbeatRtt: () => {},
};

export interface MetricsEndpoint {
  recorder: MetricsRecorder;
  /** Serve /metrics, / and /status.json on HOST:PORT. */
  serve(hostPort: string, onError: (e: Error) => void): Server;
}

/** Counters and histograms for one daemon (their own registry, not prom-client's global one). */
export function createMetrics(opts: MetricsModule.MetricsOptions): MetricsEndpoint {
  const { Metrics, serveMetrics } = require('./metrics') as typeof MetricsModule;
  const m = new Metrics(opts);
  return { recorder: m, serve: (hostPort, onError) => serveMetrics(hostPort, m, onError) };
}
