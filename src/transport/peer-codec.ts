// Peer frames (proto/koi.proto, PeerFrame) to and from the core's types.
// Decoding checks every field (fields.ts) and refuses the frame whole when
// one is wrong: an authenticated peer of another build cannot make the core
// throw. Encoding leaves out what the receiver's protocol minor lacks.
import type {
  ClusterState,
  FailureRecord,
  LeaseGrant,
  Message,
  PeerInfo,
  RunnerReport,
  RunnerState,
  ScriptEvent,
  ServiceReport,
  ServiceState,
  WatchdogState,
} from '../core/types';
import { bad, bool, count, countOrNone, durationMs, enumName, enumWord, int, knownNode, list, need, nodeName, object, optional, serviceName, text, timeMs } from './fields';
import { bodyType, decodeBody, encodeBody, type ProtocolRange } from './schema';

/** What a hello says beyond the core's PeerInfo. */
export interface HelloExtras {
  softwareVersion: string;
  protocol: ProtocolRange;
  /** [node] watchdog (since 1.1; empty from a 1.0 peer). */
  watchdogMode: string;
}

export type PeerPayload = { type: 'hello'; info: PeerInfo; extras: HelloExtras } | { type: 'msg'; msg: Message };

export const RUNNER_STATES: readonly RunnerState[] = ['failed', 'disconnected', 'stopped', 'live', 'slave', 'master'];
export const SERVICE_STATES: readonly ServiceState[] = ['failed', 'failing', 'stopped', 'stopping', 'starting', 'started', 'demoting', 'promoting', 'promoted'];
export const SCRIPT_EVENTS: readonly ScriptEvent[] = ['start', 'stop', 'status', 'promote', 'demote', 'failed'];
export const WATCHDOG_STATES: readonly WatchdogState[] = ['off', 'ready', 'armed', 'unavailable'];
const FAILURE_EVENTS: readonly (ScriptEvent | 'confirm-down')[] = [...SCRIPT_EVENTS, 'confirm-down'];

/** Bounds that no honest node comes near (a state keeps 200 failures, a run 20 lines). */
const MAX_NAMES = 256;
const MAX_SERVICES = 1024;
const MAX_FAILURES = 1000;
const MAX_LINES = 200;
const PRIORITY = 1_000_000;

const FRAME = () => bodyType('PeerFrame');

// ---- encoding ------------------------------------------------------------------------

function failureOut(f: FailureRecord): Record<string, unknown> {
  return {
    wallMs: f.wallMs,
    node: f.node,
    service: f.service,
    event: enumName('FAILURE_EVENT_', f.event),
    ...(f.exitCode !== null ? { exitCode: f.exitCode } : {}),
    ...(f.signal !== null ? { signal: f.signal } : {}),
    output: f.output,
  };
}

function stateOut(s: ClusterState): Record<string, unknown> {
  return {
    versionEpoch: s.versionEpoch,
    versionSeq: s.versionSeq,
    ...(s.master !== null ? { master: s.master } : {}),
    masterEpoch: s.masterEpoch,
    manualMaster: s.manualMaster,
    ...(s.target !== null ? { target: s.target } : {}),
    maintenance: s.maintenance,
    frozenHolders: s.frozenHolders,
    designated: s.designated === undefined ? null : { names: s.designated },
    maintenanceHolders: s.maintenanceHolders === undefined ? null : { names: s.maintenanceHolders },
    stopped: s.stopped,
    recoverTokens: s.recoverTokens,
    failures: s.failures.map(failureOut),
  };
}

function serviceOut(s: ServiceReport, minor: number): Record<string, unknown> {
  return {
    name: s.name,
    ...(s.priority !== null ? { priority: s.priority } : {}),
    state: enumName('SERVICE_STATE_', s.state),
    running: s.running === null ? 0 : enumName('SCRIPT_EVENT_', s.running),
    failed: s.failed,
    notPromotable: s.notPromotable,
    disabled: s.disabled,
    ...(minor >= 1 && s.died === true ? { died: true } : {}),
    ...(minor >= 2 && s.score !== undefined ? { score: s.score } : {}),
  };
}

