// The koinode loop: time, peer messages, script results and admin requests go
// into the core; messages, script runs, signals, fences, events and replies
// come out and are carried out here.
import { randomInt } from 'node:crypto';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { KoiNode } from '../core/node';
import type { CoreEvent, Message, PeerInfo, RunRequest } from '../core/types';
import { assertNever } from '../core/types';
import type { KoiConfig } from '../config/config';
import { formatHostPort } from '../config/values';
import { loadConfig, type ConfigFlags } from '../config/load';
import { coreParams } from '../config/core-params';
import type { AdminResponse, StatusJson } from '../admin-types';
import { Authenticator } from '../transport/auth';
import { channelCredentials, serverCredentials } from '../transport/grpc';
import { adminService, peerService } from '../transport/wire';
import { PeerLinks } from '../transport/peers';
import type { AuthError } from '../errors';
import { discoverServices, isDisabled, type DiscoveredService, type Discovery } from '../scripts/discovery';
import { Executor, koiEnv, type ScriptJob } from '../scripts/executor';
import { spawnFence } from '../scripts/fence';
import { RateLimiter, type Log } from '../observe/logger';
import { StateStore } from './state-store';
import { ServicesStore } from './services-store';
import { RunJournal } from './run-journal';
import { Watchdog } from './watchdog';
import { watchdogTimeoutMs } from '../core/runner';
import { applyReady } from './effects';
import { HandlerDispatcher } from '../handlers/dispatcher';
import { diffViews, type ClusterView } from '../handlers/events';
import { createMetrics, noMetrics, type MetricsEndpoint, type MetricsRecorder } from '../observe/recorder';
import type { Server as HttpServer } from 'node:http';
import { buildStatus, type Versions } from './status-view';
import { AdminService } from './admin-service';
import { monotonicMs } from './clock';

export const TICK_MS = 100;
/**
 * What the leader adds to every lease bound, in parts (docs/ARCHITECTURE.md):
 * a tick to notice a deadline, a loop stall up to STALL_LIMIT_MS, a clock
 * rate difference of 0.5 % over lease + demote (33 ms at the defaults) and
 * the kill's own latency.
 */
const STALL_LIMIT_MS = 150;
export const SAFETY_MARGIN_MS = TICK_MS + STALL_LIMIT_MS + 50 + 50;

export interface DaemonOptions {
  config: KoiConfig;
  configFiles: string[] | undefined;
  flags: ConfigFlags;
  log: Log;
  version: string;
  /** `--rejoin`: this node ran before and lost its state_dir. */
  rejoin?: boolean;
}

export class Daemon {
  private config: KoiConfig;
  private readonly log: Log;
  private readonly core: KoiNode;
  private readonly links: PeerLinks;
  private readonly server = new grpc.Server({ 'grpc.keepalive_permit_without_calls': 1, 'grpc.http2.min_ping_interval_without_data_ms': 1000 });
  private readonly executor: Executor;
  private readonly store: StateStore;
  private readonly journal: RunJournal;
  /** What state_dir/runs/holding.json says now (reapLeftovers leaves it while anything is suspect). */
  private holdingRecorded = false;
  private readonly watchdog: Watchdog;
  private readonly incarnation = randomInt(1, 2 ** 31 - 1);
  private readonly auth: Authenticator;
  private readonly services = new Map<string, DiscoveredService>();
  private readonly disabledSeen = new Map<string, boolean>();
  /** Services gone from the folder that the core may still be stopping. */
  private readonly removedServices = new Set<string>();
  private readonly servicesStore: ServicesStore;
  private readonly jobs = new Map<number, { service: string; event: string }>();
  private readonly refusals = new RateLimiter(60_000);
  private timer: NodeJS.Timeout | null = null;
  private rescanTimer: NodeJS.Timeout | null = null;
  private readonly handlers: HandlerDispatcher;
  private readonly admin: AdminService;
  /** The leader's last view for handler events, and since when we lead. */
  private handlerView: ClusterView | null = null;
  private leadingSince: { epoch: number; ms: number } | null = null;
  private ticks = 0;
  /** Counters and histograms: with `[node] metrics` only. */
  private readonly metricsEndpoint: MetricsEndpoint | null = null;
  private readonly metrics: MetricsRecorder = noMetrics;
  private metricsServer: HttpServer | null = null;
  private stopping: { deadlineMs: number; resolve: () => void } | null = null;
  boundPort = 0;
  private lastTickMs = monotonicMs();
  /** Largest lateness of a tick seen (for metrics): how long the loop stalled. */
  maxStallMs = 0;

