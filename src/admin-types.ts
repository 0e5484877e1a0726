// What `koi` and koinode say to each other inside admin envelopes. The
// `StatusJson` shape is fixed by the spec (fields may be added, never changed).
import type { AdminCommand, FailureRecord, RunnerState, ScriptEvent, ServiceState } from './core/types';

export type AdminRequest =
  | { op: 'local' }
  | { op: 'status' }
  | { op: 'failures' }
  | { op: 'command'; command: AdminCommand }
  | { op: 'reconfigure'; node: string | null }
  | { op: 'watch' };

export interface AdminResponse {
  ok: boolean;
  /** ok, refused (the cluster said no), not-leader, unavailable, error. */
  code: 'ok' | 'refused' | 'not-leader' | 'unavailable' | 'error';
  error?: string;
  data?: unknown;
}

export interface ServiceJson {
  name: string;
  priority: number | null;
  state: ServiceState;
  running: ScriptEvent | null;
  failed: boolean;
  disabled: boolean;
  /** The KOI_SCORE its last status printed: how fresh its data is (null: none). */
  score: number | null;
}

/** Node states in status output: the runner states plus `elector` and `other`. */
export type NodeStateJson = RunnerState | 'elector' | 'other';

export interface NodeJson {
  name: string;
  address: string;
  elector: boolean;
  runner: boolean;
  leader: boolean;
  state: NodeStateJson;
  reachable: boolean;
  lastSeenMs: number | null;
  failcount: number;
  /** A failed runner: milliseconds until its next automatic recovery (null: none scheduled) and why. Null when not failed or not reachable. */
  nextRecoveryInMs: number | null;
  recoveryWaitReason: string | null;
  services: ServiceJson[];
  /** The safety timings the node said in its hello (null: not heard yet). */
  timings: { masterLeaseMs: number; demoteTimeoutMs: number } | null;
  /** The leader's last measured heartbeat round trip to this node (null: not the leader's view, or none yet). */
  rttMs: number | null;
  /** A runner's watchdog: off, ready (armed when it promotes), armed, unavailable (required but not usable); null: not a runner or not heard. */
  watchdog: 'off' | 'ready' | 'armed' | 'unavailable' | null;
  /**
   * What the node said of its version in its hello (or in an envelope that
   * was refused as incompatible); null: not heard. The answering node's own
   * is always known.
   */
  version: { software: string; protocol: string; compatible: boolean } | null;
}

export interface StatusJson {
  cluster: {
    id: number;
    epoch: number;
    leader: string | null;
    master: string | null;
    target: string | null;
    manualMaster: boolean;
    maintenance: boolean;
    quorum: { required: number; electors: number; reachable: number };
    /** Runners that keep the leader from promoting anyone, and what would free each. */
    waitingFor: { node: string; reason: string }[];
    /**
     * The leader's view of the network: the round trip within which a quorum
     * of electors answers, the acknowledgement window it announces, the
     * round trip the timings tolerate, and a warning when it comes close.
     */
    network: { quorumRttMs: number | null; windowMs: number; toleratedRttMs: number; warning: string | null } | null;
  };
  nodes: NodeJson[];
  /** Which node answered, and whether it is the leader's complete view. */
  answeredBy: string;
  partial: boolean;
}

export interface LocalJson {
  name: string;
  address: string;
  elector: boolean;
  runner: boolean;
  role: 'leader' | 'candidate' | 'follower';
  epoch: number;
  leader: string | null;
  master: string | null;
  maintenance: boolean;
  state: NodeStateJson;
  services: ServiceJson[];
  config: string | null;
  servicesFolder: string;
  uptimeMs: number;
  pid: number;
  version: string;
  /** Peer traffic since start: envelopes, and their bytes on the wire (protobuf plus the 5-byte gRPC prefix). */
  traffic: { bytesSent: number; bytesReceived: number; messagesSent: number; messagesReceived: number };
  rssBytes: number;
  /** The protocol versions this node speaks. */
  protocol: { major: number; minMinor: number; maxMinor: number } | null;
}

export interface WatchEvent {
  seq: number;
  time: string;
  node: string;
  kind: string;
  [k: string]: unknown;
}

export type FailuresJson = FailureRecord[];
