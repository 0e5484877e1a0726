// The metrics the operations guide lists and no other test reads, scraped
// from real koinodes: koi_epoch, script seconds and failures, bytes
// received, handler and fence counters, and /status.json.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { StatusJson } from '../../src/admin-types';
import { freePorts } from '../../src/demo/local-cluster';
import { TestCluster } from './harness';
import { addConf, fetchText, readLines, sample, STEADY, until } from './probes';

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
      return JSON.stringify([j.cluster, j.nodes.map((n) => [n.state, n.services.map((x) => x.state)])]) === JSON.stringify([k.cluster, k.nodes.map((n) => [n.state, n.services.map((x) => x.state)])]);
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
