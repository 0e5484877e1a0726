// One koi node as a deterministic state machine: feed it time with tick(),
// everything else with step(), then take ready() and call advance().
import type {
  AdminCommand,
  AdminReply,
  Blocker,
  ClusterState,
  CoreParams,
  ElectorRole,
  Input,
  Message,
  NodeName,
  PeerInfo,
  PersistedState,
  Ready,
  RunnerReport,
  ServiceDef,
} from './types';
import { assertNever } from './types';
import { cloneState, compareVersion, everDesignated, initialClusterState, MAX_FAILURE_RECORDS, outranks } from './state';
import { decideVote, newestState, oldGrantsBoundMs, rejoiningMayVote, type GrantedVote } from './election';
import {
  applyCommand,
  blockerReason,
  chooseMaster,
  confirmedFree,
  inheritedDesignationPending,
  mayBeRunner,
  mayHold,
  newView,
  presumedDown,
  reachable,
  refuseCommand,
  revokeReason,
  targetLost,
  type MasterContext,
  type NodeView,
} from './master';
import { fenceRetryMs } from './fencing';
import { Runner, sameFailure, type RunnerOutput } from './runner';

export interface NodeSetup {
  self: NodeName;
  peers: PeerInfo[];
  params: CoreParams;
  services: ServiceDef[];
  /** Distinguishes this process from earlier ones of the same node (edge-chosen). */
  incarnation: number;
  nowMs: number;
  persisted: PersistedState | null;
  /** This node ran before and its saved state is gone (or the operator said --rejoin). */
  stateLost?: boolean;
  /**
   * Services whose scripts an earlier koinode left running while it may have
   * held the master role (the edge killed them before this core began):
   * each counts as promoted until its status says stopped or a demote ran.
   */
  interrupted?: string[];
  /**
   * Services an earlier koinode had seen leave the folder and had not
   * forgotten yet (they may still run, even as master): each is asked and
   * taken down as a removed service.
   */
  removed?: ServiceDef[];
}

interface Campaign {
  epoch: number;
  preVote: boolean;
  takeover: boolean;
  startedMs: number;
  votes: Map<NodeName, GrantedVote>;
  /** Takeover pre-vote: every node that answered (granted or not). */
  answered: Set<NodeName>;
  /** Takeover pre-vote: the nodes the leader reaches; we must reach them all. */
  mustReach: NodeName[];
  /** The acknowledgement window this campaign's vote requests announce. */
  windowMs: number;
  /**
   * A rescue: the leader has had no master for a while and does not reach
   * some runners; this campaign must reach all it reaches and one of those
   * (`mustReachOneOf`), whatever the ranks.
   */
  rescue: boolean;
  mustReachOneOf: NodeName[];
  /** When a quorum of votes had arrived (null: not yet). */
  quorumAtMs: number | null;
}

interface PendingReply {
  requestId: number;
  command: AdminCommand;
  versionEpoch: number;
  versionSeq: number;
  deadlineMs: number;
}

interface Leadership {
  electedMs: number;
  seq: number;
  lastHeartbeatMs: number;
  heartbeatDue: boolean;
  views: Map<NodeName, NodeView>;
  oldGrantsBoundMs: number;
  lastQuorumMs: number;
  pending: PendingReply[];
  /** Runners that keep the leader from promoting its candidate, as last seen. */
  blockers: Blocker[];
  /** Fence attempts in flight: their target and the heartbeat sequence when they began. */
  fences: Map<number, { node: NodeName; seq: number }>;
  /**
   * State version naming the current master (its designation in this
   * leadership, or this leadership's first version for an inherited master),
   * until a quorum of electors holds it; null once it does. No lease goes
   * out before.
   */
  designationPending: { versionEpoch: number; versionSeq: number } | null;
  /** The slow-network warning is on (logged once per episode). */
  networkWarned: boolean;
}

export interface NodeStats {
  staleDropped: number;
  unknownDropped: number;
  duplicateDropped: number;
}

function emptyReady(): Ready {
  return { messages: [], runs: [], signals: [], fences: [], events: [], replies: [], persist: null };
}

export class KoiNode {
  readonly name: NodeName;
  readonly self: PeerInfo;
  readonly peers: Map<NodeName, PeerInfo>;
  readonly params: CoreParams;
  /**
   * Until when (own clock) a leader whose heartbeat or vote request we
   * acknowledged may count us towards a quorum: see oldGrantsBoundMs.
   */
  private grantsEndMs: number;
  /** The widest window ever acknowledged (persisted). */
  private maxAckWindowMs: number;
  /** Rejoining: since when the leader we follow has said it is quorate without rejoiners (null: not now). */
  private rejoinQuorateSinceMs: number | null = null;
  readonly incarnation: number;
  readonly stats: NodeStats = { staleDropped: 0, unknownDropped: 0, duplicateDropped: 0 };

  epoch: number;
  votedFor: NodeName | null;
  role: ElectorRole = 'follower';
  leader: NodeName | null = null;
  state: ClusterState;
  readonly runner: Runner | null;

  private nowMs: number;
  private lastLeaderMs: number;
  private followingSinceMs: number;
  /** Last time this node acknowledged any leader (or voted); boot counts. */
  private lastAckMs: number;
  private backoffUntilMs = -Infinity;
  /** Takeovers in a row that did not win; each waits twice as long as the last. */
  private takeoverFailures = 0;
  /** What the leader we follow says it reaches (its last heartbeat); null: unknown. */
  private leaderReach: NodeName[] | null = null;
  /** Since when the leader we follow has had no master (null: it has one, or no leader). */
  private masterlessSinceMs: number | null = null;
  private failedCampaignUntilMs = -Infinity;
  private campaign: Campaign | null = null;
  private heartbeatSeqSeen = -1;
  private lead: Leadership | null = null;
  private lastReportKey = '';
  /** Peers whose hello arrived: only their roles in `peers` are facts. */
  private readonly heard = new Set<NodeName>();
  private reportChanges = -1;
  private nextRunId = 1;
  private nextFenceId = 1;
  private out: Ready = emptyReady();
  private persistDirty = false;
  private readonly inbox: { from: NodeName; msg: Message }[] = [];
  /**
   * Since when this node has been rejoining after a lost state (null: it is
   * not): it grants no vote and runs no real campaign until it has followed
   * a leader for leader_timeout and holds that leader's state.
   */
  private rejoiningSinceMs: number | null = null;

