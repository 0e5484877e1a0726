// Shared vocabulary of the pure core. Everything here is plain data: it can be
// serialised, compared in tests, and replayed by the simulator.

export type NodeName = string;

/** Runner states as the spec names them (lowercase on the wire). */
export type RunnerState = 'failed' | 'disconnected' | 'stopped' | 'live' | 'slave' | 'master';

/** Per-service states. */
export type ServiceState =
  | 'failed'
  | 'failing'
  | 'stopped'
  | 'stopping'
  | 'starting'
  | 'started'
  | 'demoting'
  | 'promoting'
  | 'promoted';

/** Script events a service directory can implement. */
export type ScriptEvent = 'start' | 'stop' | 'status' | 'promote' | 'demote' | 'failed';

export type ElectorRole = 'follower' | 'candidate' | 'leader';

export type Signal = 'SIGTERM' | 'SIGKILL';

export interface PeerInfo {
  name: NodeName;
  elector: boolean;
  runner: boolean;
  /** Bully rank: higher wins, ties broken by name (alphabetically first wins). */
  priority: number;
  /** The safety timings of the node's configuration (said in its hello; absent from older peers). */
  masterLeaseMs?: number;
  demoteTimeoutMs?: number;
}

export interface ServiceDef {
  name: string;
  /** null: the service never waits for others and nobody waits for it. */
  priority: number | null;
  /** Scripts present in the directory; a missing one succeeds at once. Absent: all present. */
  scripts?: readonly ScriptEvent[];
  /** A `disabled` file is present: keep it stopped and the runner unelectable. */
  disabled?: boolean;
}

/** Exit codes of `status` (section 3 of the spec). */
export const STATUS_MASTER = 90;
export const STATUS_SLAVE = 91;
export const STATUS_STOPPED = 92;
export const STATUS_NOT_PROMOTABLE = 93;

/** Timing and policy knobs the core needs; all durations in milliseconds. */
export interface CoreParams {
  heartbeatIntervalMs: number;
  leaderTimeoutMs: number;
  masterLeaseMs: number;
  statusIntervalMs: number;
  failurePromotionTimeoutMs: number;
  startTimeoutMs: number;
  stopTimeoutMs: number;
  statusTimeoutMs: number;
  promoteTimeoutMs: number;
  demoteTimeoutMs: number;
  failedTimeoutMs: number;
  autoRecover: number;
  autoRecoverWaitMs: number;
  failcountResetMs: number;
  /** A runner whose score is more than this behind the best known is not chosen automatically (null: no limit). */
  promoteMaxLag: number | null;
  /** Electors (self included) a leader must reach. */
  quorum: number;
  /** Time between SIGTERM and SIGKILL for a script past its limit. */
  killGraceMs: number;
  /** How long a returning higher-ranked elector follows before taking over. */
  takeoverSettleMs: number;
  /** Time the leader adds to every lease computation for tick granularity. */
  safetyMarginMs: number;
  /** Whether a fence executable is configured (the leader may call it). */
  fenceConfigured: boolean;
}

/** One recorded failure of a service on a runner. */
export interface FailureRecord {
  /** Wall-clock milliseconds supplied by the edge (display only). */
  wallMs: number;
  node: NodeName;
  service: string;
  /** The script that failed, or the operator's `koi confirm-down`. */
  event: ScriptEvent | 'confirm-down';
  exitCode: number | null;
  signal: string | null;
  /** Last lines of the script's output, already bounded by the edge. */
  output: string[];
}

/**
 * The part of the cluster's state the leader replicates in its heartbeats so
 * that a new leader inherits it. Versions order states across leaderships.
 */
