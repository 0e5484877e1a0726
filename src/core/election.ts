// Bully election with quorum: the rules a voter applies, and what a new
// leader learns from its votes. Node state lives in node.ts; these functions
// only decide.
import type { ClusterState, Message, NodeName, PeerInfo } from './types';
import { assertNever } from './types';
import { compareVersion, outranks } from './state';

/**
 * A node that started without its saved state: which electors it has not
 * heard from since, and the highest epoch each one it heard showed.
 */
export interface Amnesia {
  waitingFor: Set<NodeName>;
  heard: Map<NodeName, number>;
}

/** Highest epoch shown by an elector other than `except` (-1: none). */
export function highestHeard(a: Amnesia, except: NodeName | null): number {
  let m = -1;
  for (const [n, e] of a.heard) if (n !== except) m = Math.max(m, e);
  return m;
}

/**
 * Why a node without saved state must not vote for `candidate` in `epoch`
 * ('wait': not before it has heard every elector), or null. If it voted before in that epoch, it was for someone who has been
 * at that epoch or later ever since: the candidate itself (voting again for
 * it is harmless) or an elector it has heard at `epoch` or later.
 */
export function amnesicVoteRefusal(a: Amnesia, candidate: NodeName, epoch: number): 'wait' | string | null {
  if (a.waitingFor.size > 0) return 'wait';
  if (epoch <= highestHeard(a, candidate)) return `no saved state: may have voted in epoch ${epoch} before (an elector other than ${candidate} was there)`;
  return null;
}

/**
 * The lowest epoch the sender of `msg` can be at. A node that lost its state
 * learns from these where it may have voted before. undefined: the message
 * tells nothing (a pre-vote grant carries the candidate's epoch, not the voter's).
 */
export function senderEpochAtLeast(msg: Message): number | undefined {
  switch (msg.kind) {
    case 'heartbeat':
    case 'ack':
      return msg.epoch;
    case 'vote-req':
      return msg.preVote ? msg.epoch - 1 : msg.epoch;
    case 'vote':
      return msg.preVote && msg.granted ? undefined : msg.epoch;
    default:
      return assertNever(msg);
  }
}

export interface VoterView {
  self: PeerInfo;
  epoch: number;
  votedFor: NodeName | null;
  /** The leader this voter follows, when it heard from it within leader_timeout. */
  liveLeader: PeerInfo | null;
  /** This voter may run itself (elector, not backing off after a failed campaign). */
  canRun: boolean;
}

export type VoteDecision =
  | { grant: true }
  | { grant: false; outranked: boolean; reason: string };

/**
 * Decide a vote request. Stale epochs were already answered by the caller.
 * A voter with a live leader refuses (so an isolated node cannot disrupt a
 * working cluster), except for a settled takeover by an elector that outranks
 * that leader. Without a leader, a voter that outranks the candidate refuses
 * and runs itself: that is the Bully rule.
 */
export function decideVote(
  v: VoterView,
  candidate: PeerInfo,
  req: { epoch: number; preVote: boolean; takeover: boolean },
): VoteDecision {
  if (!req.preVote && req.epoch === v.epoch && v.votedFor !== null && v.votedFor !== candidate.name) {
    return { grant: false, outranked: false, reason: `already voted for ${v.votedFor} in epoch ${v.epoch}` };
  }
  if (v.liveLeader !== null && v.liveLeader.name !== candidate.name) {
    if (!(req.takeover && outranks(candidate, v.liveLeader))) {
      return { grant: false, outranked: false, reason: `following live leader ${v.liveLeader.name}` };
    }
    return { grant: true };
  }
  if (v.canRun && outranks(v.self, candidate)) {
    return { grant: false, outranked: true, reason: `${v.self.name} outranks ${candidate.name}` };
  }
  return { grant: true };
}

export interface GrantedVote {
  from: NodeName;
  /** Leader clock when the vote arrived. */
  recvMs: number;
  lastAckAgoMs: number;
  state: ClusterState | null;
  /** The voter's clock reading and incarnation, to echo as a lease grant. */
  nowMs: number;
  incarnation: number;
}

/**
 * No lease granted by any earlier leader can have been granted after this
 * instant (leader clock). A leader renews only while a quorum acknowledged
 * heartbeats it sent within `quorumWindowMs`; every voter stopped
 * acknowledging older leaders when it voted, and one of them is in that
 * quorum. So every old grant is younger than some voter's last
 * acknowledgement plus the window; the maximum over voters bounds them all.
 */
export function oldGrantsBoundMs(votes: GrantedVote[], quorumWindowMs: number): number {
  let bound = -Infinity;
  for (const v of votes) bound = Math.max(bound, v.recvMs - v.lastAckAgoMs + quorumWindowMs);
  return bound;
}

/** The newest replicated state among the votes and our own. */
export function newestState(own: ClusterState, votes: GrantedVote[]): ClusterState {
  let best = own;
  for (const v of votes) if (v.state && compareVersion(v.state, best) > 0) best = v.state;
  return best;
}