  constructor(setup: NodeSetup) {
    this.name = setup.self;
    this.params = setup.params;
    this.peers = new Map(setup.peers.map((p) => [p.name, p]));
    const self = this.peers.get(setup.self);
    if (self === undefined) throw new Error(`node ${setup.self} is not among the peers`);
    this.self = self;
    // A peer's roles in `peers` are facts only once its hello arrives (setPeerInfo).
    this.heard.add(setup.self);
    this.incarnation = setup.incarnation;
    const p = setup.params;
    void p;
    this.nowMs = setup.nowMs;
    this.lastLeaderMs = setup.nowMs;
    this.followingSinceMs = setup.nowMs;
    this.lastAckMs = setup.nowMs;
    // A restart forgets when it last acknowledged: assume just now, with the
    // widest window it ever acknowledged (saved) or could under its settings.
    this.maxAckWindowMs = setup.persisted?.ackWindowMs ?? 0;
    this.grantsEndMs = setup.nowMs + Math.max(setup.params.leaderTimeoutMs, this.maxAckWindowMs);
    this.epoch = setup.persisted?.epoch ?? 0;
    this.votedFor = setup.persisted?.votedFor ?? null;
    this.state = setup.persisted ? cloneState(setup.persisted.state) : initialClusterState();
    // Save at once: a state_dir that has run once is never taken for a first start again.
    if (setup.persisted === null) this.persistDirty = true;
    if (setup.stateLost === true || setup.persisted?.rejoining === true) {
      this.rejoiningSinceMs = setup.nowMs;
      this.persistDirty = true;
      this.out.events.push({
        kind: 'warning',
        text: 'saved state lost (or --rejoin): this node votes again only once it has followed a leader for leader_timeout and taken its state',
      });
    }
    this.runner = self.runner
      ? new Runner(setup.self, p, setup.services, setup.incarnation, () => this.nextRunId++, setup.nowMs, this.state.maintenance, setup.interrupted, setup.removed)
      : null;
    // Peers not heard from yet may be electors: count them, as the default quorum does.
    const electors = this.possibleElectors();
    if (p.quorum <= electors / 2) {
      this.out.events.push({
        kind: 'warning',
        text: `quorum ${p.quorum} of ${electors} electors: two partitions can each elect a leader and promote a master`,
      });
    }
  }

  // ---- the four entry points -------------------------------------------

  tick(nowMs: number): void {
    this.nowMs = Math.max(this.nowMs, nowMs);
    if (this.role === 'leader') this.leaderTick();
    else this.followerTick();
    this.runnerTick();
    this.drain();
  }

  step(input: Input, nowMs: number): void {
    this.nowMs = Math.max(this.nowMs, nowMs);
    switch (input.kind) {
      case 'message':
        this.receive(input.from, input.msg);
        break;
      case 'script-done': {
        const o = this.runnerOut();
        this.runner?.scriptDone(this.nowMs, input.runId, input.exitCode, input.signal, input.output, input.wallMs, o, input.score ?? null, input.vanished === true);
        this.runnerTick();
        break;
      }
      case 'fence-done':
        this.fenceDone(input.fenceId, input.ok);
        break;
      case 'admin':
        this.admin(input.requestId, input.command);
        break;
      case 'service-disabled':
        this.runner?.setDisabled(input.service, input.disabled);
        this.runnerTick();
        break;
      case 'services-found':
        this.runner?.setServices(input.services);
        this.runnerTick();
        break;
      case 'shutdown':
        this.runner?.shutDown();
        this.runnerTick();
        break;
      case 'watchdog':
        this.runner?.setWatchdog(input.state);
        this.runnerTick();
        break;
      case 'loop-stalled':
        if (this.runner?.loopStalled(this.nowMs, input.stalledMs) === true) {
          this.out.events.push({ kind: 'warning', text: `event loop stalled for ${Math.round(input.stalledMs)}ms with less lease than that left: letting go of the master role now` });
        }
        this.runnerTick();
        break;
      default:
        assertNever(input);
    }
    this.drain();
  }

  ready(): Ready {
    if (this.persistDirty) {
      this.out.persist = {
        epoch: this.epoch,
        votedFor: this.votedFor,
        state: cloneState(this.state),
        ...(this.rejoiningSinceMs !== null ? { rejoining: true } : {}),
        ...(this.maxAckWindowMs > 0 ? { ackWindowMs: this.maxAckWindowMs } : {}),
      };
      this.persistDirty = false;
    }
    return this.out;
  }

  advance(): void {
    this.out = emptyReady();
  }

  // ---- configuration changes from the edge -----------------------------------

  /** What a peer told us about itself (its hello): roles and Bully priority. */
  setPeerInfo(info: PeerInfo): void {
    const p = this.peers.get(info.name);
    if (p === undefined || info.name === this.name) return;
    p.elector = info.elector;
    p.runner = info.runner;
    p.priority = info.priority;
    this.heard.add(info.name);
    for (const key of ['masterLeaseMs', 'demoteTimeoutMs'] as const) {
      const theirs = info[key];
      if (theirs === undefined || theirs === p[key]) continue;
      p[key] = theirs;
      if (theirs !== this.params[key]) {
        this.out.events.push({
          kind: 'warning',
          text: `${info.name} says ${key === 'masterLeaseMs' ? 'master_lease' : 'demote_timeout'} = ${theirs}ms, ours is ${this.params[key]}ms: a leader waits out the longest, a runner keeps to the shortest`,
        });
      }
    }
  }

  /**
   * A rejoining node is whole again once it has followed a leader that has
   * a quorum without counting rejoining nodes (so not a deposed one: the
   * voters of any later leader stopped acknowledging it) for twice
   * leader_timeout, and holds that leader's current state: it counts the
   * leader's epoch as one it voted in (for that leader), and votes normally
   * in later ones. (A deposed leader may keep a quorum of earlier
   * acknowledgements for one window, at most leader_timeout.)
   */
  private checkRejoined(leader: NodeName, msg: Extract<Message, { kind: 'heartbeat' }>): void {
    if (this.rejoiningSinceMs === null) return;
    if (msg.quorate === false) {
      this.rejoinQuorateSinceMs = null;
      return;
    }
    if (this.rejoinQuorateSinceMs === null) this.rejoinQuorateSinceMs = this.nowMs;
    if (this.nowMs - this.rejoinQuorateSinceMs < 2 * this.params.leaderTimeoutMs) return;
    if (compareVersion(this.state, { versionEpoch: msg.stateVersionEpoch, versionSeq: msg.stateVersionSeq }) < 0) return;
    this.rejoiningSinceMs = null;
    if (this.votedFor === null) this.votedFor = leader;
    this.persistDirty = true;
    this.out.events.push({ kind: 'warning', text: `rejoined: holds the state of leader ${leader} (epoch ${this.epoch}); votes again` });
  }

  /** A reload changed timings or limits (the object is shared with the runner). */
  updateParams(next: Partial<CoreParams>): void {
    Object.assign(this.params, next);
  }

  // ---- introspection (CLI, metrics, simulator) ----------------------------

  isLeader(): boolean {
    return this.role === 'leader';
  }

  /** Still rejoining after a lost state: it grants no vote yet. */
  isRejoining(): boolean {
    return this.rejoiningSinceMs !== null;
  }

  /** Whether this node's hello has arrived (its roles in `peers` are facts). */
  knowsRoles(name: NodeName): boolean {
    return this.heard.has(name);
  }

  /** What the leader waits for before it promotes anyone (empty: nothing, or not leader). */
  blockers(): readonly Blocker[] {
    return this.lead?.blockers ?? [];
  }

  leaderViews(): ReadonlyMap<NodeName, NodeView> | null {
    return this.lead?.views ?? null;
  }

  // ---- messages ----------------------------------------------------------

  private send(to: NodeName, msg: Message): void {
    if (to === this.name) this.inbox.push({ from: to, msg });
    else this.out.messages.push({ to, msg });
  }

  private drain(): void {
    for (let guard = 0; this.inbox.length > 0; guard++) {
      if (guard > 1000) throw new Error('self-delivery loop');
      const m = this.inbox.shift()!;
      this.receive(m.from, m.msg);
    }
    this.maybeSendReport();
  }