function reportOut(r: RunnerReport, minor: number): Record<string, unknown> {
  return {
    state: enumName('RUNNER_STATE_', r.state),
    ...(minor >= 1 && r.watchdog !== undefined ? { watchdog: enumName('WATCHDOG_STATE_', r.watchdog) } : {}),
    holding: r.holding,
    ...(minor >= 2 && r.releasedByTime === true ? { releasedByTime: true } : {}),
    promotable: r.promotable,
    failed: r.failed,
    failcount: Math.min(r.failcount, 0xffffffff),
    ...(r.lastFailureAgoMs !== null ? { lastFailureAgoMs: r.lastFailureAgoMs } : {}),
    ...(r.nextRecoveryInMs != null ? { nextRecoveryInMs: r.nextRecoveryInMs } : {}),
    ...(r.recoveryWaitReason != null ? { recoveryWaitReason: r.recoveryWaitReason } : {}),
    disabled: r.disabled,
    uptimeMs: r.uptimeMs,
    services: r.services.map((s) => serviceOut(s, minor)),
    pendingFailures: r.pendingFailures.map(failureOut),
  };
}

function grantOut(g: LeaseGrant): Record<string, unknown> {
  return { echoMs: g.echoMs, incarnation: g.incarnation, ...(g.leaseMs !== undefined ? { leaseMs: g.leaseMs } : {}), ...(g.demoteMs !== undefined ? { demoteMs: g.demoteMs } : {}) };
}

function messageOut(m: Message, minor: number): Record<string, unknown> {
  switch (m.kind) {
    case 'vote-req':
      return { voteRequest: { epoch: m.epoch, takeover: m.takeover, preVote: m.preVote, ...(m.windowMs !== undefined ? { windowMs: m.windowMs } : {}), ...(m.rescue !== undefined ? { rescue: m.rescue } : {}) } };
    case 'vote':
      return {
        vote: {
          epoch: m.epoch,
          preVote: m.preVote,
          granted: m.granted,
          outranked: m.outranked,
          lastAckAgoMs: m.lastAckAgoMs,
          ...(m.grantsEndInMs !== undefined ? { grantsEndInMs: m.grantsEndInMs } : {}),
          state: m.state === null ? null : stateOut(m.state),
          nowMs: m.nowMs,
          incarnation: m.incarnation,
        },
      };
    case 'heartbeat':
      return {
        heartbeat: {
          epoch: m.epoch,
          seq: m.seq,
          sentMs: m.sentMs,
          ...(m.master !== null ? { master: m.master } : {}),
          masterEpoch: m.masterEpoch,
          grant: m.grant === null ? null : grantOut(m.grant),
          state: m.state === null ? null : stateOut(m.state),
          stateVersionEpoch: m.stateVersionEpoch,
          stateVersionSeq: m.stateVersionSeq,
          commitVersionEpoch: m.commitVersionEpoch,
          commitVersionSeq: m.commitVersionSeq,
          ...(m.windowMs !== undefined ? { windowMs: m.windowMs } : {}),
          ...(m.quorate !== undefined ? { quorate: m.quorate } : {}),
          reach: m.reach === undefined ? null : { names: m.reach },
        },
      };
    case 'ack':
      return {
        ack: {
          epoch: m.epoch,
          seq: m.seq,
          ...(Number.isFinite(m.echoSentMs) ? { echoSentMs: m.echoSentMs } : {}),
          ...(m.echoWindowMs !== undefined ? { echoWindowMs: m.echoWindowMs } : {}),
          ...(m.rejoining !== undefined ? { rejoining: m.rejoining } : {}),
          nowMs: m.nowMs,
          incarnation: m.incarnation,
          stateVersionEpoch: m.stateVersionEpoch,
          stateVersionSeq: m.stateVersionSeq,
          report: m.report === null ? null : reportOut(m.report, minor),
        },
      };
  }
}

/** Serialize a frame in protocol minor `minor` (the lower of both ends' newest). */
export function encodePeer(p: PeerPayload, minor: number): Buffer {
  if (p.type === 'msg') return encodeBody(FRAME(), messageOut(p.msg, minor));
  const i = p.info;
  return encodeBody(FRAME(), {
    hello: {
      name: i.name,
      elector: i.elector,
      runner: i.runner,
      priority: i.priority,
      masterLeaseMs: i.masterLeaseMs ?? 0,
      demoteTimeoutMs: i.demoteTimeoutMs ?? 0,
      softwareVersion: p.extras.softwareVersion.slice(0, 64),
      protocol: p.extras.protocol,
      ...(minor >= 1 ? { watchdogMode: p.extras.watchdogMode.slice(0, 16) } : {}),
    },
  });
}