export interface ClusterState {
  versionEpoch: number;
  versionSeq: number;
  /** Runner designated as master, or null. */
  master: NodeName | null;
  /** Epoch of the leadership that designated the master (the fencing token). */
  masterEpoch: number;
  /** `koi demote`: masterless until `koi elect` or `koi promote`. */
  manualMaster: boolean;
  /** `koi promote NODE` target while the switchover is pending. */
  target: NodeName | null;
  maintenance: boolean;
  /**
   * Runners that may have held the master role when maintenance was switched
   * off and have not yet acknowledged that: while frozen they ignored their
   * lease, so nobody else is promoted until they confirm or are fenced.
   */
  frozenHolders: NodeName[];
  /**
   * Every runner a state has named master, oldest first. Leases go out only
   * for a designation a quorum holds, and every later leader inherits such a
   * state, so a runner missing here was never granted a lease and cannot hold
   * the role. Absent (a state written by an older koinode): anyone may have been.
   */
  designated?: NodeName[];
  /**
   * Runners that may have held the role when maintenance was switched on
   * (maintenance promotes nobody, so only they can hold it when it ends).
   * Absent while maintenance is off, or when an older koinode switched it on.
   */
  maintenanceHolders?: NodeName[];
  /** Runners held stopped by `koi stop` until `koi start`. */
  stopped: NodeName[];
  /** Incremented by `koi recover NODE`; a runner recovers when it sees a new value. */
  recoverTokens: Record<NodeName, number>;
  /** Bounded failure history, oldest first. */
  failures: FailureRecord[];
}

export interface ServiceReport {
  name: string;
  priority: number | null;
  state: ServiceState;
  running: ScriptEvent | null;
  failed: boolean;
  /** Last status said "live but not promotable" (exit 93). */
  notPromotable: boolean;
  disabled: boolean;
  /**
   * A status said 92 (stopped) while it was running, not at a boot check:
   * the service died; kept until a heartbeat shows the runner is not the
   * designated master. Absent: false (and from nodes of protocol 1.0).
   */
  died?: boolean;
  /**
   * The `KOI_SCORE=<n>` line its last status printed: how fresh its copy of
   * the data is (higher is fresher). Absent: none printed (or protocol < 1.2).
   */
  score?: number;
}

/** What a runner tells the leader in every heartbeat reply. */
/**
 * A runner's watchdog as its edge reports it: none in use ('off'), a device
 * that can be armed ('ready'), armed now ('armed'), or required by the
 * configuration and not usable ('unavailable': the runner is not promotable).
 */
export type WatchdogState = 'off' | 'ready' | 'armed' | 'unavailable';

/**
 * What the watchdog needs from the edge now: closed with the magic character
 * ('disarm': nothing is or may be held), armed and fed ('feed'), or armed and
 * left unfed ('starve': the hold bound is near, so if this runner cannot
 * finish letting go by itself the machine resets before any leader frees
 * the role by timing).
 */
export type WatchdogDemand = 'disarm' | 'feed' | 'starve';

export interface RunnerReport {
  state: RunnerState;
  /** Its watchdog (absent from older nodes: 'off'). */
  watchdog?: WatchdogState;
  /** From the start of a promote until the end of the demote. */
  holding: boolean;
  /**
   * It stopped claiming the role by timing alone (a demote or stop failed:
   * nothing proves a service let go), so its "not holding" is no proof: the
   * leader waits by its own timings. Absent: false (and protocol < 1.2).
   */
  releasedByTime?: boolean;
  promotable: boolean;
  failed: boolean;
  failcount: number;
  /** Milliseconds since this runner last failed, or null. */
  lastFailureAgoMs: number | null;
  /**
   * A failed runner: milliseconds until its next automatic recovery (null:
   * none scheduled), and why it waits, for people. Both null when not failed.
   * Optional: older nodes do not send them.
   */
  nextRecoveryInMs?: number | null;
  recoveryWaitReason?: string | null;
  /** A service is disabled: the runner must not be master. */
  disabled: boolean;
  /** Milliseconds since all services were last started (0 when not). */
  uptimeMs: number;
  services: ServiceReport[];
  /** Failures not yet acknowledged by a leader (resent until they appear in the state). */
  pendingFailures: FailureRecord[];
}

export interface LeaseGrant {
  /** The runner's own clock reading it sent in its last reply. */
  echoMs: number;
  incarnation: number;
  /**
   * The terms the leader counts on: the lease runs this long from `echoMs`
   * and the runner lets go within `demoteMs` after. The runner takes the
   * shorter of these and its own settings. (Absent from older leaders.)
   */
  leaseMs?: number;
  demoteMs?: number;
}