  /** The one place where epochs are compared: stale messages stop here. */
  private receive(from: NodeName, msg: Message): void {
    if (!this.peers.has(from)) {
      this.stats.unknownDropped++;
      this.out.events.push({ kind: 'dropped', from, reason: 'not a configured peer' });
      return;
    }
    if (msg.kind === 'vote' && !msg.granted) {
      // A refusal carries the voter's own epoch and grants nothing, so it is
      // never stale: it either shows us a newer epoch or asks us to yield.
      const c = this.campaign;
      if (c !== null && c.preVote && msg.preVote && c.takeover) {
        c.answered.add(from);
        this.checkVotes();
      }
      if (msg.epoch > this.epoch) this.adoptEpoch(msg.epoch, `${from} is at a newer epoch`);
      else if (msg.outranked) this.yieldTo();
      return;
    }
    if (msg.epoch < this.epoch) {
      this.stats.staleDropped++;
      // Tell a stale leader or candidate where the cluster is, so it catches up.
      if (msg.kind === 'heartbeat') this.send(from, this.ackMessage(msg.seq, msg.sentMs, false));
      else if (msg.kind === 'vote-req') this.send(from, this.voteMessage(this.epoch, msg.preVote, false, false));
      return;
    }
    switch (msg.kind) {
      case 'heartbeat':
        if (msg.epoch > this.epoch) this.adoptEpoch(msg.epoch, `heartbeat from ${from}`);
        this.onHeartbeat(from, msg);
        break;
      case 'ack':
        if (msg.epoch > this.epoch) this.adoptEpoch(msg.epoch, `${from} is at a newer epoch`);
        else this.onAck(from, msg);
        break;
      case 'vote-req':
        this.onVoteRequest(from, msg);
        break;
      case 'vote':
        this.onVote(from, msg);
        break;
      default:
        assertNever(msg);
    }
  }

  private adoptEpoch(epoch: number, reason: string): void {
    if (epoch <= this.epoch) return;
    if (this.role === 'leader') this.stepDown(reason);
    this.epoch = epoch;
    this.votedFor = null;
    this.role = 'follower';
    this.campaign = null;
    this.setLeader(null);
    // Someone is running or leading in that epoch: give its heartbeat a
    // leader_timeout to arrive before campaigning over it.
    this.lastLeaderMs = this.nowMs;
    this.persistDirty = true;
  }

  private setLeader(leader: NodeName | null): void {
    if (this.leader === leader) return;
    this.leader = leader;
    this.heartbeatSeqSeen = -1;
    this.followingSinceMs = this.nowMs;
    this.leaderReach = null;
    this.masterlessSinceMs = null;
    this.rejoinQuorateSinceMs = null;
    this.takeoverFailures = 0;
    if (leader === null) this.runner?.leaderLost();
  }

  // ---- follower side -----------------------------------------------------

  private onHeartbeat(from: NodeName, msg: Extract<Message, { kind: 'heartbeat' }>): void {
    if (this.role === 'leader' && from !== this.name) {
      // Only a quorum smaller than a majority lets two leaders share an epoch.
      if (this.params.quorum > this.possibleElectors() / 2) throw new Error(`two leaders in epoch ${msg.epoch}: ${this.name} and ${from}`);
      if (outranks(this.self, this.peers.get(from)!)) return;
      this.stepDown(`${from} leads epoch ${msg.epoch} too and outranks us`);
    }
    if (this.role === 'candidate') {
      this.role = 'follower';
      this.campaign = null;
    }
    // A pre-vote started before this leader's first heartbeat would otherwise
    // go on to a real campaign and unseat it. A takeover keeps running: it
    // is meant to replace a live leader.
    if (this.campaign !== null && !this.campaign.takeover) this.campaign = null;
    this.setLeader(from);
    if (msg.seq <= this.heartbeatSeqSeen) {
      this.stats.duplicateDropped++;
      return;
    }
    this.heartbeatSeqSeen = msg.seq;
    this.lastLeaderMs = this.nowMs;
    const reach = msg.reach ?? null;
    if (reach !== null && this.leaderReach !== null && !sameMembers(reach, this.leaderReach)) {
      // What the leader reaches changed: an earlier failed takeover or rescue says nothing now.
      this.takeoverFailures = 0;
      this.backoffUntilMs = Math.min(this.backoffUntilMs, this.nowMs);
    }
    this.leaderReach = reach;
    if (msg.master !== null) this.masterlessSinceMs = null;
    else if (this.masterlessSinceMs === null) this.masterlessSinceMs = this.nowMs;
    this.acknowledged(msg.windowMs ?? this.baseWindowMs());
    this.lastAckMs = this.nowMs;
    if (msg.state !== null && compareVersion(msg.state, this.state) > 0) {
      this.state = cloneState(msg.state);
      this.persistDirty = true;
    }
    this.checkRejoined(from, msg);
    const committed = compareVersion(this.state, { versionEpoch: msg.commitVersionEpoch, versionSeq: msg.commitVersionSeq }) <= 0;
    this.runner?.onHeartbeat(
      this.nowMs,
      { epoch: msg.epoch, seq: msg.seq, master: msg.master, masterEpoch: msg.masterEpoch, grant: msg.grant },
      this.state,
      committed,
    );
    this.runnerTick();
    this.send(from, this.ackMessage(msg.seq, msg.sentMs, true, msg.windowMs ?? this.baseWindowMs()));
  }

  private ackMessage(seq: number, echoSentMs: number, withReport: boolean, echoWindowMs?: number): Message {
    const report = withReport && this.runner ? this.runner.report(this.nowMs) : null;
    if (report) this.lastReportKey = reportKey(report);
    if (report !== null && !report.holding) this.runner!.reportedFree(seq);
    return {
      kind: 'ack',
      epoch: this.epoch,
      seq,
      echoSentMs,
      ...(echoWindowMs !== undefined ? { echoWindowMs } : {}),
      ...(this.rejoiningSinceMs !== null ? { rejoining: true } : {}),
      nowMs: this.nowMs,
      incarnation: this.incarnation,
      stateVersionEpoch: this.state.versionEpoch,
      stateVersionSeq: this.state.versionSeq,
      report,
    };
  }

  /** Tell the leader at once when the runner's role-relevant facts change. */
  private maybeSendReport(): void {
    if (this.runner === null || this.leader === null || this.heartbeatSeqSeen < 0) return;
    if (this.runner.changes === this.reportChanges) return;
    this.reportChanges = this.runner.changes;
    const key = reportKey(this.runner.report(this.nowMs));
    if (key === this.lastReportKey) return;
    this.send(this.leader, this.ackMessage(this.heartbeatSeqSeen, -Infinity, true));
    this.drainSelfOnly();
  }

  private drainSelfOnly(): void {
    while (this.inbox.length > 0) {
      const m = this.inbox.shift()!;
      this.receive(m.from, m.msg);
    }
  }

