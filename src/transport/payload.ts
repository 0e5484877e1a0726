// Shapes of what travels inside envelopes, checked before anything reaches the
// core: a malformed message is refused, never half-applied.
import type { Message, PeerInfo } from '../core/types';
import { AuthError } from '../errors';

export type PeerPayload = { type: 'hello'; info: PeerInfo } | { type: 'msg'; msg: Message };

const isObj = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);
const isNum = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x);
const isBool = (x: unknown): x is boolean => typeof x === 'boolean';
const isStrOrNull = (x: unknown): boolean => x === null || typeof x === 'string';
/** Absent (an older peer) or a positive duration. */
const optPositive = (x: unknown): boolean => x === undefined || (isNum(x) && x > 0);

function bad(what: string): never {
  throw new AuthError(`malformed message: ${what}`, 'malformed');
}

function need(cond: boolean, what: string): void {
  if (!cond) bad(what);
}

/** JSON cannot carry -Infinity; the sender writes null for "never". */
function num(x: unknown): number {
  return x === null ? -Infinity : (x as number);
}

export function checkMessage(m: unknown): Message {
  need(isObj(m), 'not an object');
  const o = m as Record<string, unknown>;
  need(isNum(o.epoch) && (o.epoch as number) >= 0, 'epoch');
  switch (o.kind) {
    case 'vote-req':
      need(isBool(o.takeover) && isBool(o.preVote), 'vote-req flags');
      need(optPositive(o.windowMs), 'vote-req window');
      need(o.rescue === undefined || isBool(o.rescue), 'vote-req rescue');
      return o as unknown as Message;
    case 'vote':
      need(isBool(o.preVote) && isBool(o.granted) && isBool(o.outranked) && isNum(o.lastAckAgoMs) && isNum(o.nowMs) && isNum(o.incarnation), 'vote fields');
      need(o.state === null || isObj(o.state), 'vote state');
      need(o.grantsEndInMs === undefined || isNum(o.grantsEndInMs), 'vote grantsEndInMs');
      return o as unknown as Message;
    case 'heartbeat':
      need(isNum(o.seq) && isNum(o.sentMs) && isStrOrNull(o.master) && isNum(o.masterEpoch), 'heartbeat fields');
      need(o.grant === null || (isObj(o.grant) && isNum(o.grant.echoMs) && isNum(o.grant.incarnation) && optPositive(o.grant.leaseMs) && optPositive(o.grant.demoteMs)), 'heartbeat grant');
      need(o.state === null || isObj(o.state), 'heartbeat state');
      need(isNum(o.stateVersionEpoch) && isNum(o.stateVersionSeq) && isNum(o.commitVersionEpoch) && isNum(o.commitVersionSeq), 'heartbeat versions');
      need(optPositive(o.windowMs), 'heartbeat window');
      need(o.quorate === undefined || isBool(o.quorate), 'heartbeat quorate');
      need(o.reach === undefined || (Array.isArray(o.reach) && o.reach.every((n) => typeof n === 'string')), 'heartbeat reach');
      return o as unknown as Message;
    case 'ack':
      need(isNum(o.seq) && (o.echoSentMs === null || isNum(o.echoSentMs)) && isNum(o.nowMs) && isNum(o.incarnation), 'ack fields');
      need(isNum(o.stateVersionEpoch) && isNum(o.stateVersionSeq), 'ack versions');
      need(optPositive(o.echoWindowMs), 'ack window');
      need(o.rejoining === undefined || isBool(o.rejoining), 'ack rejoining');
      need(o.report === null || (isObj(o.report) && Array.isArray(o.report.services) && Array.isArray(o.report.pendingFailures)), 'ack report');
      return { ...(o as unknown as Message), echoSentMs: num(o.echoSentMs) } as Message;
    default:
      return bad(`unknown kind ${JSON.stringify(o.kind)}`);
  }
}

export function checkPeerPayload(p: unknown): PeerPayload {
  need(isObj(p), 'payload is not an object');
  const o = p as Record<string, unknown>;
  if (o.type === 'hello') {
    const i = o.info;
    need(isObj(i) && typeof i.name === 'string' && isBool(i.elector) && isBool(i.runner) && isNum(i.priority), 'hello');
    const t = i as Record<string, unknown>;
    need(optPositive(t.masterLeaseMs) && optPositive(t.demoteTimeoutMs), 'hello timings');
    return { type: 'hello', info: i as unknown as PeerInfo };
  }
  if (o.type === 'msg') return { type: 'msg', msg: checkMessage(o.msg) };
  return bad(`unknown payload type ${JSON.stringify(o.type)}`);
}