export type Message =
  | {
      kind: 'vote-req';
      epoch: number;
      takeover: boolean;
      preVote: boolean;
      /** The candidate counts a vote as an acknowledgement valid this long (absent: older peer). */
      windowMs?: number;
      /** A rescue (takeover is set too): the leader has no master and the candidate reaches more. */
      rescue?: boolean;
    }
  | {
      kind: 'vote';
      epoch: number;
      preVote: boolean;
      granted: boolean;
      /** Set when the voter outranks the candidate and runs itself. */
      outranked: boolean;
      /** How long ago the voter last acknowledged any leader (or booted). */
      lastAckAgoMs: number;
      /**
       * Until when (from now, may be negative) a leader whose heartbeats this
       * voter acknowledged may still count it towards a quorum, and so grant
       * leases: its last acknowledgement plus the window that heartbeat
       * announced. Absent from older peers.
       */
      grantsEndInMs?: number;
      state: ClusterState | null;
      /** The voter's clock and incarnation: lets a new leader renew its lease in its first heartbeat. */
      nowMs: number;
      incarnation: number;
    }
  | {
      kind: 'heartbeat';
      epoch: number;
      seq: number;
      sentMs: number;
      master: NodeName | null;
      masterEpoch: number;
      grant: LeaseGrant | null;
      /** Full state only when the receiver has not acknowledged this version. */
      state: ClusterState | null;
      stateVersionEpoch: number;
      stateVersionSeq: number;
      /** Newest version a quorum of electors holds: it survives any leader change. */
      commitVersionEpoch: number;
      commitVersionSeq: number;
      /**
       * How long after sending this heartbeat the leader may count an
       * acknowledgement of it towards a quorum (it grows with the measured
       * round trip). Absent from older leaders.
       */
      windowMs?: number;
      /**
       * The leader has a quorum without counting rejoining nodes: only under
       * such a leader does a rejoining node become whole (absent: older leader).
       */
      quorate?: boolean;
      /**
       * Nodes the leader heard from within leader_timeout (itself included):
       * a higher-ranked elector takes over only when it reaches all of them.
       * Absent from older leaders.
       */
      reach?: NodeName[];
    }
  | {
      kind: 'ack';
      epoch: number;
      seq: number;
      echoSentMs: number;
      /** The window of the heartbeat acknowledged (absent: an older peer, or a report without one). */
      echoWindowMs?: number;
      /** The sender is rejoining after a lost state: its acknowledgements count towards no quorum. */
      rejoining?: boolean;
      nowMs: number;
      incarnation: number;
      stateVersionEpoch: number;
      stateVersionSeq: number;
      report: RunnerReport | null;
    };

export type MessageKind = Message['kind'];

export interface Outbound {
  to: NodeName;
  msg: Message;
}

export interface RunRequest {
  runId: number;
  service: string;
  event: ScriptEvent;
  /** Values for the KOI_* variables. */
  vars: {
    isPromoted: boolean;
    state: RunnerState;
    epoch: number;
    master: NodeName | null;
  };
  /** Demote started because the lease ran out (priority order not kept). */
  urgent: boolean;
  /**
   * The runner may hold the master role while this runs (what a successor
   * koinode must assume if this one dies meanwhile); wider than
   * KOI_IS_PROMOTED, which says 0 for a demote, stop or failed script.
   */
  mayHold: boolean;
}

export interface SignalRequest {
  runId: number;
  signal: Signal;
  /**
   * The run is stopped early because the lease ran out or the services are
   * being stopped, not at its time limit: whatever it ends with, it is no
   * verdict on the service (a start, promote or status).
   */
  cut?: true;
}

export interface FenceRequest {
  fenceId: number;
  node: NodeName;
}