  private followerTick(): void {
    const p = this.params;
    const now = this.nowMs;
    if (this.leader !== null && now - this.lastLeaderMs > p.leaderTimeoutMs) {
      this.out.events.push({ kind: 'leader-lost', epoch: this.epoch, reason: `no heartbeat from ${this.leader} for ${now - this.lastLeaderMs}ms` });
      this.setLeader(null);
    }
    if (this.campaign !== null && now - this.campaign.startedMs > p.leaderTimeoutMs) {
      // No quorum answered. Retry after a pause that grows down the ranks, so
      // simultaneous candidates stop splitting the vote in lockstep; until
      // then vote for others, so lower-ranked electors can win if we cannot.
      const c = this.campaign;
      this.campaign = null;
      this.role = 'follower';
      const pauseMs = p.leaderTimeoutMs * (1 + this.rankIndex() / 2);
      this.failedCampaignUntilMs = now + pauseMs;
      if (c.takeover) {
        // The leader works; a takeover that failed (a voter or a node the
        // leader reaches did not answer) waits longer each time.
        this.takeoverFailures += 1;
        this.backoffUntilMs = now + p.takeoverSettleMs * 2 ** Math.min(this.takeoverFailures - 1, MAX_TAKEOVER_BACKOFF_DOUBLINGS);
        this.followingSinceMs = now;
        const what = c.rescue ? 'rescue (leader without a master)' : 'takeover';
        this.out.events.push({ kind: 'warning', text: `${what} of ${this.leader ?? 'the leader'} failed: ${takeoverShortfall(c)}; next try in ${((this.backoffUntilMs - now) / 1000).toFixed(1)}s at the earliest` });
      } else {
        this.backoffUntilMs = now + pauseMs;
      }
    }
    this.checkVotes();
    if (!this.self.elector || this.rejoiningSinceMs !== null || this.campaign !== null || now < this.backoffUntilMs) return;
    if (this.leader === null && now - this.lastLeaderMs >= p.leaderTimeoutMs) {
      this.startCampaign(true, false);
      return;
    }
    const leaderPeer = this.leader === null ? undefined : this.peers.get(this.leader);
    // Several electors may outrank the leader: the higher-ranked goes first,
    // so that they do not split the vote by starting on the same tick.
    const settleMs = p.takeoverSettleMs + this.rankIndex() * p.leaderTimeoutMs;
    if (leaderPeer !== undefined && outranks(this.self, leaderPeer) && now - this.followingSinceMs >= settleMs) {
      this.startCampaign(true, true);
      return;
    }
    // A leader that has had no master for a settle period and does not reach
    // some runners (or possible holders) may be blind where another elector
    // sees: that one takes over if it reaches all the leader reaches and one
    // of those, whatever the ranks. The higher-ranked tries first.
    const missing = this.rescueTargets();
    if (leaderPeer !== undefined && missing.length > 0 && this.masterlessSinceMs !== null && now - Math.max(this.masterlessSinceMs, this.followingSinceMs) >= settleMs) {
      this.startCampaign(true, true, null, missing);
    }
  }

  /** Runners (or peers whose roles we do not know) the leader we follow does not reach. */
  private rescueTargets(): NodeName[] {
    if (this.leaderReach === null) return [];
    const reach = this.leaderReach;
    return [...this.peers.values()].filter((p) => (p.runner || !this.heard.has(p.name)) && !reach.includes(p.name)).map((p) => p.name);
  }

  // ---- election ------------------------------------------------------------

  /** 0 for the highest-ranked elector, 1 for the next, ... */
  private rankIndex(): number {
    return this.electors().filter((p) => outranks(p, this.self)).length;
  }

  /** Electors, counting the peers not heard from yet (they may be electors). */
  private possibleElectors(): number {
    let n = 0;
    for (const p of this.peers.values()) if (p.elector || !this.heard.has(p.name)) n++;
    return n;
  }

  private electors(): PeerInfo[] {
    return [...this.peers.values()].filter((p) => p.elector);
  }

  /**
   * The window a campaign announces: the base one, or wider when the
   * pre-vote showed a slow round trip to a quorum (else a leader elected
   * over a slow network would lose its quorum before its first heartbeat
   * is acknowledged).
   */
  private campaignWindowMs(preVotes: Campaign | null): number {
    const base = this.baseWindowMs();
    if (preVotes === null) return base;
    const rtts = [...preVotes.votes.values()].map((v) => (v.from === this.name ? 0 : v.recvMs - preVotes.startedMs)).sort((a, b) => a - b);
    const rtt = rtts[this.params.quorum - 1];
    if (rtt === undefined) return base;
    return Math.min(this.params.leaderTimeoutMs, Math.max(base, Math.ceil(rtt * 1.25) + this.params.heartbeatIntervalMs));
  }

  /**
   * `rescueTargets`: a rescue campaign (see followerTick), with the nodes
   * one of which it must reach.
   */
  private startCampaign(preVote: boolean, takeover: boolean, preVotes: Campaign | null = null, rescueTargets: NodeName[] | null = null): void {
    const now = this.nowMs;
    const epoch = this.epoch + 1;
    const selfVote: GrantedVote = {
      from: this.name,
      recvMs: now,
      lastAckAgoMs: now - this.lastAckMs,
      grantsEndInMs: this.grantsEndMs - now,
      state: this.state,
      nowMs: now,
      incarnation: this.incarnation,
    };
    if (!preVote) {
      this.epoch = epoch;
      this.votedFor = this.name;
      this.role = 'candidate';
      this.setLeader(null);
      this.acknowledged(this.campaignWindowMs(preVotes));
      this.persistDirty = true;
    }
    // A takeover must not cost what works: the taker has to reach every node
    // the leader reaches (the master among them), so it asks them all.
    const mustReach = takeover && preVote ? (this.leaderReach ?? []).filter((n) => this.peers.has(n)) : [];
    const rescue = rescueTargets !== null || (preVotes?.rescue ?? false);
    const mustReachOneOf = preVote ? (rescueTargets ?? []) : [];
    const windowMs = this.campaignWindowMs(preVotes);
    this.campaign = { epoch, preVote, takeover, startedMs: now, votes: new Map([[this.name, selfVote]]), answered: new Set([this.name]), mustReach, windowMs, rescue, mustReachOneOf, quorumAtMs: null };
    this.out.events.push({ kind: 'campaign', epoch, takeover });
    for (const p of this.peers.values()) {
      if (p.name === this.name || !(p.elector || mustReach.includes(p.name) || mustReachOneOf.includes(p.name))) continue;
      this.send(p.name, { kind: 'vote-req', epoch, takeover, preVote, windowMs, ...(rescue ? { rescue } : {}) });
    }
    this.checkVotes();
  }

  private voteMessage(epoch: number, preVote: boolean, granted: boolean, outranked: boolean): Message {
    return {
      kind: 'vote',
      epoch,
      preVote,
      granted,
      outranked,
      lastAckAgoMs: this.nowMs - this.lastAckMs,
      grantsEndInMs: this.grantsEndMs - this.nowMs,
      state: granted && !preVote ? cloneState(this.state) : null,
      nowMs: this.nowMs,
      incarnation: this.incarnation,
    };
  }

  private liveLeader(): PeerInfo | null {
    if (this.role === 'leader') return this.self;
    if (this.leader === null || this.nowMs - this.lastLeaderMs > this.params.leaderTimeoutMs) return null;
    return this.peers.get(this.leader) ?? null;
  }

