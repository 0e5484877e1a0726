// The metrics the operations guide lists and no other test reads, scraped
// from real koinodes: koi_epoch, script seconds and failures, bytes
// received, handler and fence counters, and /status.json; every name koi has
// exported since before prom-client, and what prom-client added (script and
// heartbeat histograms, koi_build_info, the process metrics).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { StatusJson } from '../../src/admin-types';
import { freePorts } from '../../src/demo/local-cluster';
import { VERSION } from '../../src/version';
import { TestCluster } from './harness';
import { addConf, fetchText, readLines, sample, STEADY, until } from './probes';

/** Every metric name of the hand-written exposition: none may go. */
const OLD_NAMES = [
  'koi_leader', 'koi_epoch', 'koi_maintenance', 'koi_master', 'koi_quorum_reachable', 'koi_node_state', 'koi_node_failcount',
  'koi_service_state', 'koi_failovers_total', 'koi_script_runs_total', 'koi_script_seconds_total', 'koi_script_failures_total',
  'koi_heartbeat_rtt_seconds', 'koi_quorum_rtt_seconds', 'koi_tolerated_rtt_seconds', 'koi_ack_window_seconds', 'koi_bytes_sent_total',
  'koi_bytes_received_total', 'koi_messages_sent_total', 'koi_messages_received_total', 'koi_handler_runs_total', 'koi_fence_runs_total',
];