export type AdminCommand =
  | { kind: 'promote'; node: NodeName }
  | { kind: 'demote' }
  | { kind: 'elect' }
  | { kind: 'maintenance'; on: boolean }
  | { kind: 'start'; node: NodeName }
  | { kind: 'stop'; node: NodeName }
  | { kind: 'recover'; node: NodeName }
  /** The operator vouches that the node's machine is down (powered off): free its role. */
  | { kind: 'confirm-down'; node: NodeName; wallMs: number };

/** Why the leader does not promote anyone yet: one runner that may still hold. */
export interface Blocker {
  node: NodeName;
  /** What would free it, for people (status output). */
  reason: string;
}

export interface AdminReply {
  requestId: number;
  ok: boolean;
  /** 'not-leader' lets the edge forward the request to `leader`. */
  error: string | null;
  code: 'ok' | 'not-leader' | 'refused' | 'not-committed';
  leader: NodeName | null;
  /** Accepted, but it cannot take effect yet: why, for people (null: nothing to add). */
  note?: string | null;
}

/** Everything that can happen to a node, as data. */
export type Input =
  | { kind: 'message'; from: NodeName; msg: Message }
  | {
      kind: 'script-done';
      runId: number;
      exitCode: number | null;
      signal: string | null;
      output: string[];
      wallMs: number;
      /** A status printed `KOI_SCORE=<n>` (the last such line). */
      score?: number | null;
      /** The script's file was gone when it was spawned: it did not run. */
      vanished?: boolean;
    }
  | { kind: 'fence-done'; fenceId: number; ok: boolean }
  | { kind: 'service-disabled'; service: string; disabled: boolean }
  /** A rescan of the services folder: every service found in it now. */
  | { kind: 'services-found'; services: ServiceDef[] }
  /** koinode is stopping: demote and stop every service in order. */
  | { kind: 'shutdown' }
  /**
   * The edge found its event loop stalled for longer than the safety margin
   * allows: deadlines may have been met late, so a holder lets go now.
   */
  | { kind: 'loop-stalled'; stalledMs: number }
  /** The edge's watchdog changed (found usable, armed, disarmed, lost). */
  | { kind: 'watchdog'; state: WatchdogState }
  | { kind: 'admin'; requestId: number; command: AdminCommand };

/** Things worth logging, counting and turning into handler events. */
export type CoreEvent =
  | { kind: 'leader-elected'; epoch: number; leader: NodeName }
  | { kind: 'leader-lost'; epoch: number; reason: string }
  | { kind: 'stepped-down'; epoch: number; reason: string }
  | { kind: 'campaign'; epoch: number; takeover: boolean }
  | { kind: 'master-designated'; epoch: number; master: NodeName; reason: string }
  | { kind: 'master-revoked'; epoch: number; master: NodeName; reason: string }
  | { kind: 'lease-expired'; node: NodeName }
  | { kind: 'fence-requested'; node: NodeName }
  /** `retryInMs`: after a failure, the pause before the next attempt. */
  | { kind: 'fence-result'; node: NodeName; ok: boolean; retryInMs: number | null }
  | { kind: 'runner-failed'; node: NodeName; service: string; event: ScriptEvent }
  | { kind: 'runner-recovered'; node: NodeName; automatic: boolean }
  | { kind: 'state-changed'; what: string }
  | { kind: 'dropped'; from: NodeName; reason: string }
  | { kind: 'warning'; text: string };

export interface Ready {
  messages: Outbound[];
  runs: RunRequest[];
  signals: SignalRequest[];
  fences: FenceRequest[];
  events: CoreEvent[];
  replies: AdminReply[];
  /** Write this durably before sending `messages` (votes must not be forgotten). */
  persist: PersistedState | null;
}

/** What must survive a restart of the node. */
export interface PersistedState {
  epoch: number;
  votedFor: NodeName | null;
  state: ClusterState;
  /** Still rejoining after a lost state: grants no vote yet (survives a restart). */
  rejoining?: boolean;
  /**
   * The widest acknowledgement window this node ever acknowledged: after a
   * restart it assumes a leader may still count it that long.
   */
  ackWindowMs?: number;
}

export function assertNever(x: never): never {
  throw new Error(`unexpected value: ${JSON.stringify(x)}`);
}