  private onVoteRequest(from: NodeName, msg: Extract<Message, { kind: 'vote-req' }>): void {
    const candidate = this.peers.get(from)!;
    if (candidate.elector && !this.self.elector && msg.preVote && msg.takeover) {
      // Not a voter, but the taker must know it reaches us.
      this.send(from, this.voteMessage(this.epoch, true, false, false));
      return;
    }
    if (!candidate.elector || !this.self.elector) {
      this.out.events.push({ kind: 'dropped', from, reason: 'vote request between non-electors' });
      return;
    }
    const mine = this.campaign;
    if (mine !== null && mine.takeover && msg.takeover && outranks(candidate, this.self)) {
      // A higher-ranked elector takes over too: let it, rather than split the vote.
      this.yieldTo();
      this.followingSinceMs = this.nowMs;
    }
    const decision = decideVote(
      {
        self: this.self,
        epoch: this.epoch,
        votedFor: this.votedFor,
        liveLeader: this.liveLeader(),
        masterless: this.state.master === null,
        // A node rejoining after a lost state cannot win: it must not stop others by outranking them.
        canRun: this.nowMs >= this.failedCampaignUntilMs && this.rejoiningSinceMs === null,
      },
      candidate,
      msg,
    );
    if (!decision.grant) {
      if (decision.outranked) {
        // Bully: answer "I am here" and run ourselves, above their epoch.
        if (!msg.preVote && msg.epoch > this.epoch) this.adoptEpoch(msg.epoch, `outranked candidate ${from}`);
        this.send(from, this.voteMessage(this.epoch, msg.preVote, false, true));
        if (this.campaign === null && this.role !== 'leader') this.startCampaign(true, false);
      } else {
        this.send(from, this.voteMessage(this.epoch, msg.preVote, false, false));
      }
      return;
    }
    if (msg.preVote) {
      this.send(from, this.voteMessage(msg.epoch, true, true, false));
      return;
    }
    if (this.rejoiningSinceMs !== null && !rejoiningMayVote()) {
      this.out.events.push({ kind: 'dropped', from, reason: 'vote refused: rejoining after a lost state' });
      this.send(from, this.voteMessage(this.epoch, false, false, false));
      return;
    }
    const reply = this.voteMessage(msg.epoch, false, true, false);
    if (this.role === 'leader') this.stepDown(`handing over to ${from}`);
    this.epoch = msg.epoch;
    this.votedFor = from;
    this.role = 'follower';
    this.campaign = null;
    this.setLeader(null);
    // Voting counts as acknowledging: later leaders must wait out our grantee
    // too, for as long as it counts our vote towards its quorum.
    this.acknowledged(msg.windowMs ?? this.baseWindowMs());
    // And it restarts our election timer, as in Raft: the grantee gets a
    // leader_timeout to win and send its first heartbeat.
    this.lastLeaderMs = this.nowMs;
    this.persistDirty = true;
    this.send(from, reply);
  }

  private onVote(from: NodeName, msg: Extract<Message, { kind: 'vote' }>): void {
    const c = this.campaign;
    if (c === null || msg.epoch !== c.epoch || msg.preVote !== c.preVote) return;
    c.answered.add(from);
    if (!c.votes.has(from)) {
      c.votes.set(from, {
        from,
        recvMs: this.nowMs,
        lastAckAgoMs: msg.lastAckAgoMs,
        ...(msg.grantsEndInMs !== undefined ? { grantsEndInMs: msg.grantsEndInMs } : {}),
        state: msg.state,
        nowMs: msg.nowMs,
        incarnation: msg.incarnation,
      });
    }
    this.checkVotes();
  }

  /** A higher-ranked elector is alive and runs: wait for it. */
  private yieldTo(): void {
    if (this.campaign === null) return;
    this.campaign = null;
    if (this.role === 'candidate') this.role = 'follower';
    this.backoffUntilMs = this.nowMs + this.params.leaderTimeoutMs;
  }

  private checkVotes(): void {
    const c = this.campaign;
    if (c === null || c.votes.size < this.params.quorum) return;
    c.quorumAtMs ??= this.nowMs;
    if (c.preVote) {
      // Bully: give every higher-ranked elector a moment to say it is alive,
      // even when a quorum has already agreed (with quorum 1 it always has).
      // The moment counts from the quorum's answers, not from the request: on
      // a slow network a higher-ranked elector's answer comes about as late
      // as theirs, and one that came after our real vote began would cost
      // that epoch to both of us.
      const waiting = this.electors().some((p) => outranks(p, this.self) && !c.votes.has(p.name));
      if (waiting && this.nowMs - c.quorumAtMs < this.params.heartbeatIntervalMs) return;
      // A takeover waits for every node the leader reaches (or fails at the campaign timeout).
      if (c.takeover && c.mustReach.some((n) => !c.answered.has(n))) return;
      if (c.rescue && !c.mustReachOneOf.some((n) => c.answered.has(n))) return;
      this.campaign = null;
      this.startCampaign(false, c.takeover, c);
      return;
    }
    this.becomeLeader(c);
  }

  private becomeLeader(c: Campaign): void {
    const now = this.nowMs;
    const votes = [...c.votes.values()];
    this.campaign = null;
    this.role = 'leader';
    this.setLeader(this.name);
    const inherited = newestState(this.state, votes);
    this.state = cloneState(inherited);
    this.state.versionEpoch = this.epoch;
    this.state.versionSeq = 1;
    this.persistDirty = true;
    const views = new Map<NodeName, NodeView>();
    for (const p of this.peers.values()) views.set(p.name, newView(p.name));
    // A vote is as good as an acknowledged heartbeat sent when we asked, and
    // its clock reading lets the first heartbeat renew a voter's lease at once.
    for (const v of votes) {
      const view = views.get(v.from)!;
      view.lastAckedSentMs = c.startedMs;
      view.ackValidUntilMs = c.startedMs + c.windowMs;
      if (v.from !== this.name) {
        // A vote is a reply: it measures the round trip and shows the voter reachable.
        view.rttMs = v.recvMs - c.startedMs;
        view.lastReplyMs = v.recvMs;
      }
      view.echoNowMs = v.nowMs;
      view.echoRecvMs = v.recvMs;
      view.incarnation = v.incarnation;
    }
    this.lead = {
      electedMs: now,
      seq: 0,
      lastHeartbeatMs: -Infinity,
      heartbeatDue: true,
      views,
      oldGrantsBoundMs: oldGrantsBoundMs(votes, this.baseWindowMs()),
      lastQuorumMs: now,
      pending: [],
      fences: new Map(),
      blockers: [],
      // An inherited master is renewed only once a quorum holds this
      // leadership's state naming it: the designation may have reached only
      // a minority before (our own votes can come from such a minority).
      designationPending: inheritedDesignationPending(this.state),
      networkWarned: false,
    };
    this.out.events.push({ kind: 'leader-elected', epoch: this.epoch, leader: this.name });
    this.leaderTick();
  }

  private stepDown(reason: string): void {
    const lead = this.lead;
    this.role = 'follower';
    this.lead = null;
    this.setLeader(null);
    this.out.events.push({ kind: 'stepped-down', epoch: this.epoch, reason });
    if (lead !== null) {
      for (const p of lead.pending) this.reply(p.requestId, false, 'not-committed', `leader ${this.name} stepped down (${reason}) before the change was confirmed — check koi status and retry`);
    }
  }

  // ---- leader side -----------------------------------------------------------