  constructor(private readonly opts: DaemonOptions) {
    this.config = opts.config;
    this.log = opts.log;
    const c = this.config;
    this.store = new StateStore(c.node.stateDir);
    this.servicesStore = new ServicesStore(c.node.stateDir);
    const persisted = this.store.load();
    // Its state file gone from a state_dir that had one, or the operator says so.
    const stateLost = opts.rejoin === true || (persisted === null && this.store.ranBefore());
    if (persisted === null && !stateLost) this.log.info('state', `first start: no saved state in ${c.node.stateDir} (if this machine ran koinode before and lost its disk, start it once with --rejoin)`);
    this.store.markRan();
    this.journal = new RunJournal(c.node.stateDir, (msg) => this.log.error('scripts', msg));
    // Before anything runs: scripts a killed koinode left behind die first,
    // and services they may have left promoted are demoted before this
    // runner can report itself free.
    const left = this.journal.reapLeftovers((waitedMs, groups) =>
      this.log.error('scripts', `leftover scripts of an earlier koinode still alive after SIGKILL (process groups ${groups.join(', ')}, ${Math.round(waitedMs / 1000)}s): waiting for them before starting — check for processes stuck in the D state`),
    );
    for (const k of left.killed) this.log.warn('scripts', `killed a script left running by an earlier koinode: ${k}`);
    if (c.node.runner) {
      const d = discoverServices(c.service.folder);
      this.logDiscovery(d);
      for (const s of d.services) {
        this.services.set(s.def.name, s);
        this.disabledSeen.set(s.def.name, s.def.disabled ?? false);
      }
      this.log.info('services', `${d.services.length} service(s) in ${c.service.folder}: ${d.services.map((s) => s.def.name).join(', ') || '(none)'}`);
      // Known to an earlier koinode, gone from the folder since (or being
      // taken down when it stopped): it may still run, so it is asked and
      // taken down with the scripts known of it.
      const kept = this.servicesStore.load();
      if (kept.problem !== null) this.log.error('services', kept.problem);
      for (const s of kept.services) {
        if (this.services.has(s.def.name)) continue;
        const path = s.realPath !== undefined && s.realPath !== s.path && existsSync(s.realPath) ? s.realPath : s.path;
        this.services.set(s.def.name, { ...s, path });
        this.removedServices.add(s.def.name);
        this.log.warn('services', `${s.def.name} was a service before this start and is no longer in ${c.service.folder}: it is asked and taken down (${path})`);
      }
      this.saveServices();
    }
    // A predecessor killed while master: every service may still be promoted.
    const interrupted = left.wasHolding ? [...this.services.keys()] : left.interrupted;
    this.holdingRecorded = left.holdingKept;
    if (left.wasHolding) this.log.warn('scripts', 'the earlier koinode died while this runner held the master role: every service counts as promoted (and is demoted) unless its status says stopped');
    else if (interrupted.length > 0) this.log.warn('scripts', `interrupted while the master role may have been held: ${interrupted.join(', ')} — each counts as promoted (and is demoted) unless its status says stopped`);
    const cp = coreParams(c, SAFETY_MARGIN_MS);
    // The hello says the timings safety depends on, so a leader can wait out the longest.
    const self: PeerInfo = { name: c.node.name, elector: c.node.elector, runner: c.node.runner, priority: c.node.priority, masterLeaseMs: cp.masterLeaseMs, demoteTimeoutMs: cp.demoteTimeoutMs };
    // Others are known from their hello; until then they count for nothing.
    const peers = c.cluster.transport.map((p) => (p.name === self.name ? self : { name: p.name, elector: false, runner: false, priority: 0 }));
    this.core = new KoiNode({
      self: self.name,
      peers,
      params: coreParams(c, SAFETY_MARGIN_MS),
      services: [...this.services.values()].filter((s) => !this.removedServices.has(s.def.name)).map((s) => s.def),
      incarnation: this.incarnation,
      nowMs: monotonicMs(),
      persisted,
      stateLost,
      interrupted,
      removed: [...this.removedServices].map((n) => this.services.get(n)!.def),
    });
    this.watchdog = new Watchdog(c.node.runner ? c.node.watchdog : 'off', c.node.watchdogDevice, watchdogTimeoutMs(cp), {
      info: (m) => this.log.info('watchdog', m),
      warn: (m) => this.log.warn('watchdog', m),
      error: (m) => this.log.error('watchdog', m),
    });
    this.core.step({ kind: 'watchdog', state: this.watchdog.probe(!left.holdingKept) }, monotonicMs());
    this.auth = new Authenticator(c.cluster.secret, c.cluster.id, c.node.name);
    this.executor = new Executor({
      onLine: (job, line, stream, background) => this.scriptLine(job, line, stream, background),
      onDone: (job, r) => this.scriptDone(job, r),
    });
    this.handlers = new HandlerDispatcher({
      folder: c.cluster.handlers,
      node: c.node.name,
      log: (level, msg, meta) => this.log[level]('handlers', msg, meta),
    });
    this.links = new PeerLinks(self, c.cluster.transport, this.auth, () => channelCredentials(this.config), {
      onMessage: (from, msg) => this.peerMessage(from, msg),
      onHello: (info) => this.core.setPeerInfo(info),
      onRefused: (from, err) => this.refused(from, err),
      onLinkChange: (peer, up) => this.log.info('transport', `link to ${peer} ${up ? 'up' : 'down'}`),
    }, { softwareVersion: opts.version, protocol: this.auth.protocol, watchdogMode: c.node.runner ? c.node.watchdog : 'off' });
    if (c.node.metrics !== null) {
      this.metricsEndpoint = createMetrics({
        node: c.node.name,
        version: opts.version,
        source: { status: () => this.status(), core: this.core, traffic: () => this.links.traffic, handlerRuns: () => this.handlers.counts },
      });
      this.metrics = this.metricsEndpoint.recorder;
    }
    this.admin = new AdminService(
      {
        core: this.core,
        auth: this.auth,
        config: () => this.config,
        status: () => this.status(),
        traffic: () => this.links.traffic,
        submit: (requestId, command) => this.step({ kind: 'admin', requestId, command }),
        reload: () => this.reload(),
        refused: (from, err) => this.refused(from, err),
      },
      opts.version,
    );
  }

