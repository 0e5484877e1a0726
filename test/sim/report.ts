// How a failing seed is shown: its violations, the tail of its trace
// (KOI_SIM_TAIL lines, default 60), how to replay it.
import type { SeedResult } from './run-seed';

export function report(r: SeedResult, out: (s: string) => void): void {
  out(`seed ${r.seed}: ${r.violations.length} violation(s) — ${r.shape}${r.liveness !== null ? ` | liveness ${r.liveness.cls}: ${r.liveness.detail}` : ''}`);
  for (const v of r.violations) out(`  ${v.atMs.toFixed(1)}ms ${v.kind}: ${v.text}`);
  out('  trace tail:');
  // KOI_SIM_TAIL=N shows more of it when the cause lies further back.
  for (const line of r.trace.slice(-Number(process.env.KOI_SIM_TAIL ?? 60))) out(`    ${line}`);
  out(`  replay with: KOI_SIM_SEED=${r.seed} npm run sim${r.replayArgs !== '' ? ` -- ${r.replayArgs}` : ''}`);
}