  /** The master's designation is committed: its lease may be renewed. */
  private mayGrant(): boolean {
    return this.lead!.designationPending === null || this.designationCommitted();
  }

  private designationCommitted(): boolean {
    const pending = this.lead!.designationPending;
    return pending !== null && compareVersion(this.commitVersion(), pending) >= 0;
  }

  private masterContext(): MasterContext {
    const lead = this.lead!;
    return {
      nowMs: this.nowMs,
      params: this.params,
      state: this.state,
      peers: this.peers,
      views: lead.views,
      oldGrantsBoundMs: lead.oldGrantsBoundMs,
      electedMs: lead.electedMs,
      self: this.name,
      heard: this.heard,
      boundLeaseMs: this.boundTiming('masterLeaseMs'),
      boundDemoteMs: this.boundTiming('demoteTimeoutMs'),
    };
  }

  /** The longest value of a safety timing among our settings and every hello. */
  private boundTiming(key: 'masterLeaseMs' | 'demoteTimeoutMs'): number {
    let m = this.params[key];
    for (const p of this.peers.values()) m = Math.max(m, p[key] ?? 0);
    return m;
  }

  private hasQuorum(): boolean {
    const lead = this.lead!;
    let n = 0;
    for (const p of this.peers.values()) {
      if (!p.elector) continue;
      const v = lead.views.get(p.name)!;
      // A rejoining node may have voted for a later leader before it lost its state.
      if (p.name === this.name || (!v.rejoining && v.ackValidUntilMs >= this.nowMs)) n++;
    }
    return n >= this.params.quorum;
  }

  /**
   * The window an acknowledgement counts for when nothing is measured yet:
   * half of leader_timeout (at least two heartbeats). Grants made within it
   * end within it, so a new leader's wait after a crash stays short.
   */
  baseWindowMs(): number {
    const p = this.params;
    return Math.min(p.leaderTimeoutMs, Math.max(2 * p.heartbeatIntervalMs, p.leaderTimeoutMs / 2));
  }

  /**
   * The window this leader announces: wide enough that an acknowledgement
   * arrives before the previous one lapses, given the round trip measured to
   * the quorum's slowest needed elector, and never beyond leader_timeout.
   * A slow network thus lengthens the wait after a leader's crash (by the
   * extra window) instead of making the leader lose its quorum.
   */
  windowMs(): number {
    const need = this.quorumRttMs();
    const base = this.baseWindowMs();
    if (need === null) return base;
    return Math.min(this.params.leaderTimeoutMs, Math.max(base, Math.ceil(need * 1.25) + this.params.heartbeatIntervalMs));
  }

  /**
   * The longest round trip to a quorum that the timings tolerate: the window
   * it needs (see windowMs) must fit in leader_timeout.
   */
  toleratedRttMs(): number {
    return Math.max(0, Math.floor((this.params.leaderTimeoutMs - this.params.heartbeatIntervalMs) / 1.25));
  }

  /** A warning while the round trip to a quorum nears what the timings tolerate, else null. */
  networkWarning(): string | null {
    const rtt = this.quorumRttMs();
    const tol = this.toleratedRttMs();
    if (rtt === null || rtt <= RTT_WARN_SHARE * tol) return null;
    const p = this.params;
    return `round trip to a quorum of electors is ${Math.round(rtt)}ms; heartbeat_interval ${p.heartbeatIntervalMs}ms and leader_timeout ${p.leaderTimeoutMs}ms tolerate about ${tol}ms — fix the network or raise leader_timeout (and master_lease) on every node`;
  }

  /** The round trip within which a quorum of electors answers (self: 0), or null. */
  quorumRttMs(): number | null {
    const lead = this.lead;
    if (lead === null) return null;
    const rtts: number[] = [];
    for (const p of this.peers.values()) {
      if (!p.elector) continue;
      if (p.name === this.name) rtts.push(0);
      else {
        // Only electors heard from within leader_timeout (as `reachable` says).
        const v = lead.views.get(p.name)!;
        if (v.rttMs !== null && v.lastReplyMs !== null && this.nowMs - v.lastReplyMs <= this.params.leaderTimeoutMs) rtts.push(v.rttMs);
      }
    }
    rtts.sort((a, b) => a - b);
    return rtts[this.params.quorum - 1] ?? null;
  }

  /** We acknowledged a leader (or candidate) that counts us for `windowMs`. */
  private acknowledged(windowMs: number): void {
    this.lastAckMs = this.nowMs;
    this.grantsEndMs = Math.max(this.grantsEndMs, this.nowMs + windowMs);
    if (windowMs > this.maxAckWindowMs) {
      // Saved before the acknowledgement leaves (Ready persists first).
      this.maxAckWindowMs = windowMs;
      this.persistDirty = true;
    }
  }

  private leaderTick(): void {
    const lead = this.lead!;
    const now = this.nowMs;
    const warning = this.networkWarning();
    if ((warning !== null) !== lead.networkWarned) {
      lead.networkWarned = warning !== null;
      this.out.events.push({ kind: 'warning', text: warning ?? `round trip to a quorum of electors is back within what the timings tolerate (${this.toleratedRttMs()}ms)` });
    }
    if (this.hasQuorum()) lead.lastQuorumMs = now;
    else if (now - lead.lastQuorumMs > this.params.leaderTimeoutMs) {
      this.stepDown(`lost quorum of ${this.params.quorum} electors`);
      return;
    }
    this.decideMaster();
    if (lead.heartbeatDue || now - lead.lastHeartbeatMs >= this.params.heartbeatIntervalMs) this.sendHeartbeats();
    this.settlePending();
  }

  private changeState(what: string, mutate: (s: ClusterState) => void): void {
    mutate(this.state);
    this.state.versionEpoch = this.epoch;
    this.state.versionSeq += 1;
    this.persistDirty = true;
    this.lead!.heartbeatDue = true;
    this.out.events.push({ kind: 'state-changed', what });
  }

  private sendHeartbeats(): void {
    const lead = this.lead!;
    const now = this.nowMs;
    // A lease goes out only for a designation a quorum of electors holds, so
    // that every later leader inherits it: one that reached no voter of the
    // next leader must never have let its runner promote (seed 18420).
    const master = this.state.master;
    const grantable = this.hasQuorum() && master !== null && this.mayGrant();
    const commit = this.commitVersion();
    const ctx = this.masterContext();
    const reach = [...this.peers.keys()].filter((n) => reachable(ctx, n));
    const windowMs = this.windowMs();
    const quorate = this.hasQuorum();
    lead.seq += 1;
    lead.lastHeartbeatMs = now;
    lead.heartbeatDue = false;
    this.lastAckMs = now;
    this.acknowledged(windowMs);
    for (const p of this.peers.values()) {
      const v = lead.views.get(p.name)!;
      let grant = null;
      if (grantable && master === p.name && v.echoNowMs !== null && v.incarnation !== null) {
        grant = { echoMs: v.echoNowMs, incarnation: v.incarnation, leaseMs: this.params.masterLeaseMs, demoteMs: this.params.demoteTimeoutMs };
        v.lastGrantMs = Math.max(v.lastGrantMs ?? -Infinity, v.echoRecvMs);
        v.lastGrantSeq = lead.seq;
      }
      const behind = compareVersion({ versionEpoch: v.ackedVersionEpoch, versionSeq: v.ackedVersionSeq }, this.state) < 0;
      this.send(p.name, {
        kind: 'heartbeat',
        epoch: this.epoch,
        seq: lead.seq,
        sentMs: now,
        master: this.state.master,
        masterEpoch: this.state.masterEpoch,
        grant,
        state: behind ? cloneState(this.state) : null,
        stateVersionEpoch: this.state.versionEpoch,
        stateVersionSeq: this.state.versionSeq,
        commitVersionEpoch: commit.versionEpoch,
        commitVersionSeq: commit.versionSeq,
        windowMs,
        quorate,
        reach,
      });
    }
  }