test('metrics: epoch, script seconds and failures, bytes received, handler and fence counters, /status.json', async () => {
  const mports = await freePorts(3);
  const c = await TestCluster.start(undefined, { start: false, extra: STEADY });
  try {
    const fence = join(c.root, 'fence');
    writeFileSync(fence, '#!/bin/sh\necho "$1" >> "$(dirname "$0")/fenced"\nexit 0\n', { mode: 0o755 });
    for (const [i, n] of c.nodes.entries()) {
      addConf(n.conf, 'cluster', [`fence = ${fence}`]);
      addConf(n.conf, 'node', [`metrics = 127.0.0.1:${mports[i]}`]);
      mkdirSync(join(n.dir, 'handlers'));
      writeFileSync(join(n.dir, 'handlers', '10-ok'), '#!/bin/sh\nexit 0\n', { mode: 0o755 });
      writeFileSync(join(n.dir, 'handlers', '20-fail'), '#!/bin/sh\nexit 1\n', { mode: 0o755 });
    }
    // Every start takes at least 0.3 s: the seconds counter must show it.
    c.setFlag('sleep-start', '0.3');
    for (const n of c.nodes) c.startNode(n.name);
    // n1 leads in the end (after a takeover when it started late): wait for it.
    const s = await c.waitFor('settled under n1', (x) => c.settled(x) && x.cluster.leader === 'n1' && x.nodes.every((n) => n.reachable && (n.state === 'slave' || n.state === 'master')), 30_000);
    const L = s.cluster.leader!;
    const url = (name: string, path: string) => `http://127.0.0.1:${mports[c.nodes.findIndex((n) => n.name === name)]}${path}`;
    const metrics = async (name: string) => (await fetchText(url(name, '/metrics'))).body;

    for (const n of c.nodes) {
      const m = await metrics(n.name);
      await until(`koi_epoch on ${n.name} is the cluster's epoch`, async () => sample(await metrics(n.name), 'koi_epoch') === (await c.status())?.cluster.epoch);
      const runs = sample(m, 'koi_script_runs_total{event="start"}') ?? 0;
      const secs = sample(m, 'koi_script_seconds_total{event="start"}') ?? 0;
      assert.ok(runs >= 1, `${n.name} ran start`);
      assert.ok(secs >= 0.3 * runs, `${n.name}: ${runs} start(s) of at least 0.3 s each, counted ${secs} s`);
      const rx = sample(m, 'koi_bytes_received_total') ?? 0;
      assert.ok(rx > 0, `${n.name} received bytes`);
      await until(`${n.name} receives more`, async () => (sample(await metrics(n.name), 'koi_bytes_received_total') ?? 0) > rx);
    }

    // Every old name is still exported, with a type, and the leader's gauges have samples.
    const lm = await metrics(L);
    for (const name of OLD_NAMES) assert.match(lm, new RegExp(`^# TYPE ${name} (gauge|counter)$`, 'm'), `${name} on the leader`);
    const follower = ['n1', 'n2', 'n3'].find((n) => n !== L)!;
    // (Unless a loaded machine changed leaders meanwhile.)
    if (sample(lm, 'koi_leader') === 1) {
      for (const name of ['koi_tolerated_rtt_seconds', 'koi_ack_window_seconds']) assert.ok((sample(lm, name) ?? 0) > 0, `${name} on the leader`);
      assert.ok((sample(lm, `koi_heartbeat_rtt_seconds{node="${follower}"}`) ?? -1) >= 0, 'last round trip to a follower');
    }
    for (const n of c.nodes) {
      const m = await metrics(n.name);
      // Who, what and which protocol.
      const info = new RegExp(`^koi_build_info\\{version="${VERSION.replace(/\./g, '\\.')}",node="${n.name}",nodejs="v[0-9.]+",protocol="1\\.1"\\} 1$`, 'm');
      assert.match(m, info, `${n.name}: koi_build_info`);
      // prom-client's process and Node metrics.
      const rss = sample(m, 'process_resident_memory_bytes') ?? 0;
      assert.ok(rss > 10 * 2 ** 20 && rss < 2 ** 30, `${n.name}: resident memory ${rss} bytes`);
      assert.match(m, /^nodejs_eventloop_lag_seconds /m, `${n.name}: event loop lag`);
      // The script histogram agrees with the counters and grows as scripts run.
      const starts = sample(m, 'koi_script_duration_seconds_count{event="start"}') ?? 0;
      assert.equal(starts, sample(m, 'koi_script_runs_total{event="start"}'), `${n.name}: histogram and counter of start`);
      assert.ok((sample(m, 'koi_script_duration_seconds_sum{event="start"}') ?? 0) >= 0.3 * starts, `${n.name}: start durations`);
      assert.match(m, new RegExp(`^koi_script_duration_seconds_bucket\\{le="\\+Inf",event="start"\\} ${starts}$`, 'm'), `${n.name}: +Inf bucket of start`);
      assert.equal(sample(m, 'koi_script_duration_seconds_bucket{le="0.25",event="start"}'), 0, `${n.name}: no start under 0.25 s`);
      const statuses = sample(m, 'koi_script_duration_seconds_count{event="status"}') ?? 0;
      await until(`${n.name}: status checks counted in the histogram`, async () => (sample(await metrics(n.name), 'koi_script_duration_seconds_count{event="status"}') ?? 0) > statuses, 15_000);
    }
    // The leader puts every acknowledgement's round trip in the histogram.
    const acks = sample(await metrics(L), `koi_heartbeat_round_trip_seconds_count{node="${follower}"}`) ?? 0;
    assert.ok(acks > 0, `the leader measured round trips to ${follower}`);
    await until('more acknowledgements measured', async () => {
      const m = await metrics(L);
      const n = sample(m, `koi_heartbeat_round_trip_seconds_count{node="${follower}"}`) ?? 0;
      const sum = sample(m, `koi_heartbeat_round_trip_seconds_sum{node="${follower}"}`) ?? 0;
      // Loopback: well under a second on average.
      return n > acks && sum / n > 0 && sum / n < 1;
    });

    // Each event ran one handler that succeeded and one that failed.
    await until('leader-changed and sync handled', async () => {
      const m = await metrics(L);
      const ok = sample(m, 'koi_handler_runs_total{result="ok"}') ?? 0;
      return ok >= 2 && sample(m, 'koi_handler_runs_total{result="failed"}') === ok;
    });

    // The status document is the leader's complete view, as koi status gives it.
    await until('/status.json agrees with koi status', async () => {
      const doc = await fetchText(url(L, '/status.json'));
      assert.equal(doc.status, 200);
      assert.match(doc.type, /^application\/json/);
      const j = JSON.parse(doc.body) as StatusJson;
      const k = (await c.status())!;
      assert.equal(j.answeredBy, L);
      assert.equal(j.partial, false);
      assert.deepEqual(j.nodes.map((n) => [n.name, n.address]), k.nodes.map((n) => [n.name, n.address]));
      // The measured round trip moves between the two readings (koi takes a
      // few hundred ms to start): compare everything else.
      const steady = (x: StatusJson) => [{ ...x.cluster, network: x.cluster.network === null ? null : { ...x.cluster.network, quorumRttMs: 0 } }, x.nodes.map((n) => [n.state, n.services.map((v) => v.state)])];
      return JSON.stringify(steady(j)) === JSON.stringify(steady(k));
    });

    // A failing status script on one runner is counted there.
    const V = ['n1', 'n2', 'n3'].find((n) => n !== L && n !== s.cluster.master)!;
    assert.equal(sample(await metrics(V), 'koi_script_failures_total{service="db",event="status"}'), null);
    c.setFlag(`fail-${V}-db-status`);
    await until(`${V} counts its failed status`, async () => sample(await metrics(V), 'koi_script_failures_total{service="db",event="status"}') === 1, 10_000);

    // The master dies: the leader fences it (successfully) and counts it.
    const W = ['n1', 'n2', 'n3'].find((n) => n !== L && n !== V)!;
    if (s.cluster.master !== W) {
      const r = await c.koi(['promote', W]);
      assert.equal(r.code, 0, r.stderr);
      await c.waitFor(`${W} master`, (x) => x.cluster.master === W && c.settled(x));
    }
    // Summed over the live nodes: a loaded machine may change leaders.
    const fences = async (result: string) => {
      let n = 0;
      for (const x of [L, V]) n += sample(await metrics(x), `koi_fence_runs_total{result="${result}"}`) ?? 0;
      return n;
    };
    assert.equal(await fences('ok'), 0);
    c.kill9(W);
    await until('fence counted', async () => (await fences('ok')) === 1, 15_000);
    assert.equal(await fences('failed'), 0);
    assert.ok(readLines(join(c.root, 'fenced')).includes(W), `${W} was fenced`);
  } finally {
    await c.stop();
  }
});
