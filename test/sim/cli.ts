// npm run sim -- --seeds N [--from S] [--seconds T] [--jobs J] [--shape CLASS] [--verbose]
// KOI_SIM_SEED=S replays one seed and prints the tail of its trace.
// Seeds are split across worker threads; each seed's run is independent of
// the others, so the split does not change any result.
import { availableParallelism } from 'node:os';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { runSeed, SHAPE_CLASSES, type ShapeClass } from './run-seed';
import { report } from './report';

interface Job {
  from: number;
  count: number;
  durationMs: number;
  verbose: boolean;
  shape: ShapeClass | undefined;
}

type Counts = Record<string, number>;

interface JobResult {
  violations: number;
  /** Excused overlaps by cause. */
  excused: Counts;
  /** Seeds per shape class (with and without fence), violations per shape. */
  shapes: Counts;
  badShapes: Counts;
  /** Faults applied, by class, and seeds that saw each class. */
  faults: Counts;
  faultSeeds: Counts;
  output: string[];
}

function add(c: Counts, k: string, n = 1): void {
  c[k] = (c[k] ?? 0) + n;
}

function runJob(job: Job): JobResult {
  const res: JobResult = { violations: 0, excused: {}, shapes: {}, badShapes: {}, faults: {}, faultSeeds: {}, output: [] };
  for (let seed = job.from; seed < job.from + job.count; seed++) {
    const r = runSeed(seed, { durationMs: job.durationMs, ...(job.shape ? { shape: job.shape } : {}) });
    for (const [k, n] of Object.entries(r.excused)) add(res.excused, k, n);
    const shape = `${r.shapeClass}${r.fence ? '+fence' : ''}`;
    add(res.shapes, shape);
    if (r.violations.length > 0) add(res.badShapes, shape);
    for (const [k, n] of Object.entries(r.faultClasses)) {
      add(res.faults, k, n);
      add(res.faultSeeds, k);
    }
    res.violations += r.violations.length;
    if (r.stateLostStuck) add(res.excused, 'stuck: quorum lost its state');
    if (r.violations.length > 0 || job.verbose) report(r, (s) => res.output.push(s));
  }
  return res;
}

function merge(into: Counts, from: Counts): void {
  for (const [k, n] of Object.entries(from)) add(into, k, n);
}

/** One line per key, so a class that no seed exercised shows up as 0. */
function table(title: string, keys: string[], c: Counts, extra?: Counts, extraName?: string): string {
  const rows = keys.map((k) => `  ${k.padEnd(22)} ${String(c[k] ?? 0).padStart(7)}${extra ? `   ${extraName} ${extra[k] ?? 0}` : ''}`);
  return `${title}\n${rows.join('\n')}\n`;
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
  const si = process.argv.indexOf('--shape');
  const shape = si < 0 ? undefined : (process.argv[si + 1] as ShapeClass);
  if (shape !== undefined && !SHAPE_CLASSES.includes(shape)) {
    process.stderr.write(`sim: --shape must be one of ${SHAPE_CLASSES.join(', ')}\n`);
    process.exit(2);
  }
  const jobs = Math.max(1, Math.min(arg('jobs', availableParallelism()), seeds));
  const started = Date.now();
  const per = Math.ceil(seeds / jobs);
  const parts: Promise<JobResult>[] = [];
  for (let j = 0; j < jobs; j++) {
    const job: Job = { from: from + j * per, count: Math.max(0, Math.min(per, seeds - j * per)), durationMs, verbose, shape };
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
  const total: Omit<JobResult, 'violations' | 'output'> = { excused: {}, shapes: {}, badShapes: {}, faults: {}, faultSeeds: {} };
  for (const r of await Promise.all(parts)) {
    for (const line of r.output) process.stdout.write(`${line}\n`);
    violations += r.violations;
    merge(total.excused, r.excused);
    merge(total.shapes, r.shapes);
    merge(total.badShapes, r.badShapes);
    merge(total.faults, r.faults);
    merge(total.faultSeeds, r.faultSeeds);
  }
  const secs = ((Date.now() - started) / 1000).toFixed(1);
  const shapeKeys = SHAPE_CLASSES.flatMap((c) => [c, `${c}+fence`]);
  process.stdout.write(table('seeds per shape:', shapeKeys, total.shapes, total.badShapes, 'with violations'));
  const faultKeys = Object.keys(total.faults).filter((k) => k !== 'none').sort();
  process.stdout.write(table('faults per class:', faultKeys, total.faults, total.faultSeeds, 'seeds'));
  process.stdout.write(table('overlaps excused, by cause:', ['frozen-no-fence', 'frozen-fence-failed', 'stop-failed'], total.excused));
  process.stdout.write(`seeds left without a leader because electors that lost their state leave no quorum (operator's turn): ${total.excused['stuck: quorum lost its state'] ?? 0}\n`);
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