  /** The newest state version that a quorum of electors has acknowledged. */
  private commitVersion(): { versionEpoch: number; versionSeq: number } {
    const acked: { versionEpoch: number; versionSeq: number }[] = [];
    for (const p of this.peers.values()) {
      if (!p.elector) continue;
      const v = this.lead!.views.get(p.name)!;
      if (v.rejoining) continue;
      acked.push({ versionEpoch: v.ackedVersionEpoch, versionSeq: v.ackedVersionSeq });
    }
    acked.sort((a, b) => compareVersion(b, a));
    return acked[this.params.quorum - 1] ?? { versionEpoch: -1, versionSeq: -1 };
  }

  private onAck(from: NodeName, msg: Extract<Message, { kind: 'ack' }>): void {
    const lead = this.lead;
    if (this.role !== 'leader' || lead === null) return;
    const v = lead.views.get(from)!;
    const newer = msg.seq > v.lastAckSeq || (msg.seq === v.lastAckSeq && v.echoNowMs !== null && msg.nowMs > v.echoNowMs);
    if (!newer) {
      this.stats.duplicateDropped++;
      return;
    }
    v.lastAckSeq = msg.seq;
    v.rejoining = msg.rejoining === true;
    v.lastAckedSentMs = Math.max(v.lastAckedSentMs, msg.echoSentMs);
    // Never longer than the window the acknowledging node saw (it reports
    // its acknowledgements with that window when it votes).
    const windowMs = Math.min(msg.echoWindowMs ?? this.baseWindowMs(), this.params.leaderTimeoutMs);
    v.ackValidUntilMs = Math.max(v.ackValidUntilMs, msg.echoSentMs + windowMs);
    if (Number.isFinite(msg.echoSentMs)) v.rttMs = this.nowMs - msg.echoSentMs;
    v.lastReplyMs = this.nowMs;
    // Alive again: a later disappearance gets its fence at once.
    v.fenceFailures = 0;
    v.nextFenceMs = -Infinity;
    if (v.incarnation !== msg.incarnation) {
      // A new process: its clock and what it holds start from its own word
      // (a restart may have lost the state it acknowledged before).
      v.echoNowMs = null;
      v.ackedVersionEpoch = -1;
      v.ackedVersionSeq = -1;
    }
    v.incarnation = msg.incarnation;
    if (v.echoNowMs === null || msg.nowMs > v.echoNowMs) {
      v.echoNowMs = msg.nowMs;
      v.echoRecvMs = this.nowMs;
    }
    if (compareVersion({ versionEpoch: msg.stateVersionEpoch, versionSeq: msg.stateVersionSeq }, { versionEpoch: v.ackedVersionEpoch, versionSeq: v.ackedVersionSeq }) > 0) {
      v.ackedVersionEpoch = msg.stateVersionEpoch;
      v.ackedVersionSeq = msg.stateVersionSeq;
    }
    if (msg.report !== null) {
      v.report = msg.report;
      v.reportSeq = msg.seq;
      this.recordFailures(msg.report);
    }
    // A master not yet renewed in this leadership gets its grant at the next
    // tick rather than a heartbeat period later, and so does a designation
    // this ack committed.
    // (Only when a grant can go out: otherwise every ack, the leader's own
    // included, would trigger a heartbeat at every tick.)
    if (from === this.state.master && v.lastGrantSeq < 0 && this.hasQuorum() && this.mayGrant()) lead.heartbeatDue = true;
    let grantNow = false;
    if (this.designationCommitted()) {
      lead.designationPending = null;
      grantNow = true;
    }
    const current = compareVersion({ versionEpoch: v.ackedVersionEpoch, versionSeq: v.ackedVersionSeq }, this.state) >= 0;
    if (current && !this.state.maintenance && this.state.frozenHolders.includes(from)) {
      // It now knows maintenance is off and demotes within demote_timeout from here.
      v.lastGrantMs = Math.max(v.lastGrantMs ?? -Infinity, this.nowMs - this.params.masterLeaseMs);
      this.changeState(`${from} saw maintenance off`, (s) => {
        s.frozenHolders = s.frozenHolders.filter((n) => n !== from);
      });
    }
    this.decideMaster();
    this.settlePending();
    // The master's lease may be running low (a leader change): grant at once
    // rather than at the next tick.
    if (grantNow && this.role === 'leader' && this.hasQuorum()) this.sendHeartbeats();
  }

  private recordFailures(r: RunnerReport): void {
    const fresh = r.pendingFailures.filter((f) => !this.state.failures.some((g) => sameFailure(f, g)));
    if (fresh.length === 0) return;
    this.changeState(`failures recorded: ${fresh.length}`, (s) => {
      s.failures = [...s.failures, ...fresh].slice(-MAX_FAILURE_RECORDS);
    });
  }

  private decideMaster(): void {
    if (this.lead === null || this.state.maintenance) return;
    const ctx = this.masterContext();
    const current = this.state.master;
    if (current !== null) {
      const reason = revokeReason(ctx, current);
      if (reason === null) return;
      this.changeState(`master ${current} revoked: ${reason}`, (s) => {
        s.master = null;
      });
      this.out.events.push({ kind: 'master-revoked', epoch: this.epoch, master: current, reason });
    }
    if (this.state.manualMaster) return;
    if (this.state.target !== null && targetLost(ctx, this.state.target)) {
      const t = this.state.target;
      this.changeState(`switchover target ${t} abandoned: not promotable`, (s) => {
        s.target = null;
      });
    }
    const cand = this.state.target ?? chooseMaster(ctx);
    // A runner that may still hold the role blocks the candidate or, while
    // no runner is promotable, whichever comes next: koi status names it
    // either way. (It used to drop out of the status whenever no runner was
    // promotable for a moment, a status saying 93, so the operator who runs
    // koi confirm-down on what the status names waited on: seed 103086.)
    const blockers = [...this.peers.values()].filter((p) => p.name !== cand && mayBeRunner(ctx, p.name) && mayHold(ctx, p.name));
    this.lead.blockers = blockers.map((b) => ({ node: b.name, reason: blockerReason(ctx, b.name) }));
    if (cand === null) return;
    if (blockers.length === 0) {
      const reason = this.state.target === cand ? 'koi promote' : 'automatic choice';
      this.changeState(`master ${cand} designated`, (s) => {
        s.master = cand;
        if (s.designated !== undefined && !s.designated.includes(cand)) s.designated = [...s.designated, cand];
        s.masterEpoch = this.epoch;
        if (s.target === cand) s.target = null;
      });
      this.lead.designationPending = { versionEpoch: this.state.versionEpoch, versionSeq: this.state.versionSeq };
      this.out.events.push({ kind: 'master-designated', epoch: this.epoch, master: cand, reason });
      return;
    }
    if (!this.params.fenceConfigured) return;
    for (const b of blockers) {
      const v = this.lead.views.get(b.name)!;
      if (!presumedDown(ctx, b.name) || v.fenceInFlight || this.nowMs < v.nextFenceMs) continue;
      v.fenceInFlight = true;
      const fenceId = this.nextFenceId++;
      this.lead.fences.set(fenceId, { node: b.name, seq: this.lead.seq });
      this.out.fences.push({ fenceId, node: b.name });
      this.out.events.push({ kind: 'fence-requested', node: b.name });
    }
  }