  async start(): Promise<void> {
    const c = this.config;
    this.server.addService(peerService(), { Link: this.links.serve });
    this.server.addService(adminService(), this.admin.implementation());
    const bind = c.node.bind.includes(':') ? `[${c.node.bind}]` : c.node.bind;
    this.boundPort = await new Promise<number>((resolve, reject) =>
      this.server.bindAsync(`${bind}:${c.node.port}`, serverCredentials(c), (err, port) => (err ? reject(new Error(`cannot listen on ${bind}:${c.node.port}: ${err.message}`)) : resolve(port))),
    );
    this.links.start();
    if (c.node.metrics !== null && this.metricsEndpoint !== null) {
      this.metricsServer = this.metricsEndpoint.serve(c.node.metrics, (e) => this.log.error('metrics', `cannot serve metrics on ${c.node.metrics}: ${e.message}`));
      this.log.info('metrics', `status page http://${c.node.metrics}/ and Prometheus /metrics`);
    }
    this.timer = setInterval(() => this.tick(), TICK_MS);
    this.armRescan();
    this.flush();
    this.log.info('daemon', `listening on ${bind}:${this.boundPort} as ${c.node.name} (${c.node.elector ? 'elector' : ''}${c.node.elector && c.node.runner ? '+' : ''}${c.node.runner ? 'runner' : ''}, epoch ${this.core.epoch})`);
    this.notifyReady();
  }

  /** Graceful stop: demote, then stop services in order, within a bound. */
  shutdown(): Promise<void> {
    if (this.stopping !== null) return Promise.resolve();
    const c = this.config;
    const boundMs = c.service.demoteTimeoutMs + c.service.stopTimeoutMs + 5000;
    this.log.info('daemon', `shutting down: demoting and stopping services (at most ${Math.round(boundMs / 1000)}s; signal again to exit at once)`);
    return new Promise((resolve) => {
      this.stopping = { deadlineMs: Date.now() + boundMs, resolve };
      this.step({ kind: 'shutdown' });
      this.checkStopped();
    });
  }

  /** Second signal: kill every script and leave now. */
  forceStop(): void {
    this.executor.killAll();
    this.close();
  }

