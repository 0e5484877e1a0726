// npm run chaos -- [--seconds N] [--seed S] [--nodes 3|5] [--no-fence] [--watchdog] [--mixed-timings] [--quiet-tail SECONDS] [--keep] [--quiet]
import { formatResult, runChaos } from './run';

function arg(name: string, fallback: number): number;
function arg(name: string, fallback: undefined): number | undefined;
function arg(name: string, fallback: number | undefined): number | undefined {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const v = Number(process.argv[i + 1]);
  if (!Number.isInteger(v) || v < 0) {
    process.stderr.write(`chaos: --${name} needs a whole number\n`);
    process.exit(2);
  }
  return v;
}

async function main(): Promise<void> {
  const nodes = arg('nodes', 3);
  if (nodes !== 3 && nodes !== 5) {
    process.stderr.write('chaos: --nodes is 3 or 5\n');
    process.exit(2);
  }
  const quiet = process.argv.includes('--quiet');
  const watchdog = process.argv.includes('--watchdog');
  if (watchdog && process.argv.includes('--mixed-timings')) {
    // --watchdog sets its own timings (master_lease 1.5 s, demote_timeout 2.5 s) on every node.
    process.stderr.write('chaos: --watchdog sets the timings of every node: drop --mixed-timings\n');
    process.exit(2);
  }
  const r = await runChaos({
    seconds: arg('seconds', 60),
    seed: arg('seed', 1),
    nodes,
    fence: !process.argv.includes('--no-fence'),
    watchdog,
    mixedTimings: process.argv.includes('--mixed-timings'),
    quietTailSeconds: arg('quiet-tail', undefined),
    keep: process.argv.includes('--keep'),
    log: quiet ? undefined : (l) => process.stdout.write(`${new Date().toISOString().slice(11, 23)} ${l}\n`),
  });
  process.stdout.write(`${formatResult(r)}\n`);
  if (r.violations.length === 0 && process.argv.includes('--keep')) process.stdout.write(`journal and logs kept in ${r.root}\n`);
  process.exit(r.violations.length > 0 ? 1 : 0);
}

main().catch((e: unknown) => {
  process.stderr.write(`chaos: ${(e as Error).stack ?? String(e)}\n`);
  process.exit(2);
});
