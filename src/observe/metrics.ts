// Prometheus text at /metrics (prom-client, one registry per daemon) and a
// small self-refreshing status page at /, on [node] metrics = HOST:PORT.
// Loaded only when that key is set (src/observe/recorder.ts).
import { createServer, type Server } from 'node:http';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { KoiNode } from '../core/node';
import type { StatusJson } from '../admin-types';
import type { MetricsRecorder } from './recorder';

/** The protocol koinode speaks (koi_build_info). */
export const PROTOCOL_VERSION = '1.1';

/** Script durations, seconds: from a quick status check to a slow promote. */
export const SCRIPT_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];
/** Heartbeat round trips, seconds: loopback to a struggling WAN link. */
export const RTT_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

/** What is read at scrape time. */
export interface MetricsSource {
  status(): StatusJson;
  core: Pick<KoiNode, 'isLeader' | 'leaderViews' | 'quorumRttMs' | 'toleratedRttMs' | 'windowMs'>;
  traffic(): { bytesSent: number; bytesReceived: number; messagesSent: number; messagesReceived: number };
  handlerRuns(): { ok: number; failed: number };
}

export interface MetricsOptions {
  node: string;
  version: string;
  source: MetricsSource;
}

type Labels = Record<string, string>;

export class Metrics implements MetricsRecorder {
  readonly registry = new Registry();
  private readonly failovers: Counter;
  private readonly fences: Counter<'result'>;
  private readonly scriptRuns: Counter<'event'>;
  private readonly scriptSeconds: Counter<'event'>;
  private readonly scriptFailures: Counter<'service' | 'event'>;
  private readonly scriptDuration: Histogram<'event'>;
  private readonly rtt: Histogram<'node'>;
  /** The status document of the scrape in progress (one per scrape, however many gauges read it). */
  private scrape: StatusJson | null = null;