  close(): void {
    // Disarmed when nothing is held, or in maintenance (no leader frees the
    // role by timing then; stopping koinode on a master to upgrade it is what
    // maintenance is for). Otherwise a koinode that exits while it may still
    // hold the role leaves the watchdog to reset the machine in time.
    if (this.watchdog.armed && this.core.runner !== null && (!this.core.runner.mayHold() || this.core.runner.inMaintenance())) this.watchdog.disarm();
    if (this.timer !== null) clearInterval(this.timer);
    if (this.rescanTimer !== null) clearInterval(this.rescanTimer);
    this.timer = null;
    this.links.close();
    // A handler still running would be left unsupervised: end its process group.
    this.handlers.stop();
    this.metricsServer?.close();
    this.admin.close();
    this.server.forceShutdown();
  }

  // ---- the loop ----------------------------------------------------------------

  private tick(): void {
    const now = monotonicMs();
    // A tick far later than planned means the loop stalled (GC, a slow disk,
    // a paused VM): past the slack of the safety margin a holder lets go.
    const lateMs = now - this.lastTickMs - TICK_MS;
    this.lastTickMs = now;
    this.maxStallMs = Math.max(this.maxStallMs, lateMs);
    if (lateMs > STALL_LIMIT_MS) this.core.step({ kind: 'loop-stalled', stalledMs: lateMs }, now);
    this.core.tick(now);
    this.flush();
    // After the lease check: the only place a keepalive is sent from. The
    // clock is read again: persisting and spawning above may have taken a while.
    this.watchdogStep(monotonicMs());
    this.systemdWatchdog(now);
    if (this.stopping !== null) this.checkStopped();
    if (++this.ticks % 5 === 0) this.handlerEvents();
  }

  /**
   * On the leader: compare the cluster with a moment ago and hand the
   * differences to the handlers. A new leadership waits leader_timeout (so
   * it has heard from everyone), then sends leader-changed and a full sync.
   */
  private handlerEvents(): void {
    if (!this.core.isLeader()) {
      this.leadingSince = null;
      this.handlerView = null;
      return;
    }
    const now = Date.now();
    if (this.leadingSince === null || this.leadingSince.epoch !== this.core.epoch) {
      this.leadingSince = { epoch: this.core.epoch, ms: now };
      this.handlerView = null;
      this.handlers.reset(this.core.epoch);
    }
    if (now - this.leadingSince.ms < this.config.time.leaderTimeoutMs) return;
    const st = this.status();
    const view: ClusterView = {
      leader: this.config.node.name,
      epoch: st.cluster.epoch,
      master: st.cluster.master,
      maintenance: st.cluster.maintenance,
      nodes: st.nodes.map((n) => ({
        name: n.name,
        address: n.address,
        reachable: n.reachable,
        runner: n.runner,
        state: n.state,
        scores: n.services.filter((s) => s.score !== null).map((s) => ({ service: s.name, score: s.score! })),
      })),
    };
    const events = diffViews(this.handlerView, view);
    this.handlerView = view;
    if (events.length === 0) return;
    for (const e of events) this.admin.publish({ node: this.config.node.name, kind: `handler:${e.kind}`, about: e.node });
    this.handlers.push(events, view);
  }

  /** Arm, feed, starve or disarm the watchdog as the core asks. */
  private watchdogStep(now: number): void {
    const runner = this.core.runner;
    const t = this.watchdog.timeoutMs;
    if (runner === null || this.watchdog.mode === 'off' || t === null || this.watchdog.unusableBecause !== null) return;
    const demand = runner.watchdogDemand(now, t);
    switch (demand) {
      case 'feed':
        if (!this.watchdog.armed) {
          if (!this.watchdog.arm()) {
            this.step({ kind: 'watchdog', state: this.watchdog.lostState });
            return;
          }
          this.step({ kind: 'watchdog', state: 'armed' });
        }
        if (!this.watchdog.feed()) this.step({ kind: 'watchdog', state: this.watchdog.lostState });
        return;
      case 'starve':
        return;
      case 'disarm':
        if (this.watchdog.armed) {
          this.watchdog.disarm();
          this.step({ kind: 'watchdog', state: 'ready' });
        }
        return;
      default:
        assertNever(demand);
    }
  }

  private step(input: Parameters<KoiNode['step']>[0]): void {
    this.core.step(input, monotonicMs());
    this.flush();
  }

