// A koinode killed with -9 while its runner's promote runs leaves that script
// behind (scripts run in their own process groups). The next koinode on the
// machine must kill it before its boot status, and must demote the service
// before it reports the runner free: otherwise the leader designates another
// runner while the orphaned promote still goes on.
import { test } from 'node:test';
import { processAlive } from '../../src/scripts/proc';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { processesWith } from '../../src/demo/local-cluster';
import { TestCluster } from './harness';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function envOf(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0');
  } catch {
    return [];
  }
}


test('a promote orphaned by kill -9 of koinode is killed at the next start, and the service is demoted before the runner is free', async () => {
  const c = await TestCluster.start(
    [
      // Two electors that stay up throughout, and three runners.
      { name: 'e1', priority: 9, runner: false },
      { name: 'e2', priority: 8, runner: false },
      { name: 'r1', priority: 3, elector: false },
      { name: 'r2', priority: 2, elector: false },
      { name: 'r3', priority: 1, elector: false },
    ],
    // A hold bound (master_lease + demote_timeout) of 6 s: the victim's next
    // koinode starts, kills the orphan and demotes well within it, however
    // slowly a loaded machine starts Node. (Past the bound the leader frees
    // the role by timing, orphan or not: that case needs a watchdog.)
    { extra: { cluster: { quorum: '2' }, time: { master_lease: '3s' }, service: { promote_timeout: '20s', demote_timeout: '3s' } } },
  );
  try {
    const s0 = await c.waitFor('a master', (s) => c.settled(s) && s.nodes.every((n) => n.reachable), 15_000);
    const first = s0.cluster.master!;
    // Every promote from now on takes 6 s. The master's machine dies; the
    // runner that takes over is killed (koinode only) during its promote.
    c.setFlag('sleep-promote', '6');
    c.kill9(first);
    const deadline = Date.now() + 15_000;
    let orphan: number | undefined;
    let victim = '';
    while (orphan === undefined && Date.now() < deadline) {
      for (const p of processesWith(`KOI_JOURNAL=${c.journal}`)) {
        const env = envOf(p);
        const node = env.find((v) => v.startsWith('KOI_NODE='))?.slice('KOI_NODE='.length);
        if (node !== undefined && node !== first && env.includes('KOI_EVENT=promote') && env.some((v) => v.startsWith('KOI_RUN='))) {
          orphan = p;
          victim = node;
          break;
        }
      }
      if (orphan === undefined) await sleep(50);
    }
    assert.ok(orphan !== undefined, 'no runner began a promote after the master died');
    const v = c.node(victim);
    const exited = new Promise((r) => v.proc!.once('exit', r));
    v.proc!.kill('SIGKILL');
    await exited;
    // The recorder stamps lines with the wall clock in ns (date +%s%N).
    const killedAt = BigInt(Date.now()) * 1_000_000n;
    await sleep(300);
    assert.ok(processAlive(orphan), 'the promote lives on without its koinode (what this test is about)');
    const records = readdirSync(join(v.dir, 'state', 'runs'));
    assert.deepEqual(records.filter((f) => f !== 'holding.json').length, 1, `one run recorded in state_dir/runs: ${records.join(', ')}`);
    await sleep(700);
    c.startNode(victim);

    // The new koinode's first script is its boot status: by then the orphan is gone.
    let firstAfter: string[] | undefined;
    const end2 = Date.now() + 15_000;
    while (firstAfter === undefined && Date.now() < end2) {
      firstAfter = c.journalLines().find((l) => l[1] === victim && BigInt(l[0]!) > killedAt && l[4] === 'begin');
      if (firstAfter === undefined) await sleep(20);
    }
    assert.deepEqual(firstAfter?.slice(1, 5), [victim, 'db', 'status', 'begin']);
    assert.ok(!processAlive(orphan), 'the orphaned promote still runs after the new koinode began');
    assert.match(c.log(victim), /killed a script left running by an earlier koinode: db\/promote/);

    await c.waitFor('a master again', (s) => c.settled(s), 25_000);
    const lines = c.journalLines().filter((l) => BigInt(l[0]!) > killedAt);
    const victimRuns = lines.filter((l) => l[1] === victim && l[4] === 'begin').map((l) => l[3]);
    assert.deepEqual(victimRuns.slice(0, 2), ['status', 'demote'], 'interrupted promote: demote before anything else');
    // Nobody else began a promote before the victim's demote ended.
    const demoteEnd = lines.findIndex((l) => l[1] === victim && l[3] === 'demote' && l[4] === 'end');
    const otherPromote = lines.findIndex((l) => l[1] !== victim && l[3] === 'promote' && l[4] === 'begin');
    assert.ok(demoteEnd >= 0, `${victim} never demoted`);
    if (otherPromote >= 0) assert.ok(otherPromote > demoteEnd, `another runner began promote before ${victim} had let go`);
    // The orphan never finished its sleep and wrote its end.
    const ends = c.journalLines().filter((l) => l[1] === victim && l[3] === 'promote' && l[4] === 'end');
    const begins = c.journalLines().filter((l) => l[1] === victim && l[3] === 'promote' && l[4] === 'begin');
    assert.equal(ends.length, begins.length - 1, 'the orphaned promote ran to its end');
    // Finished runs leave no record behind, and the earlier koinode's are gone.
    const end3 = Date.now() + 5000;
    const stale = () => readdirSync(join(v.dir, 'state', 'runs')).filter((f) => !f.startsWith(`${v.proc!.pid}-`));
    while (stale().length > 0 && Date.now() < end3) await sleep(100);
    assert.deepEqual(stale(), [], "the earlier koinode's records were removed");
  } finally {
    if (process.env.KOI_KEEP === '1') console.log(c.root);
    else await c.stop();
  }
});

test('a master whose koinode is killed with no script running is demoted by the next koinode, although its status says only "running" (0)', async () => {
  const c = await TestCluster.start(
    [
      { name: 'e1', priority: 9, runner: false },
      { name: 'r1', priority: 3, elector: false },
      { name: 'r2', priority: 2, elector: false },
    ],
    { extra: { cluster: { quorum: '1' } } },
  );
  try {
    const s0 = await c.waitFor('a master', (s) => c.settled(s) && s.nodes.every((n) => n.reachable), 15_000);
    const m = s0.cluster.master!;
    const v = c.node(m);
    assert.ok(readdirSync(join(v.dir, 'state', 'runs')).includes('holding.json'), 'the master records that it holds');
    const exited = new Promise((r) => v.proc!.once('exit', r));
    v.proc!.kill('SIGKILL');
    await exited;
    const killedAt = BigInt(Date.now()) * 1_000_000n;
    await sleep(300);
    c.startNode(m);
    // The leader may still report the old master as settled before the new
    // koinode has run anything, so wait for the new koinode's own scripts.
    const runsAfter = () => c.journalLines().filter((l) => l[1] === m && BigInt(l[0]!) > killedAt && l[4] === 'begin').map((l) => l[3]);
    const end = Date.now() + 20_000;
    while (runsAfter().length < 2 && Date.now() < end) await sleep(100);
    await c.waitFor('a master again', (s) => c.settled(s) && s.nodes.every((n) => n.reachable), 20_000);
    const runs = runsAfter();
    // (A status that was running at the kill is an interrupted run: the same outcome.)
    assert.deepEqual(runs.slice(0, 2), ['status', 'demote'], `${m} after its restart: ${runs.join(' ')}`);
    assert.match(c.log(m), /died while this runner held the master role|interrupted while the master role may have been held/);
  } finally {
    await c.stop();
  }
});
