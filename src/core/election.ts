// Bully election with quorum: the rules a voter applies, and what a new
// leader learns from its votes. Node state lives in node.ts; these functions
// only decide.
import type { ClusterState, NodeName, PeerInfo } from './types';
import { compareVersion, outranks } from './state';

/**
 * A node that ran before and lost its saved state (or was told to rejoin)
 * has forgotten which epochs it voted in and which committed states it held.
 * Its vote could make a second leader in an epoch, or a quorum that misses a
 * committed decision, so it grants none until it has followed a leader and
 * taken its state. (A first start holds nothing and votes at once.)
 */
export function rejoiningMayVote(): boolean {
  return false;
}

export interface VoterView {
  self: PeerInfo;
  epoch: number;
  votedFor: NodeName | null;
  /** The leader this voter follows, when it heard from it within leader_timeout. */
  liveLeader: PeerInfo | null;
  /** This voter may run itself (elector, not backing off after a failed campaign). */
  canRun: boolean;
  /** The state this voter holds names no master. */
  masterless: boolean;
}

export type VoteDecision =
  | { grant: true }
  | { grant: false; outranked: boolean; reason: string };

/**
 * Decide a vote request. Stale epochs were already answered by the caller.
 * A voter with a live leader refuses (so an isolated node cannot disrupt a
 * working cluster), except for a settled takeover by an elector that outranks
 * that leader, or a rescue of a leader left without a master. Without a
 * leader, a voter that outranks the candidate refuses and runs itself: that
 * is the Bully rule (not against a takeover or rescue, see below).
 */
export function decideVote(
  v: VoterView,
  candidate: PeerInfo,
  req: { epoch: number; preVote: boolean; takeover: boolean; rescue?: boolean },
): VoteDecision {
  if (!req.preVote && req.epoch === v.epoch && v.votedFor !== null && v.votedFor !== candidate.name) {
    return { grant: false, outranked: false, reason: `already voted for ${v.votedFor} in epoch ${v.epoch}` };
  }
  if (v.liveLeader !== null && v.liveLeader.name !== candidate.name) {
    // A rescue replaces a leader that has no master and cannot reach what the
    // candidate reaches (the candidate checked that before asking).
    const rescue = req.takeover && req.rescue === true && v.masterless;
    if (!(req.takeover && outranks(candidate, v.liveLeader)) && !rescue) {
      return { grant: false, outranked: false, reason: `following live leader ${v.liveLeader.name}` };
    }
    return { grant: true };
  }
  // Not against a takeover or rescue: its candidate follows a live leader
  // that this voter does not hear, whose followers refuse this voter's own
  // campaigns. The refusal would only make the candidate yield, and the
  // next, lower-ranked taker win instead, to be taken over in turn.
  if (v.canRun && !req.takeover && outranks(v.self, candidate)) {
    return { grant: false, outranked: true, reason: `${v.self.name} outranks ${candidate.name}` };
  }
  return { grant: true };
}

export interface GrantedVote {
  from: NodeName;
  /** Leader clock when the vote arrived. */
  recvMs: number;
  lastAckAgoMs: number;
  /** See the vote message; absent from older peers. */
  grantsEndInMs?: number;
  state: ClusterState | null;
  /** The voter's clock reading and incarnation, to echo as a lease grant. */
  nowMs: number;
  incarnation: number;
}

/**
 * No lease granted by any earlier leader can have been granted after this
 * instant (leader clock). A leader grants only while a quorum acknowledged
 * heartbeats within the window each heartbeat announced; every voter stopped
 * acknowledging older leaders when it voted, and one of them is in that
 * quorum. So every old grant is older than some voter's last acknowledgement
 * plus its window (what the voter reports as `grantsEndInMs`, counted from
 * when its vote arrived: the delivery delay only adds margin); the maximum
 * over voters bounds them all. A voter of an older version reports only its
 * last acknowledgement: `defaultWindowMs` stands for the window.
 */
export function oldGrantsBoundMs(votes: GrantedVote[], defaultWindowMs: number): number {
  let bound = -Infinity;
  for (const v of votes) {
    const end = v.grantsEndInMs !== undefined ? v.recvMs + v.grantsEndInMs : v.recvMs - v.lastAckAgoMs + defaultWindowMs;
    bound = Math.max(bound, end);
  }
  return bound;
}

/** The newest replicated state among the votes and our own. */
export function newestState(own: ClusterState, votes: GrantedVote[]): ClusterState {
  let best = own;
  for (const v of votes) if (v.state && compareVersion(v.state, best) > 0) best = v.state;
  return best;
}
