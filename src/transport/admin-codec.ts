// Admin requests, replies and watch events (proto/koi.proto) to and from the
// JSON shapes of src/admin-types.ts, which `koi --json` prints. Requests are
// checked field by field before the daemon sees them; replies and events are
// checked too, because a node forwards what the leader answers.
import type { AdminRequest, AdminResponse, FailuresJson, LocalJson, NodeJson, NodeStateJson, ServiceJson, StatusJson, WatchEvent } from '../admin-types';
import type { AdminCommand } from '../core/types';
import { bad, bool, count, enumName, enumWord, int, list, need, nodeName, object, optional, serviceName, text, timeMs } from './fields';
import { RUNNER_STATES, SCRIPT_EVENTS, SERVICE_STATES, WATCHDOG_STATES, failureListIn, failureListOut } from './peer-codec';
import { bodyType, decodeBody, encodeBody } from './schema';

const REQUEST = () => bodyType('AdminRequest');
const REPLY = () => bodyType('AdminReply');
const EVENT = () => bodyType('WatchEvent');

function decode(name: string, type: ReturnType<typeof bodyType>, body: Buffer): Record<string, unknown> {
  try {
    return decodeBody(type, body);
  } catch (e) {
    return bad(`not a koi.v1.${name} (${(e as Error).message})`);
  }
}

const nullable = <T>(v: T | undefined): T | null => (v === undefined ? null : v);
const some = <K extends string, V>(key: K, v: V | null | undefined): { [P in K]?: V } => (v === null || v === undefined ? {} : { [key]: v }) as { [P in K]?: V };

// ---- requests ------------------------------------------------------------------------

function commandOut(c: AdminCommand): Record<string, unknown> {
  switch (c.kind) {
    case 'promote':
    case 'start':
    case 'stop':
    case 'recover':
      return { [c.kind]: { node: c.node } };
    case 'demote':
    case 'elect':
      return { [c.kind]: {} };
    case 'maintenance':
      return { maintenance: { on: c.on } };
    case 'confirm-down':
      return { confirmDown: { node: c.node, wallMs: c.wallMs } };
  }
}

export function encodeAdminRequest(r: AdminRequest): Buffer {
  switch (r.op) {
    case 'status':
    case 'local':
    case 'failures':
    case 'watch':
      return encodeBody(REQUEST(), { [r.op]: {} });
    case 'reconfigure':
      return encodeBody(REQUEST(), { reconfigure: r.node === null ? {} : { node: r.node } });
    case 'command':
      return encodeBody(REQUEST(), { command: commandOut(r.command) });
  }
}

function commandIn(x: unknown): AdminCommand {
  const o = object(x, 'command');
  const nodeOf = (k: string) => nodeName(object(o[k], `command.${k}`).node, `command.${k}.node`);
  switch (o.kind) {
    case 'promote':
    case 'start':
    case 'stop':
    case 'recover':
      return { kind: o.kind, node: nodeOf(o.kind) };
    case 'demote':
    case 'elect':
      return { kind: o.kind };
    case 'maintenance':
      return { kind: 'maintenance', on: bool(object(o.maintenance, 'command.maintenance').on, 'command.maintenance.on') };
    case 'confirmDown': {
      const c = object(o.confirmDown, 'command.confirm_down');
      return { kind: 'confirm-down', node: nodeName(c.node, 'command.confirm_down.node'), wallMs: timeMs(c.wallMs, 'command.confirm_down.wall_ms') };
    }
    default:
      return bad('command of unknown kind');
  }
}

export function decodeAdminRequest(body: Buffer): AdminRequest {
  const o = decode('AdminRequest', REQUEST(), body);
  switch (o.op) {
    case 'status':
    case 'local':
    case 'failures':
    case 'watch':
      return { op: o.op };
    case 'reconfigure':
      return { op: 'reconfigure', node: optional(object(o.reconfigure, 'reconfigure').node, nodeName, 'reconfigure.node') ?? null };
    case 'command':
      return { op: 'command', command: commandIn(o.command) };
    default:
      return bad('admin request of unknown op');
  }
}

// ---- replies -------------------------------------------------------------------------

const CODES = ['ok', 'refused', 'not-leader', 'unavailable', 'error'] as const;
const NODE_STATES: readonly NodeStateJson[] = [...RUNNER_STATES, 'elector', 'other'];

