// The fault-injection run: real koinodes on 127.0.0.1, every peer link through
// a relay we control, a seeded nemesis, and a checker that reads the journal
// the service scripts wrote.
import { appendFileSync, chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import type { StatusJson } from '../../src/admin-types';
import { loadConfig } from '../../src/config/load';
import { connect } from '../../src/cli/lazy';
import { freePorts, KOI, killWithScripts, processesWith, REPO, startNode, writeCluster, type LocalNode } from '../../src/demo/local-cluster';
import { Rng } from '../sim/rng';
import { WatchdogStandIn } from '../../src/demo/watchdog-standin';
import { RelayMesh } from './relay';
import { checkJournal, leaseExpiries, parseJournal, violationsOf, type JournalReport } from './journal';
import { countLeaderChanges, electionsIn, loadWarnings, QUIET_LEADER_CHANGES_TOLERATED, takeoverBackoffs, type LeaderClass, type LeaderReport, type Span } from './leaders';

export interface ChaosOptions {
  seconds: number;
  seed: number;
  nodes: 3 | 5;
  log?: (line: string) => void;
  /** Configure the fence (default). Without it (and without watchdogs) no koinode is frozen: nothing could stop it. */
  fence?: boolean;
  /**
   * Every node has a stand-in watchdog device (watchdog = required): a
   * koinode is frozen even without a fence, and a device that fires resets
   * its machine (koinode and scripts killed, back after 3 s).
   */
  watchdog?: boolean;
  /** Every other node runs a shorter master_lease and demote_timeout (a rolling change). */
  mixedTimings?: boolean;
  /** Fault-free time kept after the final heal has settled (default: 30 s or a tenth of the run, the longer). */
  quietTailSeconds?: number;
  /** Keep the journal and logs even when nothing is wrong. */
  keep?: boolean;
}

export interface ChaosResult {
  seed: number;
  seconds: number;
  faults: number;
  journal: JournalReport;
  zombies: number;
  leftovers: number;
  converged: boolean;
  convergeMs: number;
  convergeBoundMs: number;
  leaders: LeaderReport;
  /** Machines reset by their watchdog. */
  watchdogResets: number;
  violations: string[];
  root: string;
  /** The arguments of `npm run chaos` that run it again. */
  replay: string;
}

const SERVICES: [string, number | null][] = [['vip', 10], ['db', 20], ['mon', null]];
const TIMES = { heartbeat_interval: '100ms', leader_timeout: '500ms', master_lease: '1s', status_interval: '1s' };
// Failed runners recover on their own quickly, so time without a master measures koi, not the operator.
const LIMITS = { demote_timeout: '1500ms', promote_timeout: '2s', start_timeout: '3s', stop_timeout: '3s', status_timeout: '2s', failed_timeout: '2s', auto_recover: '1000', auto_recover_wait: '1s', failcount_reset: '10s' };
const SECRET = 'chaos-secret-0123456789abcdef';
/** How long a machine powered off by the fence takes to come back. */
const FENCE_REBOOT_MS = 3000;
/** Quiet time kept at the start, once the cluster settled and the start-ups' allowance ran out, before the first fault. */
const QUIET_LEAD_MS = 5000;
/** How long the cluster may take to settle at the start before the faults begin anyway. */
const STARTUP_BOUND_MS = 30_000;
/** peers.ts: the longest pause between reconnect attempts to a peer. */
const PEER_RECONNECT_MAX_MS = 2000;

/**
 * How long after something the run did ends it may still cause an
 * election: the links come back (reconnect pause), then an outranking node
 * waits takeover_settle (daemon.ts: 4 × leader_timeout) plus a leader_timeout
 * per elector ranked above it before it campaigns, and the campaign takes up
 * to a leader_timeout. A takeover that failed waits longer: those waits are
 * read from the logs (takeoverBackoffs).
 */
export function leaderSettleMs(leaderTimeoutMs: number, nodes: number): number {
  return PEER_RECONNECT_MAX_MS + 4 * leaderTimeoutMs + (nodes - 1) * leaderTimeoutMs + leaderTimeoutMs;
}

const FENCE = `#!/bin/sh
# Chaos fence: "power off" node $1 — kill its koinode and every script it runs,
# its services die with it, and the journal says so.
dir="$(dirname "$0")"
pid=$(cat "$dir/pids/$1" 2>/dev/null) || exit 1
for c in $(pgrep -P "$pid"); do kill -KILL -- "-$c" 2>/dev/null; done
kill -KILL "$pid" 2>/dev/null
rm -f "$dir"/running-"$1"-*
printf '%s %s * fence - -\\n' "$(date +%s%N)" "$1" >> "$dir/journal"
exit 0
`;

function zombieChildren(pid: number): number[] {
  const out: number[] = [];
  try {
    for (const c of readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter((x) => x !== '')) {
      const stat = readFileSync(`/proc/${c}/stat`, 'utf8');
      if (stat.slice(stat.lastIndexOf(')') + 2)[0] === 'Z') out.push(Number(c));
    }
  } catch {
    // process gone
  }
  return out;
}

export async function runChaos(o: ChaosOptions): Promise<ChaosResult> {
  const log = o.log ?? (() => undefined);
  const rng = new Rng(o.seed);
  const root = mkdtempSync(join(tmpdir(), 'koi-chaos-'));
  const journal = join(root, 'journal');
  writeFileSync(journal, '');
  mkdirSync(join(root, 'pids'));
  writeFileSync(join(root, 'fence'), FENCE, { mode: 0o755 });
  const names = Array.from({ length: o.nodes }, (_, i) => `n${i + 1}`);
  const ports = await freePorts(o.nodes);
  const portOf = Object.fromEntries(names.map((n, i) => [n, ports[i]!]));
  const mesh = new RelayMesh(names, portOf, () => rng.next());
  await mesh.listen();
  const nodes: LocalNode[] = await writeCluster({
    root,
    nodes: names.map((n, i) => ({ name: n, priority: o.nodes - i })),
    secret: SECRET,
    ports,
    transportPortFor: (self, peer) => mesh.portFor(self, peer),
    fillServices: (dir) => {
      for (const [s, p] of SERVICES) {
        const d = join(dir, p === null ? s : `${p}-${s}`);
        mkdirSync(d);
        for (const ev of ['start', 'stop', 'status', 'promote', 'demote', 'failed']) {
          copyFileSync(join(REPO, 'services', 'testing', 'record'), join(d, ev));
          chmodSync(join(d, ev), 0o755);
        }
      }
    },
    extra: { time: TIMES, service: LIMITS, cluster: o.fence === false ? {} : { fence: join(root, 'fence') } },
    extraFor: (name): Record<string, Record<string, string>> => ({
      ...(o.mixedTimings === true && names.indexOf(name) % 2 === 1 ? { time: { master_lease: '800ms' }, service: { demote_timeout: '1s' } } : {}),
      // A 1 s watchdog needs room: 2T ≤ (lease + demote − margin) × 2/3 and ≤ demote − margin.
      ...(o.watchdog === true ? { node: { watchdog: 'required', watchdog_device: join(root, `wd-${name}`) }, time: { master_lease: '1500ms' }, service: { demote_timeout: '2500ms' } } : {}),
    }),
  });
  const env = { KOI_JOURNAL: journal, KOI_JOURNAL_DIR: root };
  const byName = (n: string) => nodes.find((x) => x.name === n)!;
  const frozen = new Set<string>();
  // Everything the run does to the cluster, from when it began until it ended:
  // leader changes then (and a settle allowance after) are the run's doing.
  const spans: Span[] = [];
  const disturb = (what: string) => {
    const s: Span = { fromMs: Date.now(), toMs: Infinity, what };
    spans.push(s);
    return () => {
      if (s.toMs === Infinity) s.toMs = Date.now();
    };
  };
  const starts = new Map<string, number[]>(names.map((n) => [n, []]));
  const start = (n: string) => {
    const node = byName(n);
    if (node.proc !== null) return;
    const p = startNode(node, env);
    writeFileSync(join(root, 'pids', n), String(p.pid));
    // A (re)started node joins, and an outranking one takes over once settled.
    starts.get(n)!.push(Date.now());
    spans.push({ fromMs: Date.now(), toMs: Date.now() + RESTART_ALLOWANCE_MS, what: `start ${n}` });
  };
  const devices = new Map<string, WatchdogStandIn>();
  const crash = (n: string, how = 'crash') => {
    if (byName(n).proc === null) return;
    killWithScripts(byName(n));
    frozen.delete(n);
    // A machine that goes down takes its watchdog's timer with it.
    devices.get(n)?.reset();
    for (const f of readdirSync(root)) if (f.startsWith(`running-${n}-`)) rmSync(join(root, f), { force: true });
    appendFileSync(journal, `${BigInt(Date.now()) * 1_000_000n} ${n} * ${how} - -\n`);
  };
  let watchdogResets = 0;
  if (o.watchdog === true) {
    for (const n of names) {
      const d = new WatchdogStandIn(join(root, `wd-${n}`), (line) => {
        appendFileSync(join(root, `wd-${n}.log`), `${line}\n`);
        if (!line.includes(' fired ')) return;
        // The device resets the machine; it boots again like a fenced one.
        watchdogResets++;
        log(`${n}'s watchdog fired: the machine resets`);
        crash(n, 'watchdog');
      });
      d.start();
      devices.set(n, d);
    }
  }
  // Which node a command goes to: its own generator, so the operator's
  // timing-dependent commands leave the nemesis's schedule as the seed made it.
  const viaRng = new Rng(o.seed + 0x9e3779b9);
  const koiCmd = (args: string[]) => {
    const up = nodes.filter((x) => x.proc !== null && !frozen.has(x.name));
    if (up.length === 0) return;
    const done = disturb(`koi ${args.join(' ')}`);
    const c = spawn(process.execPath, [KOI, '-f', viaRng.pick(up).conf, '-t', '3', ...args], { stdio: 'ignore' });
    c.once('exit', done);
    c.once('error', done);
  };
  // The operator's intent: maintenance only inside a maintenance window, a
  // node stopped only inside its stop window. A command can still commit
  // after its window ended (it waited for a quorum that came back late), so
  // the operator watches the cluster and undoes what should not be, as a
  // diligent person would, instead of trusting one command's exit status.
  const config = loadConfig([byName('n1').conf], { client: true }).config;
  let maintenanceWindows = 0;
  const stopWindows = new Map<string, number>();
  let lastFixMs = 0;
  const operator = (st: StatusJson, healed: boolean) => {
    if (Date.now() - lastFixMs < 1000) return;
    const fix = (args: string[]) => {
      lastFixMs = Date.now();
      log(`operator: koi ${args.join(' ')}`);
      koiCmd(args);
    };
    if (st.cluster.maintenance && maintenanceWindows === 0) fix(['maintenance', 'off']);
    if (st.cluster.manualMaster) fix(['elect']);
    for (const n of st.nodes) {
      if (n.state === 'stopped' && n.reachable && (stopWindows.get(n.name) ?? 0) === 0) fix(['start', n.name]);
      // Failed runners recover on their own (auto_recover); after the final heal the operator does not wait.
      if (healed && n.state === 'failed') fix(['recover', n.name]);
    }
  };
  // What the cluster looks like, logged when it changes (the story behind each gap without a master).
  let lastShape = '';
  const observe = (st: StatusJson | null) => {
    const shape =
      st === null
        ? 'no answer'
        : `leader ${st.cluster.leader ?? '-'} master ${st.cluster.master ?? '-'}${st.cluster.maintenance ? ' MAINTENANCE' : ''}${st.cluster.manualMaster ? ' MANUAL' : ''}${st.cluster.target !== null ? ` target ${st.cluster.target}` : ''} | ${st.nodes.map((n) => `${n.name}:${n.reachable ? n.state : 'unreachable'}`).join(' ')}`;
    if (shape !== lastShape) log(`cluster: ${shape}`);
    lastShape = shape;
  };
  const heals: { atMs: number; fn: () => void }[] = [];
  const later = (ms: number, fn: () => void) => heals.push({ atMs: Date.now() + ms, fn });
  // Nodes the nemesis killed, until it restarts them. Any other node found
  // dead was powered off by the fence: it reboots, as a fenced machine does.
  const down = new Set<string>();
  const rebootAfterFence = () => {
    for (const n of nodes) {
      if (n.proc !== null || down.has(n.name)) continue;
      log(`${n.name} was fenced: it reboots in ${FENCE_REBOOT_MS}ms`);
      down.add(n.name);
      later(FENCE_REBOOT_MS, () => {
        down.delete(n.name);
        start(n.name);
      });
    }
  };
  // Started before the sampler's first look, which would take them for fenced.
  for (const n of names) start(n);
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      rebootAfterFence();
      const st = await statusOf(nodes.filter((n) => !frozen.has(n.name)), config);
      if (!sampling) break;
      observe(st);
      if (st !== null) operator(st, false);
      await new Promise((r) => setTimeout(r, 500));
    }
  })();

  // Zombie watch: a koinode child that stays a zombie across two samples was not reaped.
  let zombies = 0;
  let lastZ = new Set<number>();
  const zTimer = setInterval(() => {
    const now = new Set<number>();
    for (const n of nodes) if (n.proc?.pid !== undefined && !frozen.has(n.name)) for (const z of zombieChildren(n.proc.pid)) now.add(z);
    for (const z of now) if (lastZ.has(z)) zombies++;
    lastZ = now;
  }, 1000);

  const flags = new Set<string>();
  const flagSpans = new Map<string, () => void>();
  const flag = (f: string, content = '') => {
    writeFileSync(join(root, f), content);
    flags.add(f);
    flagSpans.get(f)?.();
    flagSpans.set(f, disturb(f));
  };
  const unflag = (f: string) => {
    rmSync(join(root, f), { force: true });
    flags.delete(f);
    flagSpans.get(f)?.();
  };
  let faults = 0;
  const started = Date.now();
  // Leader changes count from when the cluster first settled, after a quiet lead-in.
  let countFromMs = Date.now();
  while (Date.now() - started < STARTUP_BOUND_MS) {
    const st = await statusOf(nodes, config);
    countFromMs = Date.now();
    if (st !== null && settledAll(st)) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  if (Date.now() - started >= STARTUP_BOUND_MS) log(`the cluster did not settle within ${STARTUP_BOUND_MS}ms of the start: faults begin anyway`);
  // Quiet from when the start-up's own allowance ran out (an outranking node may take over late).
  const settleMs = leaderSettleMs(config.time.leaderTimeoutMs, o.nodes);
  const leadEndMs = Math.max(countFromMs, ...spans.map((s) => (s.toMs === Infinity ? Date.now() : s.toMs))) + settleMs + QUIET_LEAD_MS;
  await new Promise((r) => setTimeout(r, Math.max(0, leadEndMs - Date.now())));
  const endAt = started + o.seconds * 1000;
  while (Date.now() < endAt) {
    const wait = rng.int(800, 3500);
    const next = Date.now() + wait;
    while (Date.now() < next) {
      heals.sort((a, b) => a.atMs - b.atMs);
      while (heals.length > 0 && heals[0]!.atMs <= Date.now()) heals.shift()!.fn();
      await new Promise((r) => setTimeout(r, 50));
    }
    const a = rng.pick(names);
    const b = rng.pick(names.filter((x) => x !== a));
    const dur = rng.int(1000, 6000);
    const svc = rng.pick(SERVICES)[0];
    faults++;
    const choice = rng.int(0, 12);
    switch (choice) {
      case 0: {
        const group = new Set(rng.shuffle([...names]).slice(0, rng.int(1, names.length - 1)));
        log(`partition ${[...group].join(',')} | ${names.filter((x) => !group.has(x)).join(',')} for ${dur}ms`);
        for (const x of group) for (const y of names) if (!group.has(y)) mesh.cutPair(x, y, true);
        const healed = disturb('partition');
        later(dur, () => {
          for (const x of group) for (const y of names) if (!group.has(y)) mesh.cutPair(x, y, false);
          healed();
        });
        break;
      }
      case 1: {
        log(`cut ${a}–${b} for ${dur}ms`);
        mesh.cutPair(a, b, true);
        const healed = disturb(`cut ${a}–${b}`);
        later(dur, () => {
          mesh.cutPair(a, b, false);
          healed();
        });
        break;
      }
      case 2: {
        log(`one-way ${a}→${b} stalled for ${dur}ms`);
        mesh.stall(a, b, true);
        const healed = disturb(`one-way ${a}→${b}`);
        later(dur, () => {
          mesh.stall(a, b, false);
          healed();
        });
        break;
      }
      case 3: {
        const d = rng.int(20, 300);
        log(`delay ${a}→${b} ${d}ms ±${d}ms for ${dur}ms`);
        mesh.delay(a, b, d, d);
        const healed = disturb(`delay ${a}→${b}`);
        later(dur, () => {
          mesh.delay(a, b, 0, 0);
          healed();
        });
        break;
      }
      case 4:
      case 5: {
        if (byName(a).proc === null) break;
        log(`kill -9 ${a}`);
        crash(a);
        down.add(a);
        later(rng.int(1000, 5000), () => {
          down.delete(a);
          start(a);
        });
        break;
      }
      case 6: {
        const p = byName(a).proc;
        // Without a fence or a watchdog a frozen koinode is outside the guarantee.
        if (p === null || frozen.has(a) || (o.fence === false && o.watchdog !== true)) break;
        log(`SIGSTOP ${a} for ${dur}ms`);
        p.kill('SIGSTOP');
        frozen.add(a);
        const healed = disturb(`SIGSTOP ${a}`);
        later(dur, () => {
          if (byName(a).proc === p) p.kill('SIGCONT');
          frozen.delete(a);
          healed();
        });
        break;
      }
      case 7: {
        const ev = rng.pick(['start', 'promote', 'demote', 'stop']);
        const f = `fail-${a}-${svc}-${ev}`;
        log(`${a} ${svc}/${ev} fails for ${dur}ms`);
        flag(f);
        later(dur, () => unflag(f));
        break;
      }
      case 8: {
        const ev = rng.pick(['start', 'promote', 'demote', 'status']);
        const f = `hang-${a}-${svc}-${ev}`;
        log(`${a} ${svc}/${ev} hangs for ${dur}ms`);
        flag(f);
        later(dur, () => unflag(f));
        break;
      }
      case 9:
        log(`koi promote ${a}`);
        koiCmd(['promote', a]);
        break;
      case 10: {
        log(`koi maintenance on for ${dur}ms`);
        maintenanceWindows++;
        const ended = disturb('maintenance window');
        koiCmd(['maintenance', 'on']);
        later(dur, () => {
          maintenanceWindows--;
          koiCmd(['maintenance', 'off']);
          ended();
        });
        break;
      }
      case 11: {
        log(`koi stop ${a} for ${dur}ms`);
        stopWindows.set(a, (stopWindows.get(a) ?? 0) + 1);
        const ended = disturb(`stop window of ${a}`);
        koiCmd(['stop', a]);
        later(dur, () => {
          stopWindows.set(a, stopWindows.get(a)! - 1);
          koiCmd(['start', a]);
          ended();
        });
        break;
      }
      case 12: {
        const f = `status-${a}-${svc}`;
        log(`${a} ${svc}/status says 93 for ${dur}ms`);
        flag(f, '93');
        later(dur, () => unflag(f));
        break;
      }
    }
  }

  // Heal everything; then the cluster must converge within the spec's bound.
  sampling = false;
  await sampler;
  log('healing');
  for (const h of heals.splice(0)) h.fn();
  mesh.healAll();
  for (const f of [...flags]) unflag(f);
  for (const n of nodes) {
    if (n.proc !== null && frozen.has(n.name)) n.proc.kill('SIGCONT');
  }
  frozen.clear();
  for (const n of names) start(n);
  disturb('final heal')();
  const healedAt = Date.now();
  const boundMs = convergenceBoundMs(config);
  let converged = false;
  let convergeMs = 0;
  while (Date.now() - healedAt < boundMs) {
    // A machine the fence powered off just before the heal is back at once.
    for (const n of names) start(n);
    // Converged when the status that shows it was asked for (its answer may come later on a loaded machine).
    const askedMs = Date.now() - healedAt;
    const st = await statusOf(nodes, config);
    observe(st);
    if (st !== null) operator(st, true);
    if (st !== null && settledAll(st)) {
      converged = true;
      convergeMs = askedMs;
      break;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  if (!converged) convergeMs = Date.now() - healedAt;

  // The quiet tail: fault-free time once everything the heal set off (restarts,
  // the operator's commands) has had its settle allowance.
  const tailMs = (o.quietTailSeconds ?? Math.max(30, o.seconds / 10)) * 1000;
  const quietFromMs = () => Math.max(healedAt, ...spans.map((s) => (s.toMs === Infinity ? Date.now() : s.toMs))) + settleMs;
  if (tailMs > 0) log(`quiet tail of ${tailMs / 1000}s from ${settleMs}ms after the run's last action`);
  // Bounded, in case the operator keeps finding something to fix.
  const tailEndMs = Date.now() + 3 * (settleMs + tailMs);
  while (tailMs > 0 && Date.now() < quietFromMs() + tailMs && Date.now() < tailEndMs) {
    for (const n of names) start(n);
    const st = await statusOf(nodes, config);
    observe(st);
    if (st !== null) operator(st, true);
    await new Promise((r) => setTimeout(r, 500));
  }
  const countToMs = Date.now();
  clearInterval(zTimer);

  // Graceful stop of every node, then nothing of ours may be left running.
  await Promise.all(
    nodes.map(
      (n) =>
        new Promise<void>((resolve) => {
          const p = n.proc;
          if (p === null) return resolve();
          const t = setTimeout(() => {
            p.kill('SIGKILL');
            resolve();
          }, 15_000);
          p.once('exit', () => {
            clearTimeout(t);
            resolve();
          });
          p.kill('SIGTERM');
        }),
    ),
  );
  mesh.close();
  for (const d of devices.values()) d.stop();
  await new Promise((r) => setTimeout(r, 300));
  const leftovers = processesWith(`KOI_JOURNAL=${journal}`).filter((p) => p !== process.pid).length;

  const priorities = new Map(SERVICES);
  const logs = nodes.map((n) => readFileSync(n.log, 'utf8'));
  const expired = new Map(nodes.map((n, i) => [n.name, leaseExpiries(logs[i]!, started)]));
  const lines = parseJournal(readFileSync(journal, 'utf8'));
  const report = checkJournal(lines, priorities, expired);
  // A machine is down from its crash (the nemesis) or fence (set off by a freeze) until it is started again.
  for (const [ns, node, svc, how] of lines as [string, string, string, string][]) {
    if (svc !== '*') continue;
    const t = Number(BigInt(ns) / 1_000_000n);
    spans.push({ fromMs: t, toMs: starts.get(node)?.find((x) => x >= t) ?? countToMs, what: `${node} ${how}` });
  }
  for (const s of spans) if (s.toMs === Infinity) s.toMs = countToMs;
  const leaders = countLeaderChanges({
    elections: logs.flatMap((l) => electionsIn(l, started)),
    disturbances: spans,
    backoffs: logs.flatMap((l) => takeoverBackoffs(l, started)),
    load: logs.flatMap((l) => loadWarnings(l, started)),
    settleMs,
    fromMs: countFromMs,
    toMs: countToMs,
  });
  const violations = violationsOf({ journal: report, zombies, leftovers, convergeMs: converged ? convergeMs : null, convergeBoundMs: boundMs, leaders });
  if (violations.length === 0 && o.keep !== true && existsSync(root)) rmSync(root, { recursive: true, force: true });
  const replay = [`--seed ${o.seed}`, `--seconds ${o.seconds}`, o.nodes === 5 ? '--nodes 5' : '', o.fence === false ? '--no-fence' : '', o.watchdog === true ? '--watchdog' : '', o.mixedTimings === true ? '--mixed-timings' : '', o.quietTailSeconds !== undefined ? `--quiet-tail ${o.quietTailSeconds}` : ''].filter((x) => x !== '').join(' ');
  return { seed: o.seed, seconds: o.seconds, faults, journal: report, zombies, leftovers, converged, convergeMs, convergeBoundMs: boundMs, leaders, watchdogResets, violations, root, replay };
}

/**
 * SPEC 4.6: leader_timeout + master_lease + demote_timeout + script time.
 * Script time here is the longest script timeout (a script hung when the
 * faults healed runs until it is killed; every later one is quick) plus the
 * start-up of the koinodes restarted at the heal (Node, config, first links).
 */
export const RESTART_ALLOWANCE_MS = 2000;
export function convergenceBoundMs(c: ReturnType<typeof loadConfig>['config']): number {
  const sv = c.service;
  const longestScriptMs = Math.max(sv.startTimeoutMs, sv.stopTimeoutMs, sv.statusTimeoutMs, sv.promoteTimeoutMs, sv.demoteTimeoutMs, sv.failedTimeoutMs);
  return c.time.leaderTimeoutMs + c.time.masterLeaseMs + sv.demoteTimeoutMs + longestScriptMs + RESTART_ALLOWANCE_MS;
}

async function statusOf(nodes: LocalNode[], config: ReturnType<typeof loadConfig>['config']): Promise<StatusJson | null> {
  for (const n of nodes) {
    if (n.proc === null) continue;
    const c = connect(`127.0.0.1:${n.port}`, config);
    try {
      const r = await c.call({ op: 'status' }, 1000);
      if (r.ok && !(r.data as StatusJson).partial) return r.data as StatusJson;
    } catch {
      // try the next one
    } finally {
      c.close();
    }
  }
  return null;
}

function settledAll(s: StatusJson): boolean {
  if (s.cluster.leader === null || s.cluster.master === null || s.cluster.maintenance || s.cluster.manualMaster) return false;
  return s.nodes.every((n) =>
    n.name === s.cluster.master
      ? n.state === 'master' && n.services.every((x) => x.state === 'promoted')
      : n.reachable && n.state === 'slave' && n.services.every((x) => x.state === 'started'),
  );
}

function perMinute(c: LeaderClass): string {
  return `${c.perMinute.toFixed(2)} (${c.changes} in ${(c.ms / 60_000).toFixed(2)} min)`;
}

export function formatResult(r: ChaosResult): string {
  const j = r.journal;
  const rows: [string, string][] = [
    ['seed', String(r.seed)],
    ['seconds run', String(r.seconds)],
    ['faults applied', String(r.faults)],
    ['journal lines', String(j.lines)],
    ['master changes', String(j.masterChanges)],
    ['overlapping master intervals', String(j.overlaps.length)],
    ['time without a master (total)', `${(j.noMasterTotalMs / 1000).toFixed(1)}s`],
    ['longest time without a master', `${(j.noMasterLongestMs / 1000).toFixed(1)}s`],
    ['failover times', j.failoversMs.length === 0 ? '-' : j.failoversMs.map((x) => `${(x / 1000).toFixed(1)}s`).join(' ')],
    ['priority-order violations', String(j.orderViolations.length)],
    ['machines reset by a watchdog', String(r.watchdogResets)],
    ['zombies', String(r.zombies)],
    ['leftover processes', String(r.leftovers)],
    ['converged after final heal', `${r.converged ? 'yes' : 'NO'} in ${(r.convergeMs / 1000).toFixed(1)}s (bound ${(r.convergeBoundMs / 1000).toFixed(1)}s)`],
    ['leader changes per minute, during faults', perMinute(r.leaders.during)],
    ['leader changes per minute, quiet', `${perMinute(r.leaders.quiet)}: ${r.leaders.underLoad.length} after a koinode's load warning, ${r.leaders.unexplained.length} unexplained (tolerated: ${QUIET_LEADER_CHANGES_TOLERATED})`],
    ['  (quiet: ≥ this after any fault, command, restart)', `${(r.leaders.settleMs / 1000).toFixed(1)}s; ${r.leaders.outside} change(s) at start-up/shutdown not counted`],
  ];
  const w = Math.max(...rows.map(([k]) => k.length));
  const lines = rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`);
  if (r.leaders.underLoad.length > 0) lines.push('', 'quiet-time leader changes after a load warning (not findings):', ...r.leaders.underLoad.slice(0, 5).map((v) => `  ${v}`));
  if (r.violations.length > 0) lines.push('', 'VIOLATIONS:', ...r.violations.map((v) => `  ${v}`), `journal and logs kept in ${r.root}`, `replay: npm run chaos -- ${r.replay}`);
  return lines.join('\n');
}