  private peerMessage(from: string, msg: Message): void {
    const now = monotonicMs();
    this.core.step({ kind: 'message', from, msg }, now);
    // An acknowledgement the leader took in (not a duplicate): its round trip.
    if (msg.kind === 'ack' && Number.isFinite(msg.echoSentMs) && from !== this.config.node.name) {
      const v = this.core.leaderViews()?.get(from);
      if (v !== undefined && v.lastReplyMs === now && v.rttMs !== null) this.metrics.heartbeatRtt(from, v.rttMs);
    }
    this.flush();
  }

  private flush(): void {
    const r = applyReady(this.core, {
      signal: (x) => this.executor.signal(x.runId, x.signal),
      persist: (p) => {
        try {
          this.store.save(p);
        } catch (e) {
          // Without a durable vote we must not send it: stop here loudly.
          this.log.error('state', `cannot write ${this.store.file}: ${(e as Error).message} — koinode stops`);
          process.exit(1);
        }
      },
      send: (m) => this.links.send(m.to, m.msg),
      run: (run) => this.startScript(run),
      fence: (f) => this.fence(f.fenceId, f.node),
      event: (e) => this.event(e),
      reply: (rep) => this.admin.reply(rep),
    });
    for (const x of r.signals) {
      const j = this.jobs.get(x.runId);
      this.log.warn('scripts', `${j?.service}/${j?.event} ran past its time limit: ${x.signal} sent`);
    }
    const holding = this.core.runner?.mayHold() ?? false;
    if (holding !== this.holdingRecorded) {
      this.holdingRecorded = holding;
      this.journal.setHolding(holding);
    }
    this.admin.viewChanged();
    // Master and maintenance flips reach the handlers as they happen, not sampled.
    const hv = this.handlerView;
    if (hv !== null && (hv.master !== this.core.state.master || hv.maintenance !== this.core.state.maintenance)) this.handlerEvents();
  }

  private checkStopped(): void {
    const s = this.stopping;
    if (s === null) return;
    const runner = this.core.runner;
    const done = runner === null || runner.quiescent() || this.core.state.maintenance;
    if (done || Date.now() > s.deadlineMs) {
      if (!done) {
        this.log.warn('daemon', 'shutdown bound reached: killing the scripts still running');
        this.executor.killAll();
      }
      this.close();
      s.resolve();
    }
  }

  // ---- scripts -----------------------------------------------------------------

  private startScript(run: RunRequest): void {
    const svc = this.services.get(run.service);
    if (svc === undefined) {
      setImmediate(() => this.step({ kind: 'script-done', runId: run.runId, exitCode: 127, signal: null, output: [`service ${run.service} is gone`], wallMs: Date.now() }));
      return;
    }
    this.jobs.set(run.runId, { service: run.service, event: run.event });
    // Routine status checks go to debug: they run every status_interval.
    this.log[run.event === 'status' ? 'debug' : 'info']('scripts', `${run.service}/${run.event}${run.urgent ? ' (lease expired: all at once)' : ''}`, { service: run.service, event: run.event });
    const token = this.journal.begin(run.runId, this.incarnation, run.service, run.event, run.mayHold);
    this.executor.start({
      id: run.runId,
      service: svc,
      event: run.event,
      env: { ...koiEnv({ ...run.vars, event: run.event, service: run.service, node: this.config.node.name }), KOI_RUN: token },
    });
    this.journal.spawned(run.runId, this.executor.pidOf(run.runId));
  }

  /** KOI_SCORE lines of running status scripts, by run (the last one counts). */
  private readonly scores = new Map<number, number>();

  private scriptLine(job: ScriptJob, line: string, stream: 'stdout' | 'stderr', background = false): void {
    if (job.event === 'status' && !background && stream === 'stdout') {
      const score = parseScore(line);
      if (score === 'bad') this.log.warn('scripts', `${job.service.def.name}/status: ignoring "${line.slice(0, 80)}" — KOI_SCORE must be a whole number from 0 to ${Number.MAX_SAFE_INTEGER}`);
      else if (score !== null) this.scores.set(job.id, score);
    }
    if (background) this.log.info('script', `(background of ${job.service.def.name}/${job.event}) ${line}`, { service: job.service.def.name, event: job.event, stream, background: true });
    else this.log.info('script', line, { service: job.service.def.name, event: job.event, stream });
  }