  private fenceDone(fenceId: number, ok: boolean): void {
    const lead = this.lead;
    const attempt = lead?.fences.get(fenceId);
    if (lead === null || attempt === undefined) return;
    const node = attempt.node;
    lead.fences.delete(fenceId);
    const v = lead.views.get(node)!;
    v.fenceInFlight = false;
    if (ok) {
      v.fencedAtSeq = lead.seq;
      v.fenceFailures = 0;
    } else {
      // This attempt concerns the grants made before it began, and the next
      // one waits a growing pause instead of running back to back.
      v.fenceFailedSeq = Math.max(v.fenceFailedSeq, attempt.seq);
      v.fenceFailures += 1;
      v.nextFenceMs = this.nowMs + fenceRetryMs(this.params, v.fenceFailures);
    }
    this.out.events.push({ kind: 'fence-result', node, ok, retryInMs: ok ? null : v.nextFenceMs - this.nowMs });
    this.decideMaster();
  }

  // ---- admin commands ----------------------------------------------------------

  private reply(requestId: number, ok: boolean, code: AdminReply['code'], error: string | null, note: string | null = null): void {
    this.out.replies.push({ requestId, ok, code, error, leader: this.role === 'leader' ? this.name : this.leader, note });
  }

  /**
   * What keeps an accepted command from taking effect now, so that the
   * operator is not told a bare "ok" while nothing happens.
   */
  private commandNote(c: AdminCommand): string | null {
    const lead = this.lead!;
    const ctx = this.masterContext();
    const notes: string[] = [];
    if ((c.kind === 'start' || c.kind === 'stop' || c.kind === 'recover') && !reachable(ctx, c.node)) {
      notes.push(`${c.node} is unreachable: it acts on this when it answers again`);
    }
    const waiting = !this.state.maintenance && !this.state.manualMaster && (this.state.master === null || this.state.target !== null);
    if (waiting && lead.blockers.length > 0) {
      notes.push(`no runner can be promoted yet: ${lead.blockers.map((b) => b.reason).join('; ')}`);
    }
    return notes.length === 0 ? null : notes.join('; ');
  }

  private admin(requestId: number, command: AdminCommand): void {
    if (this.role !== 'leader' || this.lead === null) {
      this.reply(requestId, false, 'not-leader', this.leader === null ? 'no leader is elected right now — check that a quorum of electors is up, then retry' : null);
      return;
    }
    const ctx = this.masterContext();
    const refusal = refuseCommand(ctx, command);
    if (refusal !== null) {
      this.reply(requestId, false, 'refused', refusal);
      return;
    }
    const mayHoldNow = command.kind === 'maintenance' ? this.maintenanceHolders(ctx, command.on) : [];
    if (command.kind === 'confirm-down') {
      // As good as a fence that succeeded now: nothing granted so far counts.
      const v = this.lead.views.get(command.node)!;
      v.fencedAtSeq = this.lead.seq;
      this.out.events.push({ kind: 'warning', text: `the operator confirmed ${command.node} is down (koi confirm-down): its role is free` });
    }
    let what = '';
    this.changeState('admin', (s) => {
      what = applyCommand(s, command, mayHoldNow);
    });
    this.out.events.push({ kind: 'state-changed', what: `admin: ${what}` });
    this.lead.pending.push({
      requestId,
      command,
      versionEpoch: this.state.versionEpoch,
      versionSeq: this.state.versionSeq,
      deadlineMs: this.nowMs + 2 * this.params.leaderTimeoutMs,
    });
    this.decideMaster();
  }

  /**
   * Maintenance on: the runners that may hold the role now. Off: those of
   * them not known to be free (a holder ignores its lease while frozen, so
   * it blocks every promotion until it answers, is fenced or confirmed down).
   * A runner no state ever named master holds nothing in either case.
   */
  private maintenanceHolders(ctx: MasterContext, on: boolean): NodeName[] {
    const s = this.state;
    return [...this.peers.values()]
      .map((p) => p.name)
      .filter((n) => mayBeRunner(ctx, n) && everDesignated(s, n))
      .filter((n) =>
        on
          ? n === s.master || mayHold(ctx, n)
          : (s.maintenanceHolders === undefined || s.maintenanceHolders.includes(n) || s.frozenHolders.includes(n)) &&
            (n === s.master || mayHold(ctx, n) || !confirmedFree(ctx, n)),
      );
  }

  /** Answer admin requests once a quorum of electors holds the change. */
  private settlePending(): void {
    const lead = this.lead;
    if (lead === null || lead.pending.length === 0) return;
    const keep: PendingReply[] = [];
    for (const p of lead.pending) {
      let n = 0;
      for (const peer of this.peers.values()) {
        if (!peer.elector) continue;
        const v = lead.views.get(peer.name)!;
        if (v.rejoining) continue;
        if (compareVersion({ versionEpoch: v.ackedVersionEpoch, versionSeq: v.ackedVersionSeq }, p) >= 0) n++;
      }
      if (n >= this.params.quorum) this.reply(p.requestId, true, 'ok', null, this.commandNote(p.command));
      else if (this.nowMs > p.deadlineMs) this.reply(p.requestId, false, 'not-committed', 'the change did not reach a quorum of electors in time — check koi status and retry');
      else keep.push(p);
    }
    lead.pending = keep;
  }

  // ---- runner ----------------------------------------------------------------

  private runnerOut(): RunnerOutput {
    return { runs: this.out.runs, signals: this.out.signals, events: this.out.events };
  }

  private runnerTick(): void {
    this.runner?.tick(this.nowMs, this.runnerOut());
  }
}

/** Warn once the round trip to a quorum passes this share of what the timings tolerate. */
const RTT_WARN_SHARE = 0.8;

/** Doublings of takeover_settle after failed takeovers (16 × at most). */
const MAX_TAKEOVER_BACKOFF_DOUBLINGS = 4;

/** Why a takeover campaign did not win, for the log. */
function takeoverShortfall(c: Campaign): string {
  const missing = c.mustReach.filter((n) => !c.answered.has(n));
  if (missing.length > 0) return `no answer from ${missing.join(', ')}, which the leader reaches`;
  if (c.rescue && !c.mustReachOneOf.some((n) => c.answered.has(n))) return `no answer from ${c.mustReachOneOf.join(', ')} either`;
  return `${c.votes.size} vote(s), not a quorum`;
}

function sameMembers(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x) => b.includes(x));
}

function reportKey(r: RunnerReport): string {
  return `${r.state}|${r.holding}|${r.promotable}|${r.failed}|${r.pendingFailures.length}|${r.services.map((s) => s.state).join(',')}`;
}