// ---- decoding ------------------------------------------------------------------------

/** The cluster's node names: a role can only go to one of them. */
export type KnownNodes = ReadonlySet<string>;

function failureIn(x: unknown, what: string): FailureRecord {
  const o = object(x, what);
  return {
    wallMs: timeMs(o.wallMs, `${what}.wall_ms`),
    // Records outlive configurations: any well-formed name.
    node: nodeName(o.node, `${what}.node`),
    service: text(o.service, `${what}.service`, 255),
    event: enumWord(o.event, 'FAILURE_EVENT_', FAILURE_EVENTS, `${what}.event`),
    exitCode: optional(o.exitCode, (v, w) => int(v, w, -1, 255), `${what}.exit_code`) ?? null,
    signal: optional(o.signal, (v, w) => text(v, w, 32), `${what}.signal`) ?? null,
    output: list(o.output, `${what}.output`, MAX_LINES, (v, w) => text(v, w)),
  };
}

export function failureListOut(f: readonly FailureRecord[]): Record<string, unknown>[] {
  return f.map(failureOut);
}

export function failureListIn(x: unknown, what: string): FailureRecord[] {
  return list(x, what, MAX_FAILURES, failureIn);
}

function namesIn(x: unknown, what: string): string[] {
  return list(x, what, MAX_NAMES, nodeName);
}

function nameListIn(x: unknown, what: string): string[] | undefined {
  return x === null || x === undefined ? undefined : namesIn(object(x, what).names, `${what}.names`);
}

function stateIn(x: unknown, what: string): ClusterState {
  const o = object(x, what);
  const tokens = object(o.recoverTokens, `${what}.recover_tokens`);
  need(Object.keys(tokens).length <= MAX_NAMES, `${what}.recover_tokens (too many)`);
  const recoverTokens: Record<string, number> = {};
  for (const [k, v] of Object.entries(tokens)) recoverTokens[nodeName(k, `${what}.recover_tokens key`)] = count(v, `${what}.recover_tokens[${k}]`);
  const designated = nameListIn(o.designated, `${what}.designated`);
  const maintenanceHolders = nameListIn(o.maintenanceHolders, `${what}.maintenance_holders`);
  return {
    versionEpoch: count(o.versionEpoch, `${what}.version_epoch`),
    versionSeq: count(o.versionSeq, `${what}.version_seq`),
    master: optional(o.master, nodeName, `${what}.master`) ?? null,
    masterEpoch: count(o.masterEpoch, `${what}.master_epoch`),
    manualMaster: bool(o.manualMaster, `${what}.manual_master`),
    target: optional(o.target, nodeName, `${what}.target`) ?? null,
    maintenance: bool(o.maintenance, `${what}.maintenance`),
    frozenHolders: namesIn(o.frozenHolders, `${what}.frozen_holders`),
    ...(designated !== undefined ? { designated } : {}),
    ...(maintenanceHolders !== undefined ? { maintenanceHolders } : {}),
    stopped: namesIn(o.stopped, `${what}.stopped`),
    recoverTokens,
    failures: list(o.failures, `${what}.failures`, MAX_FAILURES, failureIn),
  };
}

function serviceIn(x: unknown, what: string): ServiceReport {
  const o = object(x, what);
  return {
    name: serviceName(o.name, `${what}.name`),
    priority: optional(o.priority, (v, w) => int(v, w, -PRIORITY, PRIORITY), `${what}.priority`) ?? null,
    state: enumWord(o.state, 'SERVICE_STATE_', SERVICE_STATES, `${what}.state`),
    running: o.running === 'SCRIPT_EVENT_UNSPECIFIED' ? null : enumWord(o.running, 'SCRIPT_EVENT_', SCRIPT_EVENTS, `${what}.running`),
    failed: bool(o.failed, `${what}.failed`),
    notPromotable: bool(o.notPromotable, `${what}.not_promotable`),
    disabled: bool(o.disabled, `${what}.disabled`),
    ...(bool(o.died, `${what}.died`) ? { died: true } : {}),
    ...(o.score !== undefined && o.score !== null ? { score: count(o.score, `${what}.score`) } : {}),
  };
}