  private scriptDone(job: ScriptJob, r: { exitCode: number | null; signal: string | null; tail: string[]; durationMs: number }): void {
    // A script that could not run because its file left the folder since the
    // last scan (the service removed or renamed, the script removed): the
    // core hears of the change first, and the run is no verdict.
    const file = job.service.single ? job.service.path : join(job.service.path, job.event);
    const vanished = r.exitCode === 127 && r.signal === null && !existsSync(file);
    if (vanished) this.rescan();
    this.jobs.delete(job.id);
    const score = this.scores.get(job.id) ?? null;
    this.scores.delete(job.id);
    this.journal.end(job.id);
    const ok = r.exitCode === 0 && r.signal === null;
    const failedStatus = job.event === 'status' && !(r.signal === null && [0, 90, 91, 92, 93].includes(r.exitCode ?? -1));
    this.metrics.scriptDone(job.service.def.name, job.event, r.durationMs, (!ok && job.event !== 'status') || failedStatus);
    const how = r.signal !== null ? `killed by ${r.signal}` : `exit ${r.exitCode}`;
    const msg = `${job.service.def.name}/${job.event} ${how} after ${r.durationMs}ms`;
    if (ok || job.event === 'status') this.log.debug('scripts', msg);
    else this.log.warn('scripts', msg);
    this.step({ kind: 'script-done', runId: job.id, exitCode: r.exitCode, signal: r.signal, output: r.tail, wallMs: Date.now(), score, vanished });
  }

  private saveServices(): void {
    try {
      this.servicesStore.save([...this.services.values()]);
    } catch (e) {
      this.log.error('services', `cannot write the known services to ${this.config.node.stateDir}: ${(e as Error).message} — a koinode restarted now would not take down services removed meanwhile`);
    }
  }

  /**
   * The original rescanned its services folder at every status round; a
   * `disabled` file is seen within 5 s even when status rounds are rare.
   */
  private armRescan(): void {
    if (this.rescanTimer !== null) clearInterval(this.rescanTimer);
    this.rescanTimer = setInterval(() => this.rescan(), Math.min(this.config.time.statusIntervalMs, 5000));
  }

  /** What the last scan said, so each warning is logged once while it lasts. */
  private scanNotes = new Set<string>();

  private logDiscovery(d: Discovery): void {
    const notes = new Set<string>();
    const say = (level: 'warn' | 'error', text: string) => {
      notes.add(text);
      if (!this.scanNotes.has(text)) this.log[level]('services', text);
    };
    for (const w of [...d.warnings, ...d.names]) say('warn', w);
    for (const p of d.problems) say('error', p);
    this.scanNotes = notes;
  }

  /**
   * Look at the services folder again (every status round, SIGHUP, koi
   * reconfigure): services added, removed or changed, and `disabled` files.
   * A removed service stays known here until the core has stopped and
   * forgotten it, so its stop can still run with what is known of it.
   */
  rescan(): void {
    if (!this.config.node.runner || this.stopping !== null) return;
    const d = discoverServices(this.config.service.folder);
    this.logDiscovery(d);
    if (d.unreadable) return;
    const found = new Map(d.services.map((s) => [s.def.name, s]));
    const added: string[] = [];
    const changed: string[] = [];
    const removed: string[] = [];
    const shape = (s: DiscoveredService) => JSON.stringify({ ...s.def, disabled: undefined, path: s.path, single: s.single });
    for (const [name, s] of found) {
      const old = this.services.get(name);
      if (old === undefined || this.removedServices.has(name)) added.push(name);
      else if (shape(old) !== shape(s)) changed.push(name);
    }
    for (const name of this.services.keys()) if (!found.has(name) && !this.removedServices.has(name)) removed.push(name);
    // Forget what the core has forgotten.
    const known = new Set((this.core.runner?.services ?? []).map((s) => s.def.name));
    for (const name of this.removedServices) {
      if (!known.has(name) && !found.has(name)) {
        this.services.delete(name);
        this.removedServices.delete(name);
      }
    }
    if (added.length + changed.length + removed.length > 0) {
      for (const name of removed) {
        this.removedServices.add(name);
        // Its link may be what left: the scripts behind it can still stop it.
        const old = this.services.get(name)!;
        if (old.realPath !== undefined && old.realPath !== old.path && existsSync(old.realPath)) this.services.set(name, { ...old, path: old.realPath });
      }
      for (const [name, s] of found) {
        this.services.set(name, s);
        this.removedServices.delete(name);
        if (!this.disabledSeen.has(name)) this.disabledSeen.set(name, s.def.disabled ?? false);
      }
      const parts = [
        added.length > 0 ? `added ${added.join(', ')}` : '',
        changed.length > 0 ? `changed ${changed.join(', ')}` : '',
        removed.length > 0 ? `removed ${removed.join(', ')} (stopped with the scripts known of it, then forgotten)` : '',
      ].filter((x) => x !== '');
      this.log.info('services', `${this.config.service.folder}: ${parts.join('; ')}`);
      this.step({ kind: 'services-found', services: d.services.map((s) => s.def) });
    }
    this.saveServices();
    for (const s of d.services) {
      const now = isDisabled(s);
      if (this.disabledSeen.get(s.def.name) !== now) {
        this.disabledSeen.set(s.def.name, now);
        this.log.info('services', `${s.def.name} ${now ? 'disabled (a disabled file appeared)' : 'enabled again'}`);
        this.step({ kind: 'service-disabled', service: s.def.name, disabled: now });
      }
    }
  }

