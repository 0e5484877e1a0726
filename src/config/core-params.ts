// The core's parameters, taken from the configuration.
import type { CoreParams } from '../core/types';
import type { KoiConfig } from './config';

/**
 * `safetyMarginMs` is what the leader adds to every lease bound; its parts
 * belong to the daemon's loop (SAFETY_MARGIN_MS in src/daemon/daemon.ts).
 */
export function coreParams(c: KoiConfig, safetyMarginMs: number): CoreParams {
  return {
    heartbeatIntervalMs: c.time.heartbeatIntervalMs,
    leaderTimeoutMs: c.time.leaderTimeoutMs,
    masterLeaseMs: c.time.masterLeaseMs,
    statusIntervalMs: c.time.statusIntervalMs,
    failurePromotionTimeoutMs: c.time.failurePromotionTimeoutMs,
    startTimeoutMs: c.service.startTimeoutMs,
    stopTimeoutMs: c.service.stopTimeoutMs,
    statusTimeoutMs: c.service.statusTimeoutMs,
    promoteTimeoutMs: c.service.promoteTimeoutMs,
    demoteTimeoutMs: c.service.demoteTimeoutMs,
    failedTimeoutMs: c.service.failedTimeoutMs,
    autoRecover: c.service.autoRecover,
    autoRecoverWaitMs: c.service.autoRecoverWaitMs,
    failcountResetMs: c.service.failcountResetMs,
    promoteMaxLag: c.service.promoteMaxLag,
    quorum: c.cluster.quorum,
    killGraceMs: 2000,
    takeoverSettleMs: 4 * c.time.leaderTimeoutMs,
    // The runner notices a lease end or a kill deadline at its next tick.
    safetyMarginMs,
    fenceConfigured: c.cluster.fence !== null,
  };
}