function reportIn(x: unknown, what: string): RunnerReport {
  const o = object(x, what);
  const watchdog = o.watchdog === 'WATCHDOG_STATE_UNSPECIFIED' ? undefined : enumWord(o.watchdog, 'WATCHDOG_STATE_', WATCHDOG_STATES, `${what}.watchdog`);
  return {
    state: enumWord(o.state, 'RUNNER_STATE_', RUNNER_STATES, `${what}.state`),
    ...(watchdog !== undefined ? { watchdog } : {}),
    holding: bool(o.holding, `${what}.holding`),
    ...(bool(o.releasedByTime, `${what}.released_by_time`) ? { releasedByTime: true } : {}),
    promotable: bool(o.promotable, `${what}.promotable`),
    failed: bool(o.failed, `${what}.failed`),
    failcount: count(o.failcount, `${what}.failcount`),
    lastFailureAgoMs: optional(o.lastFailureAgoMs, timeMs, `${what}.last_failure_ago_ms`) ?? null,
    nextRecoveryInMs: optional(o.nextRecoveryInMs, timeMs, `${what}.next_recovery_in_ms`) ?? null,
    recoveryWaitReason: optional(o.recoveryWaitReason, (v, w) => text(v, w, 1024), `${what}.recovery_wait_reason`) ?? null,
    disabled: bool(o.disabled, `${what}.disabled`),
    uptimeMs: timeMs(o.uptimeMs, `${what}.uptime_ms`),
    services: list(o.services, `${what}.services`, MAX_SERVICES, serviceIn),
    pendingFailures: list(o.pendingFailures, `${what}.pending_failures`, MAX_FAILURES, failureIn),
  };
}

function grantIn(x: unknown, what: string): LeaseGrant {
  const o = object(x, what);
  const leaseMs = optional(o.leaseMs, durationMs, `${what}.lease_ms`);
  const demoteMs = optional(o.demoteMs, (v, w) => (v === 0 ? 0 : durationMs(v, w)), `${what}.demote_ms`);
  return {
    echoMs: timeMs(o.echoMs, `${what}.echo_ms`),
    incarnation: count(o.incarnation, `${what}.incarnation`),
    ...(leaseMs !== undefined ? { leaseMs } : {}),
    ...(demoteMs !== undefined ? { demoteMs } : {}),
  };
}

/** Spread only what is set, so the core sees exactly the optional fields sent. */
function opt<K extends string, V>(key: K, v: V | undefined): { [P in K]?: V } {
  return (v === undefined ? {} : { [key]: v }) as { [P in K]?: V };
}