  private fence(fenceId: number, node: string): void {
    const file = this.config.cluster.fence;
    const addr = this.config.cluster.transport.find((p) => p.name === node);
    if (file === null || addr === undefined) {
      this.step({ kind: 'fence-done', fenceId, ok: false });
      return;
    }
    spawnFence(
      { file, node, address: formatHostPort(addr), master: this.core.state.master, leader: this.core.leader, epoch: this.core.epoch },
      (level, msg) => this.log[level]('fence', msg),
      (ok) => this.step({ kind: 'fence-done', fenceId, ok }),
    );
  }

  // ---- events ------------------------------------------------------------------

  private event(e: CoreEvent): void {
    switch (e.kind) {
      case 'dropped':
        if (this.refusals.allow(`drop:${e.from}:${e.reason}`)) this.log.warn('core', `dropped a message from ${e.from}: ${e.reason}`);
        return;
      case 'warning':
        this.log.warn('core', e.text);
        break;
      case 'leader-elected':
        this.log.info('election', `elected leader for epoch ${e.epoch}`);
        break;
      case 'stepped-down':
        this.log.warn('election', `stepped down in epoch ${e.epoch}: ${e.reason}`);
        break;
      case 'leader-lost':
        this.log.warn('election', `lost the leader: ${e.reason}`);
        break;
      case 'campaign':
        this.log.debug('election', `campaign for epoch ${e.epoch}${e.takeover ? ' (takeover)' : ''}`);
        break;
      case 'master-designated':
        this.metrics.failover();
        this.log.info('master', `${e.master} is master (${e.reason}, epoch ${e.epoch})`);
        break;
      case 'master-revoked':
        this.log.warn('master', `${e.master} is no longer master: ${e.reason}`);
        break;
      case 'lease-expired':
        this.log.warn('runner', 'master lease expired without renewal: demoting every service now');
        break;
      case 'fence-requested':
        break;
      case 'fence-result':
        this.metrics.fence(e.ok);
        if (!e.ok && e.retryInMs !== null) {
          this.log.warn('fence', `next fence attempt of ${e.node} in ${(e.retryInMs / 1000).toFixed(1)}s; meanwhile the leases granted before the failed attempt are waited out`);
        }
        break;
      case 'runner-failed':
        this.log.error('runner', `failed: ${e.service}/${e.event}`);
        break;
      case 'runner-recovered':
        this.log.info('runner', `recovered${e.automatic ? ' automatically' : ' by koi recover'}`);
        break;
      case 'state-changed':
        this.log.debug('state', e.what);
        break;
    }
    this.admin.publish({ node: this.config.node.name, ...e });
  }

  private refused(from: string, err: AuthError): void {
    if (this.refusals.allow(`${from}:${err.reason}`)) {
      this.log.warn('transport', `refused ${from}: ${err.message} (logged once a minute per sender)`);
    }
  }

  status(): StatusJson {
    return buildStatus(this.core, this.config, monotonicMs(), this.versions());
  }

  private versions(): Versions {
    const p = this.auth.protocol;
    return { self: { software: this.opts.version, protocol: `${p.major}.${p.maxMinor}`, compatible: true }, peers: this.links.versions };
  }