function serviceViewOut(s: ServiceJson): Record<string, unknown> {
  return {
    name: s.name,
    ...some('priority', s.priority),
    state: enumName('SERVICE_STATE_', s.state),
    running: s.running === null ? 0 : enumName('SCRIPT_EVENT_', s.running),
    failed: s.failed,
    disabled: s.disabled,
    ...some('score', s.score),
  };
}

function serviceViewIn(x: unknown, what: string): ServiceJson {
  const o = object(x, what);
  return {
    name: serviceName(o.name, `${what}.name`),
    priority: nullable(optional(o.priority, (v, w) => int(v, w, -1_000_000, 1_000_000), `${what}.priority`)),
    state: enumWord(o.state, 'SERVICE_STATE_', SERVICE_STATES, `${what}.state`),
    running: o.running === 'SCRIPT_EVENT_UNSPECIFIED' ? null : enumWord(o.running, 'SCRIPT_EVENT_', SCRIPT_EVENTS, `${what}.running`),
    failed: bool(o.failed, `${what}.failed`),
    disabled: bool(o.disabled, `${what}.disabled`),
    score: nullable(optional(o.score, count, `${what}.score`)),
  };
}

function nodeViewOut(n: NodeJson): Record<string, unknown> {
  return {
    name: n.name,
    address: n.address,
    elector: n.elector,
    runner: n.runner,
    leader: n.leader,
    state: enumName('NODE_STATE_', n.state),
    reachable: n.reachable,
    ...some('lastSeenMs', n.lastSeenMs),
    failcount: n.failcount,
    ...some('nextRecoveryInMs', n.nextRecoveryInMs),
    ...some('recoveryWaitReason', n.recoveryWaitReason),
    services: n.services.map(serviceViewOut),
    timings: n.timings,
    ...some('rttMs', n.rttMs),
    watchdog: n.watchdog === null ? 0 : enumName('WATCHDOG_STATE_', n.watchdog),
    version: n.version,
  };
}

function nodeViewIn(x: unknown, what: string): NodeJson {
  const o = object(x, what);
  const t = o.timings === null ? null : object(o.timings, `${what}.timings`);
  const v = o.version === null ? null : object(o.version, `${what}.version`);
  return {
    name: nodeName(o.name, `${what}.name`),
    address: text(o.address, `${what}.address`, 300),
    elector: bool(o.elector, `${what}.elector`),
    runner: bool(o.runner, `${what}.runner`),
    leader: bool(o.leader, `${what}.leader`),
    state: enumWord(o.state, 'NODE_STATE_', NODE_STATES, `${what}.state`),
    reachable: bool(o.reachable, `${what}.reachable`),
    lastSeenMs: nullable(optional(o.lastSeenMs, timeMs, `${what}.last_seen_ms`)),
    failcount: count(o.failcount, `${what}.failcount`),
    nextRecoveryInMs: nullable(optional(o.nextRecoveryInMs, timeMs, `${what}.next_recovery_in_ms`)),
    recoveryWaitReason: nullable(optional(o.recoveryWaitReason, (a, w) => text(a, w, 1024), `${what}.recovery_wait_reason`)),
    services: list(o.services, `${what}.services`, 1024, serviceViewIn),
    timings: t === null ? null : { masterLeaseMs: timeMs(t.masterLeaseMs, `${what}.timings`), demoteTimeoutMs: timeMs(t.demoteTimeoutMs, `${what}.timings`) },
    rttMs: nullable(optional(o.rttMs, timeMs, `${what}.rtt_ms`)),
    watchdog: o.watchdog === 'WATCHDOG_STATE_UNSPECIFIED' ? null : enumWord(o.watchdog, 'WATCHDOG_STATE_', WATCHDOG_STATES, `${what}.watchdog`),
    version: v === null ? null : { software: text(v.software, `${what}.version.software`, 64), protocol: text(v.protocol, `${what}.version.protocol`, 16), compatible: bool(v.compatible, `${what}.version.compatible`) },
  };
}

function statusOut(s: StatusJson): Record<string, unknown> {
  const c = s.cluster;
  return {
    cluster: {
      id: c.id,
      epoch: c.epoch,
      ...some('leader', c.leader),
      ...some('master', c.master),
      ...some('target', c.target),
      manualMaster: c.manualMaster,
      maintenance: c.maintenance,
      quorum: c.quorum,
      waitingFor: c.waitingFor,
      network: c.network === null ? null : { ...some('quorumRttMs', c.network.quorumRttMs), windowMs: c.network.windowMs, toleratedRttMs: c.network.toleratedRttMs, ...some('warning', c.network.warning) },
    },
    nodes: s.nodes.map(nodeViewOut),
    answeredBy: s.answeredBy,
    partial: s.partial,
  };
}

