// npm run sim -- --seeds N [--from S] [--seconds T] [--verbose]
// KOI_SIM_SEED=S replays one seed and prints its whole trace tail.
import { runSeed } from './run-seed';
import { report } from './report';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const v = Number(process.argv[i + 1]);
  if (!Number.isInteger(v) || v < 0) {
    process.stderr.write(`sim: --${name} needs a whole number, got ${process.argv[i + 1]}\n`);
    process.exit(2);
  }
  return v;
}

function main(): void {
  const single = process.env.KOI_SIM_SEED;
  const from = single !== undefined ? Number(single) : arg('from', 1);
  const seeds = single !== undefined ? 1 : arg('seeds', 200);
  const durationMs = arg('seconds', 30) * 1000;
  const verbose = process.argv.includes('--verbose');
  const started = Date.now();
  let violations = 0;
  let exemptions = 0;
  for (let seed = from; seed < from + seeds; seed++) {
    const r = runSeed(seed, { durationMs });
    exemptions += r.frozenExemptions;
    if (r.violations.length > 0 || verbose || single !== undefined) {
      report(r, (s) => process.stdout.write(`${s}\n`));
    }
    violations += r.violations.length;
  }
  const secs = ((Date.now() - started) / 1000).toFixed(1);
  process.stdout.write(`frozen-holder overlaps excused (no fence configured): ${exemptions}\n`);
  process.stdout.write(`seeds: ${seeds}, violations: ${violations} (${secs}s)\n`);
  process.exit(violations > 0 ? 1 : 0);
}

main();