  /** SIGHUP or `koi reconfigure`: apply what can change live; keep the old on error. */
  reload(): Promise<AdminResponse> {
    let next: KoiConfig;
    try {
      next = loadConfig(this.opts.configFiles, this.opts.flags).config;
    } catch (e) {
      this.log.error('config', `reload refused, the old configuration stays: ${(e as Error).message}`);
      return Promise.resolve({ ok: false, code: 'refused', error: (e as Error).message });
    }
    const old = this.config;
    const fixed: string[] = [];
    const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
    if (!same(old.node, { ...next.node, metrics: old.node.metrics })) fixed.push('[node]');
    if (!same(old.cluster.transport, next.cluster.transport) || old.cluster.id !== next.cluster.id || old.cluster.quorum !== next.cluster.quorum) fixed.push('[cluster] transport/id/quorum');
    if (old.service.folder !== next.service.folder) fixed.push('[service] folder');
    this.config = { ...next, node: old.node, cluster: { ...next.cluster, transport: old.cluster.transport, id: old.cluster.id, quorum: old.cluster.quorum }, service: { ...next.service, folder: old.service.folder } };
    this.auth.setSecret(this.config.cluster.secret);
    const p = coreParams(this.config, SAFETY_MARGIN_MS);
    this.core.updateParams(p);
    const c = this.config.node;
    this.links.setSelf({ name: c.name, elector: c.elector, runner: c.runner, priority: c.priority, masterLeaseMs: p.masterLeaseMs, demoteTimeoutMs: p.demoteTimeoutMs });
    const note = fixed.length > 0 ? `; ${fixed.join(', ')} changed but need a restart of koinode` : '';
    this.log.info('config', `reloaded ${next.file}${note}`);
    if (old.time.statusIntervalMs !== this.config.time.statusIntervalMs && this.rescanTimer !== null) this.armRescan();
    this.rescan();
    return Promise.resolve({ ok: true, code: 'ok', data: { reloaded: next.file, needRestart: fixed } });
  }

  /** systemd's WatchdogSec: half its interval between WATCHDOG=1 (0: not asked). */
  private readonly sdWatchdogMs = systemdWatchdogIntervalMs();
  private sdWatchdogLastMs = -Infinity;
  private sdWatchdogFailed = false;

  /**
   * Tell systemd the loop is alive, so a hung koinode is restarted (its
   * successor kills what it left running: run-journal.ts).
   */
  private systemdWatchdog(now: number): void {
    if (this.sdWatchdogMs === 0 || now - this.sdWatchdogLastMs < this.sdWatchdogMs) return;
    this.sdWatchdogLastMs = now;
    const child = spawn('systemd-notify', [`--pid=${process.pid}`, 'WATCHDOG=1'], { stdio: 'ignore' });
    child.on('error', (e) => {
      if (!this.sdWatchdogFailed) this.log.warn('daemon', `systemd-notify WATCHDOG=1 failed: ${e.message} — systemd will restart koinode when WatchdogSec passes`);
      this.sdWatchdogFailed = true;
    });
  }

  private notifyReady(): void {
    if (process.env.NOTIFY_SOCKET === undefined) return;
    const child = spawn('systemd-notify', ['--ready', `--pid=${process.pid}`], { stdio: 'ignore' });
    child.on('error', (e) => this.log.warn('daemon', `systemd-notify failed: ${e.message}`));
  }
}

/** Half of systemd's WATCHDOG_USEC when it is meant for this process, else 0. */
function systemdWatchdogIntervalMs(): number {
  const usec = Number(process.env.WATCHDOG_USEC ?? '');
  const pid = process.env.WATCHDOG_PID;
  if (process.env.NOTIFY_SOCKET === undefined || !Number.isFinite(usec) || usec <= 0) return 0;
  if (pid !== undefined && pid !== '' && Number(pid) !== process.pid) return 0;
  return Math.max(TICK_MS, usec / 1000 / 2);
}

/** A status script's `KOI_SCORE=<n>` line: the number, 'bad' when malformed, null for any other line. */
export function parseScore(line: string): number | 'bad' | null {
  const m = /^\s*KOI_SCORE=(.*)$/.exec(line);
  if (m === null) return null;
  const v = m[1]!.trim();
  if (!/^\d{1,16}$/.test(v)) return 'bad';
  const n = Number(v);
  return Number.isSafeInteger(n) ? n : 'bad';
}
