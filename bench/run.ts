// npm run bench: the figures of SPEC section 9, each measured several times
// on real koinodes on 127.0.0.1 with the default timings; medians printed,
// ratios measured against references taken in the same run.
//
// `node dist/bench/run.js --only status,heartbeat` runs only the named parts
// (names in SECTIONS below); with no --only, all of them.
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LocalJson, StatusJson } from '../src/admin-types';
import { loadConfig } from '../src/config/load';
import type { KoiConfig } from '../src/config/config';
import { connect } from '../src/cli/lazy';
import { CLI_NODE_FLAGS, DAEMON_NODE_FLAGS, KOI, killWithScripts, REPO, startNode, stopAll, writeCluster, type LocalNode } from '../src/demo/local-cluster';
import { grpcFloor } from './grpc-floor';

const SECTIONS = ['cold', 'leader', 'master', 'service', 'switchover', 'memory', 'cpu', 'heartbeat', 'status', 'grpc'] as const;
type Section = (typeof SECTIONS)[number];

function parseOnly(argv: string[]): Set<Section> {
  const i = argv.findIndex((a) => a === '--only' || a.startsWith('--only='));
  if (i < 0) return new Set(SECTIONS);
  const list = argv[i]!.includes('=') ? argv[i]!.slice('--only='.length) : argv[i + 1];
  const names = (list ?? '').split(',').map((x) => x.trim()).filter((x) => x !== '');
  const bad = names.filter((x) => !(SECTIONS as readonly string[]).includes(x));
  if (names.length === 0 || bad.length > 0) {
    process.stderr.write(`bench: --only takes a comma-separated list of ${SECTIONS.join(', ')}${bad.length > 0 ? ` (unknown: ${bad.join(', ')})` : ''}\n`);
    process.exit(2);
  }
  return new Set(names as Section[]);
}
const ONLY = parseOnly(process.argv.slice(2));
const want = (s: Section) => ONLY.has(s);
const STATUS_FLOOR = join(__dirname, 'status-floor.js');

const RUNS = Number(process.env.KOI_BENCH_RUNS ?? 3);
const SECRET = 'bench-secret-0123456789abcdef';
const DEFAULTS = { leaderTimeoutMs: 1000, masterLeaseMs: 1500, demoteTimeoutMs: 5000, statusIntervalMs: 5000 };

