// npm run sim -- --seeds N [--from S] [--seconds T] [--jobs J] [--verbose]
// KOI_SIM_SEED=S replays one seed and prints the tail of its trace.
// Seeds are split across worker threads; each seed's run is independent of
// the others, so the split does not change any result.
import { availableParallelism } from 'node:os';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { runSeed } from './run-seed';
import { report } from './report';

interface Job {
  from: number;
  count: number;
  durationMs: number;
  verbose: boolean;
}

interface JobResult {
  violations: number;
  exemptions: number;
  output: string[];
}

function runJob(job: Job): JobResult {
  const res: JobResult = { violations: 0, exemptions: 0, output: [] };
  for (let seed = job.from; seed < job.from + job.count; seed++) {
    const r = runSeed(seed, { durationMs: job.durationMs });
    res.exemptions += r.frozenExemptions;
    res.violations += r.violations.length;
    if (r.violations.length > 0 || job.verbose) report(r, (s) => res.output.push(s));
  }
  return res;
}

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

async function main(): Promise<void> {
  const single = process.env.KOI_SIM_SEED;
  const from = single !== undefined ? Number(single) : arg('from', 1);
  const seeds = single !== undefined ? 1 : arg('seeds', 200);
  const durationMs = arg('seconds', 30) * 1000;
  const verbose = process.argv.includes('--verbose') || single !== undefined;
  const jobs = Math.max(1, Math.min(arg('jobs', availableParallelism()), seeds));
  const started = Date.now();
  const per = Math.ceil(seeds / jobs);
  const parts: Promise<JobResult>[] = [];
  for (let j = 0; j < jobs; j++) {
    const job: Job = { from: from + j * per, count: Math.max(0, Math.min(per, seeds - j * per)), durationMs, verbose };
    if (job.count === 0) continue;
    if (jobs === 1) parts.push(Promise.resolve(runJob(job)));
    else {
      parts.push(
        new Promise((resolve, reject) => {
          const w = new Worker(__filename, { workerData: job });
          w.once('message', resolve);
          w.once('error', reject);
        }),
      );
    }
  }
  let violations = 0;
  let exemptions = 0;
  for (const r of await Promise.all(parts)) {
    for (const line of r.output) process.stdout.write(`${line}\n`);
    violations += r.violations;
    exemptions += r.exemptions;
  }
  const secs = ((Date.now() - started) / 1000).toFixed(1);
  process.stdout.write(`overlaps excused (a frozen koinode that no fence could stop): ${exemptions}\n`);
  process.stdout.write(`seeds: ${seeds}, violations: ${violations} (${secs}s, ${jobs} jobs)\n`);
  process.exit(violations > 0 ? 1 : 0);
}

if (isMainThread) {
  main().catch((e: unknown) => {
    process.stderr.write(`sim: ${(e as Error).stack ?? String(e)}\n`);
    process.exit(2);
  });
} else {
  parentPort!.postMessage(runJob(workerData as Job));
}
