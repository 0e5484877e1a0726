// The 30 s limits of the fence and of cluster event handlers, on real
// koinodes. Both limits are fixed (not configurable), so one cluster hangs a
// fence and a handler at the same time and waits them out once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePorts } from '../../src/demo/local-cluster';
import { TestCluster } from './harness';
import { addConf, alive, fetchText, readLines, sample, STEADY, until } from './probes';

// Hangs for n3 only (with a child of its own); any other node is "not fenced".
const FENCE = `#!/bin/sh
[ "$1" = n3 ] || exit 1
d="$(dirname "$0")"
sleep 1000 &
echo "$$ $!" > "$d/fence.pids"
wait
`;

// Records every event; on node-down it hangs, deaf to SIGTERM, with a child.
const HANDLER = `#!/bin/sh
echo "$1 $KOI_NODE" >> "$KOI_JOURNAL_DIR/handled"
if [ "$1" = node-down ]; then
  trap '' TERM
  sleep 1000 &
  echo "$$ $!" > "$KOI_JOURNAL_DIR/handler.pids"
  wait
fi
exit 0
`;

test('a hanging fence is killed after 30 s and counts as failed; a hanging handler is killed and the next event still runs', async () => {
  const mports = await freePorts(3);
  const c = await TestCluster.start(undefined, { start: false, extra: STEADY });
  try {
    const fence = join(c.root, 'fence');
    writeFileSync(fence, FENCE, { mode: 0o755 });
    for (const [i, n] of c.nodes.entries()) {
      addConf(n.conf, 'cluster', [`fence = ${fence}`]);
      addConf(n.conf, 'node', [`metrics = 127.0.0.1:${mports[i]}`]);
      mkdirSync(join(n.dir, 'handlers'));
      writeFileSync(join(n.dir, 'handlers', '10-slow'), HANDLER, { mode: 0o755 });
    }
    for (const n of c.nodes) c.startNode(n.name);
    await c.waitFor('settled under n1', (x) => c.settled(x) && x.cluster.leader === 'n1' && x.nodes.every((n) => n.reachable), 30_000);
    const r = await c.koi(['promote', 'n3']);
    assert.equal(r.code, 0, r.stderr);
    await c.waitFor('n3 master', (x) => x.cluster.master === 'n3' && c.settled(x) && x.cluster.leader === 'n1', 15_000);

    c.kill9('n3');
    await until('fence running', () => readLines(join(c.root, 'fence.pids')).length === 1, 10_000);
    await until('handler hanging on node-down', () => readLines(join(c.root, 'handler.pids')).length === 1, 20_000).catch((e: Error) => {
      throw new Error(`${e.message}; handled: ${readLines(join(c.root, 'handled')).join(', ')}`);
    });
    const fencePids = readLines(join(c.root, 'fence.pids'))[0]!.split(' ').map(Number);
    const handlerPids = readLines(join(c.root, 'handler.pids'))[0]!.split(' ').map(Number);

    // With a fence configured, nobody is promoted while it runs: when a new
    // master first shows, the fence has already been given up on.
    const gaveUp = 'fence of n3: failed (no answer within 30s)';
    const logs = () => c.log('n1') + c.log('n2');
    let failedFirst: boolean | null = null;
    await until('a new master', async () => {
      const x = await c.status();
      if (x === null || x.cluster.master === null || x.cluster.master === 'n3') return false;
      failedFirst = logs().includes(gaveUp);
      return true;
    }, 50_000);
    assert.equal(failedFirst, true, 'no master after n3 until the fence failed after 30 s');
    await c.waitFor('settled', (x) => c.settled(x));
    for (const p of fencePids) assert.equal(alive(p), false, `fence process ${p} killed with its group`);

    // The handler: SIGTERM ignored, so SIGKILL two seconds later; then the
    // queued master-changed reaches it.
    await until('master-changed handled after the hung node-down', () => {
      const h = readLines(join(c.root, 'handled'));
      const down = h.lastIndexOf('node-down n3');
      return down >= 0 && h.slice(down + 1).some((l) => l.startsWith('master-changed '));
    }, 15_000);
    assert.match(logs(), /handler \S+10-slow ran past 30s on node-down: SIGTERM/);
    assert.match(logs(), /handler \S+10-slow failed on node-down \(SIGKILL\)/);
    for (const p of handlerPids) assert.equal(alive(p), false, `handler process ${p} killed with its group`);

    // Counted by whichever node led (n1, unless a loaded machine changed leaders).
    const total = async (series: string) => {
      let n = 0;
      for (const i of [0, 1]) n += sample((await fetchText(`http://127.0.0.1:${mports[i]}/metrics`)).body, series) ?? 0;
      return n;
    };
    // koi may try the fence again after a failure: at least the first attempt counts.
    assert.ok((await total('koi_fence_runs_total{result="failed"}')) >= 1, 'the timed-out fence counts as failed');
    assert.equal(await total('koi_fence_runs_total{result="ok"}'), 0);
    assert.ok((await total('koi_handler_runs_total{result="failed"}')) >= 1, 'the killed handler counts as failed');
  } finally {
    await c.stop();
  }
});