  constructor(private readonly opts: MetricsOptions) {
    const registers = [this.registry];
    const src = opts.source;
    const self = opts.node;
    const st = () => (this.scrape ??= src.status());
    // The event loop lag monitor samples at the daemon's own tick (100 ms), not
    // prom-client's 10 ms: 100 wake-ups a second cost an idle koinode about
    // 0.6 % of a core (measured beside a 3-node cluster); stalls shorter than
    // a tick do not matter to koi.
    collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: 100 });
    new Gauge({ name: 'koi_build_info', help: 'koinode version, node name, Node.js version and protocol version (always 1)', labelNames: ['version', 'node', 'nodejs', 'protocol'], registers }).set(
      { version: opts.version, node: self, nodejs: process.version, protocol: PROTOCOL_VERSION },
      1,
    );
    // State, computed at scrape time.
    const gauge = (name: string, help: string, labelNames: string[], samples: () => [Labels, number][]) =>
      new Gauge({
        name,
        help,
        labelNames,
        registers,
        collect() {
          this.reset();
          // A gauge without labels would show 0: a leader-only one shows nothing elsewhere.
          if (labelNames.length === 0) this.remove();
          for (const [l, v] of samples()) this.set(l, Number.isFinite(v) ? v : 0);
        },
      });
    gauge('koi_leader', '1 when this node is the leader', [], () => [[{}, src.core.isLeader() ? 1 : 0]]);
    gauge('koi_epoch', 'epoch this node follows', [], () => [[{}, st().cluster.epoch]]);
    gauge('koi_maintenance', '1 while the cluster is in maintenance', [], () => [[{}, st().cluster.maintenance ? 1 : 0]]);
    gauge('koi_master', '1 for the designated master', ['node'], () => (st().cluster.master === null ? [] : [[{ node: st().cluster.master! }, 1]]));
    gauge('koi_quorum_reachable', 'electors this node reaches (leader view), self included', [], () => [[{}, st().cluster.quorum.reachable]]);
    gauge('koi_node_state', '1 for each node in its current state', ['node', 'state'], () => st().nodes.map((n) => [{ node: n.name, state: n.state }, 1]));
    gauge('koi_node_failcount', 'recent failures of a runner', ['node'], () => st().nodes.map((n) => [{ node: n.name }, n.failcount]));
    gauge('koi_service_state', '1 for each service in its current state', ['node', 'service', 'state'], () =>
      st().nodes.flatMap((n) => n.services.map((s): [Labels, number] => [{ node: n.name, service: s.name, state: s.state }, 1])),
    );
    gauge('koi_heartbeat_rtt_seconds', 'last heartbeat round trip (leader only)', ['node'], () => {
      const out: [Labels, number][] = [];
      for (const [name, v] of src.core.leaderViews() ?? []) if (v.rttMs !== null && name !== self) out.push([{ node: name }, v.rttMs / 1000]);
      return out;
    });
    const leading = () => src.core.isLeader();
    gauge('koi_quorum_rtt_seconds', 'round trip within which a quorum of electors answers (leader only)', [], () => {
      const q = leading() ? src.core.quorumRttMs() : null;
      return q === null ? [] : [[{}, q / 1000]];
    });
    gauge('koi_tolerated_rtt_seconds', 'longest round trip to a quorum the timings tolerate (leader only)', [], () => (leading() ? [[{}, src.core.toleratedRttMs() / 1000]] : []));
    gauge('koi_ack_window_seconds', 'acknowledgement window the leader announces (leader only)', [], () => (leading() ? [[{}, src.core.windowMs() / 1000]] : []));
    // Counters kept elsewhere (transport, handlers), read at scrape time.
    const counter = (name: string, help: string, labelNames: string[], samples: () => [Labels, number][]) =>
      new Counter({
        name,
        help,
        labelNames,
        registers,
        collect() {
          this.reset();
          for (const [l, v] of samples()) this.inc(l, Number.isFinite(v) && v > 0 ? v : 0);
        },
      });
    counter('koi_bytes_sent_total', 'bytes sent to peers', [], () => [[{}, src.traffic().bytesSent]]);
    counter('koi_bytes_received_total', 'bytes received from peers', [], () => [[{}, src.traffic().bytesReceived]]);
    counter('koi_messages_sent_total', 'messages sent to peers', [], () => [[{}, src.traffic().messagesSent]]);
    counter('koi_messages_received_total', 'messages received from peers', [], () => [[{}, src.traffic().messagesReceived]]);
    counter('koi_handler_runs_total', 'cluster event handler runs', ['result'], () => {
      const h = src.handlerRuns();
      return [[{ result: 'ok' }, h.ok], [{ result: 'failed' }, h.failed]];
    });
    // Counted here, as things happen.
    this.failovers = new Counter({ name: 'koi_failovers_total', help: 'masters designated by this node as leader', registers });
    this.scriptRuns = new Counter({ name: 'koi_script_runs_total', help: 'finished service scripts', labelNames: ['event'], registers });
    this.scriptSeconds = new Counter({ name: 'koi_script_seconds_total', help: 'time spent in service scripts', labelNames: ['event'], registers });
    this.scriptFailures = new Counter({ name: 'koi_script_failures_total', help: 'failed service scripts', labelNames: ['service', 'event'], registers });
    this.fences = new Counter({ name: 'koi_fence_runs_total', help: 'fence runs', labelNames: ['result'], registers });
    this.fences.inc({ result: 'ok' }, 0);
    this.fences.inc({ result: 'failed' }, 0);
    this.scriptDuration = new Histogram({ name: 'koi_script_duration_seconds', help: 'duration of finished service scripts, per event', labelNames: ['event'], buckets: SCRIPT_BUCKETS, registers });
    // koi_heartbeat_rtt_seconds is the gauge of the last round trip (kept as it was): the histogram has its own name.
    this.rtt = new Histogram({ name: 'koi_heartbeat_round_trip_seconds', help: 'heartbeat round trips measured by the leader, one per acknowledgement, per node', labelNames: ['node'], buckets: RTT_BUCKETS, registers });
  }

  failover(): void {
    this.failovers.inc();
  }

  fence(ok: boolean): void {
    this.fences.inc({ result: ok ? 'ok' : 'failed' });
  }

  scriptDone(service: string, event: string, durationMs: number, failed: boolean): void {
    const s = durationMs / 1000;
    this.scriptRuns.inc({ event });
    this.scriptSeconds.inc({ event }, s);
    this.scriptDuration.observe({ event }, s);
    if (failed) this.scriptFailures.inc({ service, event });
  }

  heartbeatRtt(node: string, rttMs: number): void {
    this.rtt.observe({ node }, rttMs / 1000);
  }

  status(): StatusJson {
    return this.opts.source.status();
  }

  /** The Prometheus text of every metric. */
  async render(): Promise<string> {
    this.scrape = null;
    try {
      return await this.registry.metrics();
    } finally {
      this.scrape = null;
    }
  }
}

