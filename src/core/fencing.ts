// Rules for the leader's fence attempts against a runner it cannot hear. A
// failure concerns one attempt: it lets the leader wait out the leases granted
// before that attempt began, never a later one, and the next attempt waits a
// growing pause.
import type { CoreParams } from './types';

/** The part of the leader's view of a node that fencing reads. */
export interface FenceView {
  /** Sequence of our last grant to the node (-1: none in this leadership). */
  lastGrantSeq: number;
  /** Heartbeat sequence when the last failed attempt began (-Infinity: none). */
  fenceFailedSeq: number;
}

/** A fence attempt that began after our last grant failed: timing may decide. */
export function fenceFailedSinceGrant(v: FenceView): boolean {
  return v.fenceFailedSeq >= v.lastGrantSeq;
}

const FENCE_RETRY_MAX_MS = 30_000;

/** Pause before the next fence attempt after `failures` failed ones in a row. */
export function fenceRetryMs(params: CoreParams, failures: number): number {
  return Math.min(params.leaderTimeoutMs * 2 ** Math.max(0, failures - 1), FENCE_RETRY_MAX_MS);
}