function statusIn(x: unknown): StatusJson {
  const o = object(x, 'status');
  const c = object(o.cluster, 'status.cluster');
  const q = object(c.quorum, 'status.cluster.quorum');
  const n = c.network === null ? null : object(c.network, 'status.cluster.network');
  return {
    cluster: {
      id: count(c.id, 'cluster.id'),
      epoch: count(c.epoch, 'cluster.epoch'),
      leader: nullable(optional(c.leader, nodeName, 'cluster.leader')),
      master: nullable(optional(c.master, nodeName, 'cluster.master')),
      target: nullable(optional(c.target, nodeName, 'cluster.target')),
      manualMaster: bool(c.manualMaster, 'cluster.manual_master'),
      maintenance: bool(c.maintenance, 'cluster.maintenance'),
      quorum: { required: count(q.required, 'quorum.required'), electors: count(q.electors, 'quorum.electors'), reachable: count(q.reachable, 'quorum.reachable') },
      waitingFor: list(c.waitingFor, 'cluster.waiting_for', 256, (b, w) => {
        const bo = object(b, w);
        return { node: nodeName(bo.node, `${w}.node`), reason: text(bo.reason, `${w}.reason`, 1024) };
      }),
      network:
        n === null
          ? null
          : {
              quorumRttMs: nullable(optional(n.quorumRttMs, timeMs, 'network.quorum_rtt_ms')),
              windowMs: timeMs(n.windowMs, 'network.window_ms'),
              toleratedRttMs: timeMs(n.toleratedRttMs, 'network.tolerated_rtt_ms'),
              warning: nullable(optional(n.warning, (a, w) => text(a, w, 1024), 'network.warning')),
            },
    },
    nodes: list(o.nodes, 'status.nodes', 256, nodeViewIn),
    answeredBy: nodeName(o.answeredBy, 'status.answered_by'),
    partial: bool(o.partial, 'status.partial'),
  };
}

function localOut(l: LocalJson): Record<string, unknown> {
  return {
    ...l,
    leader: l.leader ?? undefined,
    master: l.master ?? undefined,
    config: l.config ?? undefined,
    state: enumName('NODE_STATE_', l.state),
    services: l.services.map(serviceViewOut),
  };
}

function localIn(x: unknown): LocalJson {
  const o = object(x, 'local');
  const t = object(o.traffic, 'local.traffic');
  const p = o.protocol === null ? null : object(o.protocol, 'local.protocol');
  return {
    name: nodeName(o.name, 'local.name'),
    address: text(o.address, 'local.address', 300),
    elector: bool(o.elector, 'local.elector'),
    runner: bool(o.runner, 'local.runner'),
    role: enumWordPlain(o.role, ['leader', 'candidate', 'follower'] as const, 'local.role'),
    epoch: count(o.epoch, 'local.epoch'),
    leader: nullable(optional(o.leader, nodeName, 'local.leader')),
    master: nullable(optional(o.master, nodeName, 'local.master')),
    maintenance: bool(o.maintenance, 'local.maintenance'),
    state: enumWord(o.state, 'NODE_STATE_', NODE_STATES, 'local.state'),
    services: list(o.services, 'local.services', 1024, serviceViewIn),
    config: nullable(optional(o.config, (a, w) => text(a, w, 4096), 'local.config')),
    servicesFolder: text(o.servicesFolder, 'local.services_folder', 4096),
    uptimeMs: timeMs(o.uptimeMs, 'local.uptime_ms'),
    pid: count(o.pid, 'local.pid'),
    version: text(o.version, 'local.version', 64),
    traffic: { bytesSent: count(t.bytesSent, 'traffic'), bytesReceived: count(t.bytesReceived, 'traffic'), messagesSent: count(t.messagesSent, 'traffic'), messagesReceived: count(t.messagesReceived, 'traffic') },
    rssBytes: count(o.rssBytes, 'local.rss_bytes'),
    protocol: p === null ? null : { major: count(p.major, 'protocol'), minMinor: count(p.minMinor, 'protocol'), maxMinor: count(p.maxMinor, 'protocol') },
  };
}