interface Cluster {
  root: string;
  nodes: LocalNode[];
  config: KoiConfig;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

async function cluster(n: number, opts: { fence?: boolean; services?: number } = {}): Promise<Cluster> {
  const root = mkdtempSync(join(tmpdir(), 'koi-bench-'));
  mkdirSync(join(root, 'pids'));
  const fence = join(root, 'fence');
  writeFileSync(fence, `#!/bin/sh\nkill -KILL "$(cat ${root}/pids/$1)" 2>/dev/null\nexit 0\n`, { mode: 0o755 });
  const nodes = await writeCluster({
    root,
    nodes: Array.from({ length: n }, (_, i) => ({ name: `n${i + 1}`, priority: n - i })),
    secret: SECRET,
    fillServices: (dir) => {
      for (let i = 0; i < (opts.services ?? 3); i++) {
        const p = join(dir, `${10 * (i + 1)}-s${i}`);
        copyFileSync(join(REPO, 'services', 'testing', 'record'), p);
        chmodSync(p, 0o755);
      }
    },
    extra: opts.fence === true ? { cluster: { fence } } : {},
  });
  for (const node of nodes) {
    const p = startNode(node, { KOI_JOURNAL: join(root, 'journal'), KOI_JOURNAL_DIR: root });
    writeFileSync(join(root, 'pids', node.name), String(p.pid));
  }
  return { root, nodes, config: loadConfig([nodes[0]!.conf], { client: true }).config };
}

async function close(c: Cluster): Promise<void> {
  // The scripts a koinode runs live in their own process groups: kill them too,
  // or one may still write into the directory while it is removed.
  for (const n of c.nodes) killWithScripts(n);
  await stopAll(c.nodes, 'SIGKILL', 2000);
  rmSync(c.root, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
}

async function ask<T>(c: Cluster, node: LocalNode, op: 'status' | 'local'): Promise<T | null> {
  const client = connect(`127.0.0.1:${node.port}`, c.config);
  try {
    const r = await client.call({ op }, 1000);
    return r.ok ? (r.data as T) : null;
  } catch {
    return null;
  } finally {
    client.close();
  }
}

async function status(c: Cluster): Promise<StatusJson | null> {
  for (const n of c.nodes) {
    if (n.proc === null) continue;
    const s = await ask<StatusJson>(c, n, 'status');
    if (s !== null && !s.partial) return s;
  }
  return null;
}

const settled = (s: StatusJson) => {
  const m = s.nodes.find((n) => n.name === s.cluster.master);
  return s.cluster.leader !== null && m !== undefined && m.state === 'master' && m.services.every((x) => x.state === 'promoted');
};
/**
 * Settled, every other runner started (so any of them can be promoted), and
 * led by n1, the highest priority: a late n1 would otherwise take over in the
 * middle of a measurement (or be killed as "the leader" while it is not).
 */
const allReady = (s: StatusJson) => settled(s) && s.cluster.leader === 'n1' && s.nodes.every((n) => n.state === 'master' || n.state === 'slave');

async function promote(c: Cluster, node: string): Promise<void> {
  const client = connect(`127.0.0.1:${c.nodes[0]!.port}`, c.config);
  try {
    const r = await client.call({ op: 'command', command: { kind: 'promote', node } }, 3000);
    if (!r.ok) throw new Error(`bench: promote ${node} refused: ${r.error}`);
  } finally {
    client.close();
  }
}

async function waitFor(c: Cluster, pred: (s: StatusJson) => boolean, timeoutMs: number): Promise<number> {
  const t0 = Date.now();
  while (Date.now() - t0 < timeoutMs) {
    const s = await status(c);
    if (s !== null && pred(s)) return Date.now() - t0;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`bench: condition not reached within ${timeoutMs}ms`);
}

function kill9(n: LocalNode): void {
  n.proc?.kill('SIGKILL');
}

function cpuTicks(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const parts = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return Number(parts[11]) + Number(parts[12]);
}

/** Main thread of `pid`: nanoseconds on a CPU and times it was scheduled in (wake-ups). */
function schedstat(pid: number): { runNs: number; slices: number } {
  const [run, , slices] = readFileSync(`/proc/${pid}/schedstat`, 'utf8').trim().split(' ').map(Number);
  return { runNs: run!, slices: slices! };
}

/**
 * What one wake-up of an idle Node process costs on this machine: an empty
 * 10 Hz timer with the daemon's flags, measured from the scheduler's own
 * accounting. Busy-free wake-ups are the floor under every heartbeat.
 */
async function wakeFloorUs(): Promise<number> {
  const p = spawn(process.execPath, [...DAEMON_NODE_FLAGS, '-e', 'setInterval(() => {}, 100)'], { stdio: 'ignore' });
  try {
    await new Promise((r) => setTimeout(r, 2000));
    const a = schedstat(p.pid!);
    await new Promise((r) => setTimeout(r, 10_000));
    const b = schedstat(p.pid!);
    return (b.runNs - a.runNs) / 1000 / (b.slices - a.slices);
  } finally {
    p.kill('SIGKILL');
  }
}

function rssKb(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
}

const rows: { what: string; value: string; target: string; ok: boolean | null }[] = [];
function row(what: string, value: string, target: string, ok: boolean | null): void {
  rows.push({ what, value, target, ok });
  process.stdout.write(`  ${what}: ${value} (target ${target})${ok === false ? '  MISSED' : ''}\n`);
}

async function repeat(what: string, fn: () => Promise<number>): Promise<number> {
  const xs: number[] = [];
  for (let i = 0; i < RUNS; i++) xs.push(await fn());
  process.stdout.write(`  ${what} runs: ${xs.map((x) => Math.round(x)).join(', ')} ms\n`);
  return median(xs);
}

async function main(): Promise<void> {
  process.stdout.write(`koi bench: ${RUNS} runs per figure, medians; default timings (heartbeat 200ms, leader_timeout 1s, master_lease 1.5s, demote_timeout 5s, status_interval 5s)${ONLY.size < SECTIONS.length ? `; only ${[...ONLY].join(', ')}` : ''}\n`);

  if (want('cold')) {
    const cold = await repeat('cold start', async () => {
      const t0 = Date.now();
      const c = await cluster(3);
      await waitFor(c, settled, 10_000);
      const ms = Date.now() - t0;
      await close(c);
      return ms;
    });
    row('cold start of 3 nodes → master promoted', `${(cold / 1000).toFixed(2)}s`, '≤ 3s', cold <= 3000);
  }

  if (want('leader')) {
    const leader = await repeat('leader crash', async () => {
      const c = await cluster(3);
      await waitFor(c, allReady, 10_000);
      await promote(c, 'n2');
      await waitFor(c, (s) => s.cluster.master === 'n2' && settled(s), 10_000);
      const t0 = Date.now();
      kill9(c.nodes[0]!);
      await waitFor(c, (s) => s.cluster.leader !== null && s.cluster.leader !== 'n1', 10_000);
      const ms = Date.now() - t0;
      await close(c);
      return ms;
    });
    row('leader crash → new leader', `${(leader / 1000).toFixed(2)}s`, `≤ leader_timeout + 0.5s = ${(DEFAULTS.leaderTimeoutMs + 500) / 1000}s`, leader <= DEFAULTS.leaderTimeoutMs + 500);
  }

  for (const fence of want('master') ? [false, true] : []) {
    const ms = await repeat(`master crash${fence ? ' (fence)' : ''}`, async () => {
      const c = await cluster(3, { fence });
      await waitFor(c, allReady, 10_000);
      await promote(c, 'n3');
      await waitFor(c, (s) => s.cluster.master === 'n3' && settled(s), 10_000);
      const t0 = Date.now();
      kill9(c.nodes[2]!);
      await waitFor(c, (s) => s.cluster.master !== null && s.cluster.master !== 'n3' && settled(s), 20_000);
      const took = Date.now() - t0;
      await close(c);
      return took;
    });
    const bound = fence ? DEFAULTS.leaderTimeoutMs + 1000 + 50 : DEFAULTS.masterLeaseMs + DEFAULTS.demoteTimeoutMs + 1000;
    row(
      fence ? 'master crash → new master, with a fence script' : 'master crash → new master promoted, defaults',
      `${(ms / 1000).toFixed(2)}s`,
      fence ? '≤ leader_timeout + 1s + fence time (~0.05s)' : `≤ master_lease + demote_timeout + 1s = ${bound / 1000}s`,
      ms <= bound,
    );
  }

  if (want('service')) {
    const svcFail = await repeat('service failure', async () => {
      const c = await cluster(3);
      await waitFor(c, allReady, 10_000);
      const s = (await status(c))!;
      const m = s.cluster.master!;
      const t0 = Date.now();
      writeFileSync(join(c.root, `status-${m}-s0`), '1');
      await waitFor(c, (x) => x.cluster.master !== null && x.cluster.master !== m && settled(x), 20_000);
      const took = Date.now() - t0;
      await close(c);
      return took;
    });
    row('service failure → new master promoted', `${(svcFail / 1000).toFixed(2)}s`, `≤ status_interval + 1s + script time (~0.2s) = ${(DEFAULTS.statusIntervalMs + 1200) / 1000}s`, svcFail <= DEFAULTS.statusIntervalMs + 1200);
  }

  if (want('switchover')) {
    const sw = await repeat('switchover', async () => {
      const c = await cluster(3);
      await waitFor(c, allReady, 10_000);
      const s = (await status(c))!;
      const to = s.cluster.master === 'n2' ? 'n3' : 'n2';
      const t0 = Date.now();
      await promote(c, to);
      await waitFor(c, (x) => x.cluster.master === to && settled(x), 10_000);
      const took = Date.now() - t0;
      await close(c);
      return took;
    });
    row('koi promote switchover', `${(sw / 1000).toFixed(2)}s`, '≤ 0.5s + script time (6 scripts, ~0.1s)', sw <= 600);
  }

  // Footprint and idle cost.
  if (want('memory')) {
    const c = await cluster(3);
    await waitFor(c, settled, 10_000);
    await new Promise((r) => setTimeout(r, 5000));
    const rss = median(c.nodes.map((n) => rssKb(n.proc!.pid!)));
    row('idle koinode resident memory (3 services)', `${(rss / 1024).toFixed(1)} MB`, '≤ 55 MB', rss / 1024 <= 55);
    await close(c);
  }
  if (want('cpu')) {
    const cpuAndBytes: Record<number, { cpu: number; bytes: number; wakeups: number }> = {};
    for (const n of [3, 5, 9]) {
      const c = await cluster(n, { services: 3 });
      await waitFor(c, settled, 15_000);
      await new Promise((r) => setTimeout(r, 3000));
      const leaderName = (await status(c))!.cluster.leader!;
      const L = c.nodes.find((x) => x.name === leaderName)!;
      const secs = n === 5 ? 30 : 15;
      const t0 = cpuTicks(L.proc!.pid!);
      const s0 = schedstat(L.proc!.pid!);
      const b0 = (await ask<LocalJson>(c, L, 'local'))!.traffic;
      const w0 = Date.now();
      await new Promise((r) => setTimeout(r, secs * 1000));
      const t1 = cpuTicks(L.proc!.pid!);
      const s1 = schedstat(L.proc!.pid!);
      const b1 = (await ask<LocalJson>(c, L, 'local'))!.traffic;
      const elapsed = (Date.now() - w0) / 1000;
      const cpu = ((t1 - t0) / 100 / elapsed) * 100;
      const bytes = (b1.bytesSent - b0.bytesSent) / elapsed;
      const wakeups = (s1.slices - s0.slices) / elapsed;
      cpuAndBytes[n] = { cpu, bytes, wakeups };
      process.stdout.write(`  ${n} nodes: leader CPU ${cpu.toFixed(2)}% of a core, ${wakeups.toFixed(0)} wake-ups/s, leader sends ${(bytes / 1024).toFixed(1)} KB/s (${secs}s)\n`);
      await close(c);
    }
    row('CPU of the leader of an idle 5-node cluster', `${cpuAndBytes[5]!.cpu.toFixed(2)}%`, '≤ 1% of one core', cpuAndBytes[5]!.cpu <= 1);
    row('bytes sent by the leader per second (3 / 5 / 9 nodes)', [3, 5, 9].map((n) => `${(cpuAndBytes[n]!.bytes / 1024).toFixed(1)} KB/s`).join(' / '), '(no target)', null);
    row('leader CPU growth (3 / 5 / 9 nodes)', [3, 5, 9].map((n) => `${cpuAndBytes[n]!.cpu.toFixed(2)}%`).join(' / '), '(no target)', null);
    row('leader wake-ups per second (3 / 5 / 9 nodes)', [3, 5, 9].map((n) => cpuAndBytes[n]!.wakeups.toFixed(0)).join(' / '), '(no target)', null);
    const us = await wakeFloorUs();
    const w = cpuAndBytes[5]!.wakeups;
    row('one wake-up of an idle Node process (empty 10 Hz timer)', `${us.toFixed(0)} µs; × the 5-node leader's ${w.toFixed(0)}/s = ${((us * w) / 1e4).toFixed(2)}% before any work`, '(no target)', null);
  }

  // Bytes per peer message: the leader's own `koi local --json` read twice on
  // an idle 3-node cluster, Δ traffic.bytesSent / Δ traffic.messagesSent.
  // Today those counters are estimates (envelope body + 60 bytes of framing
  // per message, src/transport/peers.ts); once they count exact serialized
  // sizes this row reports those, with no change here.
  if (want('heartbeat')) {
    const c = await cluster(3);
    await waitFor(c, allReady, 10_000);
    await new Promise((r) => setTimeout(r, 3000));
    const L = c.nodes.find((x) => x.name === 'n1')!;
    const secs = 10;
    const a = koiLocal(L);
    await new Promise((r) => setTimeout(r, secs * 1000));
    const b = koiLocal(L);
    const dBytes = b.traffic.bytesSent - a.traffic.bytesSent;
    const dMsgs = b.traffic.messagesSent - a.traffic.messagesSent;
    process.stdout.write(`  leader n1 over ${secs}s: ${dMsgs} messages, ${dBytes} bytes sent\n`);
    row('bytes per peer message (leader, idle)', dMsgs > 0 ? `${(dBytes / dMsgs).toFixed(0)} bytes (${dMsgs} messages in ${secs}s)` : 'no messages sent', '(no target)', null);
    await close(c);
  }

  // koi status wall time against the floor of its libraries (grpc-js,
  // proto-loader with proto/koi.proto, yargs; bench/status-floor.ts), with and
  // without NODE_EXTRA_CA_CERTS (which costs every Node start ~100 ms here).
  if (want('status')) {
    const c = await cluster(3);
    await waitFor(c, settled, 10_000);
    for (const extra of [true, false]) {
      const env = { ...process.env };
      if (!extra) delete env.NODE_EXTRA_CA_CERTS;
      const floor = measureStart([STATUS_FLOOR], env);
      const st = measureStart([...CLI_NODE_FLAGS, KOI, '-f', c.nodes[0]!.conf, 'status'], env);
      const label = extra ? (process.env.NODE_EXTRA_CA_CERTS ? 'with NODE_EXTRA_CA_CERTS' : 'NODE_EXTRA_CA_CERTS unset here') : 'without NODE_EXTRA_CA_CERTS';
      row(`koi status wall time, ${label}`, `${st.toFixed(0)}ms = ${(st / floor).toFixed(2)} × its libraries' floor (${floor.toFixed(0)}ms)`, '≤ 1.3 ×', st / floor <= 1.3);
    }
    await close(c);
  }

  // The floor under the per-heartbeat cost: grpc-js alone, no koi code.
  if (want('grpc')) {
    const [client, server] = await grpcFloor(2000, DAEMON_NODE_FLAGS);
    row('grpc-js alone: one stream message and its echo, CPU of client / server', `${client.toFixed(0)} / ${server.toFixed(0)} µs`, '(no target)', null);
  }

  process.stdout.write('\nsummary\n');
  for (const r of rows) process.stdout.write(`  ${r.ok === null ? ' ' : r.ok ? '✓' : '✗'} ${r.what}: ${r.value} (target ${r.target})\n`);
}

/** `koi -f <node's conf> local --json`, run as a user would. */
function koiLocal(n: LocalNode): LocalJson {
  const r = spawnSync(process.execPath, [KOI, '-f', n.conf, 'local', '--json'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`bench: koi local --json on ${n.name} failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as LocalJson;
}

/** Median wall time of `node args` over several runs. */
function measureStart(args: string[], env: NodeJS.ProcessEnv = process.env): number {
  const xs: number[] = [];
  for (let i = 0; i < 7; i++) {
    const t0 = process.hrtime.bigint();
    const r = spawnSync(process.execPath, args, { env, stdio: 'ignore' });
    if (r.status !== 0) throw new Error(`node ${args.join(' ')} failed`);
    xs.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return median(xs);
}

main().catch((e: unknown) => {
  process.stderr.write(`bench: ${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