function messageIn(f: Record<string, unknown>): Message {
  switch (f.kind) {
    case 'voteRequest': {
      const o = object(f.voteRequest, 'vote_request');
      return {
        kind: 'vote-req',
        epoch: count(o.epoch, 'vote_request.epoch'),
        takeover: bool(o.takeover, 'vote_request.takeover'),
        preVote: bool(o.preVote, 'vote_request.pre_vote'),
        ...opt('windowMs', optional(o.windowMs, durationMs, 'vote_request.window_ms')),
        ...opt('rescue', optional(o.rescue, bool, 'vote_request.rescue')),
      };
    }
    case 'vote': {
      const o = object(f.vote, 'vote');
      return {
        kind: 'vote',
        epoch: count(o.epoch, 'vote.epoch'),
        preVote: bool(o.preVote, 'vote.pre_vote'),
        granted: bool(o.granted, 'vote.granted'),
        outranked: bool(o.outranked, 'vote.outranked'),
        lastAckAgoMs: timeMs(o.lastAckAgoMs, 'vote.last_ack_ago_ms'),
        ...opt('grantsEndInMs', optional(o.grantsEndInMs, timeMs, 'vote.grants_end_in_ms')),
        state: o.state === null ? null : stateIn(o.state, 'vote.state'),
        nowMs: timeMs(o.nowMs, 'vote.now_ms'),
        incarnation: count(o.incarnation, 'vote.incarnation'),
      };
    }
    case 'heartbeat': {
      const o = object(f.heartbeat, 'heartbeat');
      // Names another node's [cluster] transport has and ours lacks (a
      // membership change rolling through) are the core's to ignore.
      const reach = nameListIn(o.reach, 'heartbeat.reach');
      return {
        kind: 'heartbeat',
        epoch: count(o.epoch, 'heartbeat.epoch'),
        seq: count(o.seq, 'heartbeat.seq'),
        sentMs: timeMs(o.sentMs, 'heartbeat.sent_ms'),
        master: optional(o.master, nodeName, 'heartbeat.master') ?? null,
        masterEpoch: count(o.masterEpoch, 'heartbeat.master_epoch'),
        grant: o.grant === null ? null : grantIn(o.grant, 'heartbeat.grant'),
        state: o.state === null ? null : stateIn(o.state, 'heartbeat.state'),
        stateVersionEpoch: count(o.stateVersionEpoch, 'heartbeat.state_version_epoch'),
        stateVersionSeq: count(o.stateVersionSeq, 'heartbeat.state_version_seq'),
        commitVersionEpoch: countOrNone(o.commitVersionEpoch, 'heartbeat.commit_version_epoch'),
        commitVersionSeq: countOrNone(o.commitVersionSeq, 'heartbeat.commit_version_seq'),
        ...opt('windowMs', optional(o.windowMs, durationMs, 'heartbeat.window_ms')),
        ...opt('quorate', optional(o.quorate, bool, 'heartbeat.quorate')),
        ...opt('reach', reach),
      };
    }
    case 'ack': {
      const o = object(f.ack, 'ack');
      return {
        kind: 'ack',
        epoch: count(o.epoch, 'ack.epoch'),
        seq: countOrNone(o.seq, 'ack.seq'),
        echoSentMs: optional(o.echoSentMs, timeMs, 'ack.echo_sent_ms') ?? -Infinity,
        ...opt('echoWindowMs', optional(o.echoWindowMs, durationMs, 'ack.echo_window_ms')),
        ...opt('rejoining', optional(o.rejoining, bool, 'ack.rejoining')),
        nowMs: timeMs(o.nowMs, 'ack.now_ms'),
        incarnation: count(o.incarnation, 'ack.incarnation'),
        stateVersionEpoch: count(o.stateVersionEpoch, 'ack.state_version_epoch'),
        stateVersionSeq: count(o.stateVersionSeq, 'ack.state_version_seq'),
        report: o.report === null ? null : reportIn(o.report, 'ack.report'),
      };
    }
    default:
      return bad(`peer frame of unknown kind ${JSON.stringify(f.kind ?? null)}`);
  }
}

function helloIn(x: unknown, known: KnownNodes): PeerPayload {
  const o = object(x, 'hello');
  const p = object(o.protocol, 'hello.protocol');
  const protocol = { major: count(p.major, 'hello.protocol.major'), minMinor: count(p.minMinor, 'hello.protocol.min_minor'), maxMinor: count(p.maxMinor, 'hello.protocol.max_minor') };
  need(protocol.minMinor <= protocol.maxMinor, 'hello.protocol (min above max)');
  const leaseMs = o.masterLeaseMs === 0 ? undefined : durationMs(o.masterLeaseMs, 'hello.master_lease_ms');
  const demoteMs = o.demoteTimeoutMs === 0 ? undefined : durationMs(o.demoteTimeoutMs, 'hello.demote_timeout_ms');
  return {
    type: 'hello',
    info: {
      name: knownNode(o.name, 'hello.name', known),
      elector: bool(o.elector, 'hello.elector'),
      runner: bool(o.runner, 'hello.runner'),
      priority: int(o.priority, 'hello.priority', -PRIORITY, PRIORITY),
      ...opt('masterLeaseMs', leaseMs),
      ...opt('demoteTimeoutMs', demoteMs),
    },
    extras: {
      softwareVersion: text(o.softwareVersion, 'hello.software_version', 64),
      protocol,
      watchdogMode: text(o.watchdogMode, 'hello.watchdog_mode', 16),
    },
  };
}

/** Decode and check a frame; throws AuthError('malformed') saying which field is wrong. */
export function decodePeer(body: Buffer, known: KnownNodes): PeerPayload {
  let f: Record<string, unknown>;
  try {
    f = decodeBody(FRAME(), body);
  } catch (e) {
    return bad(`not a koi.v1.PeerFrame (${(e as Error).message})`);
  }
  if (f.kind === 'hello') return helloIn(f.hello, known);
  return { type: 'msg', msg: messageIn(f) };
}