function enumWordPlain<T extends string>(x: unknown, allowed: readonly T[], what: string): T {
  need(typeof x === 'string' && (allowed as readonly string[]).includes(x), what);
  return x as T;
}

/** Which `data` member a reply to `op` carries. */
function dataOut(op: AdminRequest['op'], data: unknown): Record<string, unknown> {
  if (data === undefined || data === null) return {};
  switch (op) {
    case 'status':
      return { status: statusOut(data as StatusJson) };
    case 'local':
      return { local: localOut(data as LocalJson) };
    case 'failures':
      return { failures: { records: failureListOut(data as FailuresJson) } };
    case 'command': {
      const note = (data as { note?: string }).note;
      return note === undefined ? {} : { note };
    }
    case 'reconfigure': {
      const r = data as { reloaded: string; needRestart: string[] };
      return { reloaded: { file: r.reloaded, needRestart: r.needRestart } };
    }
    case 'watch':
      return {};
  }
}

export function encodeAdminReply(r: AdminResponse, op: AdminRequest['op']): Buffer {
  return encodeBody(REPLY(), { ok: r.ok, code: enumName('REPLY_CODE_', r.code), error: r.error ?? '', ...dataOut(op, r.data) });
}

export function decodeAdminReply(body: Buffer): AdminResponse {
  const o = decode('AdminReply', REPLY(), body);
  const res: AdminResponse = { ok: bool(o.ok, 'reply.ok'), code: enumWord(o.code, 'REPLY_CODE_', CODES, 'reply.code') };
  const error = text(o.error, 'reply.error', 8192);
  if (error !== '') res.error = error;
  switch (o.data) {
    case 'status':
      res.data = statusIn(o.status);
      break;
    case 'local':
      res.data = localIn(o.local);
      break;
    case 'failures':
      res.data = failureListIn(object(o.failures, 'reply.failures').records, 'reply.failures');
      break;
    case 'note':
      res.data = { note: text(o.note, 'reply.note', 8192) };
      break;
    case 'reloaded': {
      const r = object(o.reloaded, 'reply.reloaded');
      res.data = { reloaded: text(r.file, 'reloaded.file', 4096), needRestart: list(r.needRestart, 'reloaded.need_restart', 64, (a, w) => text(a, w, 256)) };
      break;
    }
    default:
      break;
  }
  return res;
}

// ---- watch events --------------------------------------------------------------------

/** Fields a watch event may carry besides seq, time, node and kind, with their checks. */
// Names here are for display and may be empty (a handler event about no
// node), so they are checked as short text, not as node names.
const name64 = (v: unknown, w: string) => text(v, w, 64);
const EVENT_FIELDS: Record<string, (v: unknown, what: string) => unknown> = {
  epoch: count,
  leader: name64,
  master: name64,
  reason: (v, w) => text(v, w, 1024),
  service: (v, w) => text(v, w, 255),
  event: (v, w) => text(v, w, 32),
  ok: bool,
  automatic: bool,
  takeover: bool,
  retryInMs: timeMs,
  what: (v, w) => text(v, w, 1024),
  from: name64,
  text: (v, w) => text(v, w, 8192),
  about: name64,
  maintenance: bool,
  manualMaster: bool,
};

/** Event fields the JSON output shows as null when absent (a view with no leader, a fence with no retry). */
const NULLABLE: Record<string, string[]> = { view: ['leader', 'master'], 'fence-result': ['retryInMs'] };

export function encodeWatchEvent(e: WatchEvent): Buffer {
  const out: Record<string, unknown> = { seq: e.seq, time: e.time, node: e.node, kind: e.kind };
  for (const k of Object.keys(EVENT_FIELDS)) if (e[k] !== undefined && e[k] !== null) out[k] = e[k];
  return encodeBody(EVENT(), out);
}

export function decodeWatchEvent(body: Buffer): WatchEvent {
  const o = decode('WatchEvent', EVENT(), body);
  const kind = text(o.kind, 'event.kind', 64);
  const e: WatchEvent = { seq: count(o.seq, 'event.seq'), time: text(o.time, 'event.time', 64), node: text(o.node, 'event.node', 64), kind };
  for (const [k, check] of Object.entries(EVENT_FIELDS)) if (o[k] !== undefined && o[k] !== null) e[k] = check(o[k], `event.${k}`);
  for (const k of NULLABLE[kind] ?? []) e[k] ??= null;
  return e;
}

