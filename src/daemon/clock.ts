// The monotonic clock of the daemon: CLOCK_MONOTONIC through hrtime, which on
// Linux counts from boot, so it keeps going up across koinode restarts.
export function monotonicMs(): number {
  return Number(process.hrtime.bigint() / 1000n) / 1000;
}
