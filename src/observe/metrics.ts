// Prometheus text at /metrics and a small self-refreshing status page at /,
// on [node] metrics = HOST:PORT. The exposition format is simple enough to
// write by hand, which keeps the dependency list to what the user asked for.
import { createServer, type Server } from 'node:http';
import type { StatusJson } from '../admin-types';

export interface MetricsSource {
  status(): StatusJson;
  isLeader(): boolean;
  counters(): MetricCounters;
}

export interface MetricCounters {
  failovers: number;
  bytesSent: number;
  bytesReceived: number;
  messagesSent: number;
  messagesReceived: number;
  /** Per event: count and total seconds of finished scripts. */
  scripts: Map<string, { count: number; seconds: number }>;
  /** Per service/event: failures. */
  scriptFailures: Map<string, number>;
  /** Leader: last heartbeat round trip per node, in seconds. */
  rttSeconds: Map<string, number>;
  /** Leader: round trip to a quorum, what the timings tolerate, the window announced (seconds). */
  network: { quorumRttSeconds: number | null; toleratedRttSeconds: number; windowSeconds: number } | null;
  handlerRuns: { ok: number; failed: number };
  fences: { ok: number; failed: number };
}

export function newCounters(): MetricCounters {
  return {
    failovers: 0,
    bytesSent: 0,
    bytesReceived: 0,
    messagesSent: 0,
    messagesReceived: 0,
    scripts: new Map(),
    scriptFailures: new Map(),
    rttSeconds: new Map(),
    network: null,
    handlerRuns: { ok: 0, failed: 0 },
    fences: { ok: 0, failed: 0 },
  };
}

const esc = (v: string) => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
const labels = (l: Record<string, string>) => `{${Object.entries(l).map(([k, v]) => `${k}="${esc(v)}"`).join(',')}}`;

export function renderMetrics(src: MetricsSource): string {
  const st = src.status();
  const c = src.counters();
  const out: string[] = [];
  const metric = (name: string, type: 'gauge' | 'counter', help: string, samples: [Record<string, string>, number][]) => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [l, v] of samples) out.push(`${name}${Object.keys(l).length > 0 ? labels(l) : ''} ${Number.isFinite(v) ? v : 0}`);
  };
  metric('koi_leader', 'gauge', '1 when this node is the leader', [[{}, src.isLeader() ? 1 : 0]]);
  metric('koi_epoch', 'gauge', 'epoch this node follows', [[{}, st.cluster.epoch]]);
  metric('koi_maintenance', 'gauge', '1 while the cluster is in maintenance', [[{}, st.cluster.maintenance ? 1 : 0]]);
  metric('koi_master', 'gauge', '1 for the designated master', st.cluster.master === null ? [] : [[{ node: st.cluster.master }, 1]]);
  metric('koi_quorum_reachable', 'gauge', 'electors this node reaches (leader view), self included', [[{}, st.cluster.quorum.reachable]]);
  metric('koi_node_state', 'gauge', '1 for each node in its current state', st.nodes.map((n) => [{ node: n.name, state: n.state }, 1]));
  metric('koi_node_failcount', 'gauge', 'recent failures of a runner', st.nodes.map((n) => [{ node: n.name }, n.failcount]));
  metric(
    'koi_service_state',
    'gauge',
    '1 for each service in its current state',
    st.nodes.flatMap((n) => n.services.map((s): [Record<string, string>, number] => [{ node: n.name, service: s.name, state: s.state }, 1])),
  );
  metric('koi_failovers_total', 'counter', 'masters designated by this node as leader', [[{}, c.failovers]]);
  metric('koi_script_runs_total', 'counter', 'finished service scripts', [...c.scripts].map(([ev, v]) => [{ event: ev }, v.count]));
  metric('koi_script_seconds_total', 'counter', 'time spent in service scripts', [...c.scripts].map(([ev, v]) => [{ event: ev }, v.seconds]));
  metric('koi_script_failures_total', 'counter', 'failed service scripts', [...c.scriptFailures].map(([k, v]) => {
    const [service, event] = k.split('/') as [string, string];
    return [{ service, event }, v];
  }));
  metric('koi_heartbeat_rtt_seconds', 'gauge', 'last heartbeat round trip (leader only)', [...c.rttSeconds].map(([n, v]) => [{ node: n }, v]));
  if (c.network !== null) {
    if (c.network.quorumRttSeconds !== null) metric('koi_quorum_rtt_seconds', 'gauge', 'round trip within which a quorum of electors answers (leader only)', [[{}, c.network.quorumRttSeconds]]);
    metric('koi_tolerated_rtt_seconds', 'gauge', 'longest round trip to a quorum the timings tolerate (leader only)', [[{}, c.network.toleratedRttSeconds]]);
    metric('koi_ack_window_seconds', 'gauge', 'acknowledgement window the leader announces (leader only)', [[{}, c.network.windowSeconds]]);
  }
  metric('koi_bytes_sent_total', 'counter', 'bytes sent to peers', [[{}, c.bytesSent]]);
  metric('koi_bytes_received_total', 'counter', 'bytes received from peers', [[{}, c.bytesReceived]]);
  metric('koi_messages_sent_total', 'counter', 'messages sent to peers', [[{}, c.messagesSent]]);
  metric('koi_messages_received_total', 'counter', 'messages received from peers', [[{}, c.messagesReceived]]);
  metric('koi_handler_runs_total', 'counter', 'cluster event handler runs', [[{ result: 'ok' }, c.handlerRuns.ok], [{ result: 'failed' }, c.handlerRuns.failed]]);
  metric('koi_fence_runs_total', 'counter', 'fence runs', [[{ result: 'ok' }, c.fences.ok], [{ result: 'failed' }, c.fences.failed]]);
  return `${out.join('\n')}\n`;
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

export function serveMetrics(hostPort: string, src: MetricsSource, onError: (e: Error) => void): Server {
  const i = hostPort.lastIndexOf(':');
  const host = hostPort.slice(0, i).replace(/^\[|\]$/g, '');
  const port = Number(hostPort.slice(i + 1));
  const server = createServer((req, res) => {
    try {
      if (req.url === '/metrics') {
        res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(renderMetrics(src));
      } else if (req.url === '/' || req.url?.startsWith('/?')) {
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(renderPage(src.status()));
      } else if (req.url === '/status.json') {
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(src.status()));
      } else {
        res.writeHead(404).end('not found: try / or /metrics\n');
      }
    } catch (e) {
      res.writeHead(500).end(`${(e as Error).message}\n`);
    }
  });
  server.on('error', onError);
  server.listen(port, host);
  return server;
}