const COLORS: Record<string, string> = {
  master: '#2e7d32',
  promoted: '#2e7d32',
  slave: '#1565c0',
  started: '#1565c0',
  live: '#1565c0',
  failed: '#c62828',
  failing: '#c62828',
  disconnected: '#c62828',
};
const h = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const badge = (s: string) => `<span class="b" style="background:${COLORS[s] ?? '#757575'}">${h(s)}</span>`;

export function renderPage(st: StatusJson): string {
  const c = st.cluster;
  const rows = st.nodes
    .map(
      (n) => `<tr><td>${h(n.name)}${n.leader ? ' <small>leader</small>' : ''}</td><td>${h(n.address)}</td><td>${badge(n.state)}</td>` +
        `<td>${n.reachable ? `${n.lastSeenMs ?? 0} ms` : 'unreachable'}</td><td>${n.failcount}</td>` +
        `<td>${n.services.map((s) => `${h(s.name)} ${badge(s.state)}${s.running ? ` <small>(${h(s.running)})</small>` : ''}`).join(' ')}</td></tr>`,
    )
    .join('\n');
  return `<!doctype html>
<html><head><meta charset="utf-8"><meta http-equiv="refresh" content="2"><title>koi — cluster ${c.id}</title>
<style>body{font:14px system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse}td,th{padding:.4em .8em;border-bottom:1px solid #ddd;text-align:left}
.b{color:#fff;border-radius:3px;padding:1px 6px;font-size:12px}.head span{margin-right:1.5em}.warn{background:#fff3e0;padding:.5em;border-left:4px solid #ef6c00}</style></head>
<body><h1>koi cluster ${c.id}</h1>
<p class="head"><span>epoch <b>${c.epoch}</b></span><span>leader <b id="leader">${h(c.leader ?? 'none')}</b></span><span>master <b id="master">${h(c.master ?? 'none')}</b></span>
<span>quorum ${c.quorum.reachable}/${c.quorum.electors} (needs ${c.quorum.required})</span></p>
${c.maintenance ? '<p class="warn">Maintenance: no script runs, no role changes.</p>' : ''}${c.manualMaster ? '<p class="warn">Manual mode: no master until koi elect or koi promote.</p>' : ''}${st.partial ? `<p class="warn">Partial view from ${h(st.answeredBy)}: no leader here.</p>` : ''}
<table><tr><th>node</th><th>address</th><th>state</th><th>last seen</th><th>failures</th><th>services</th></tr>
${rows}
</table><p><small>answered by ${h(st.answeredBy)} · refreshes every 2 s · <a href="/metrics">/metrics</a></small></p></body></html>
`;
}

export function serveMetrics(hostPort: string, m: Metrics, onError: (e: Error) => void): Server {
  const i = hostPort.lastIndexOf(':');
  const host = hostPort.slice(0, i).replace(/^\[|\]$/g, '');
  const port = Number(hostPort.slice(i + 1));
  const server = createServer((req, res) => {
    const fail = (e: unknown) => {
      if (!res.headersSent) res.writeHead(500);
      res.end(`${(e as Error).message}\n`);
    };
    try {
      if (req.url === '/metrics') {
        m.render().then((text) => res.writeHead(200, { 'content-type': m.registry.contentType }).end(text), fail);
      } else if (req.url === '/' || req.url?.startsWith('/?')) {
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(renderPage(m.status()));
      } else if (req.url === '/status.json') {
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(m.status()));
      } else {
        res.writeHead(404).end('not found: try / or /metrics\n');
      }
    } catch (e) {
      fail(e);
    }
  });
  server.on('error', onError);
  server.listen(port, host);
  return server;
}
