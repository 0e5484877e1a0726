// npm run sim -- --seeds N [--from S] [--seconds T] [--jobs J] [--shape CLASS] [--liveness CLASS|all|none] [--rescans|--no-rescans] [--verbose]
// Without --liveness, a share of the seeds (LIVENESS_SHARE) draws a liveness class;
// without --rescans, a share (RESCAN_SHARE) changes services folders during the storm.
// KOI_SIM_SEED=S replays one seed and prints the tail of its trace.
// Seeds are split across worker threads; each seed's run is independent of
// the others, so the split does not change any result.
import { availableParallelism } from 'node:os';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { LIVENESS_CLASSES, runSeed, SHAPE_CLASSES, type LivenessClass, type SeedOptions, type ShapeClass } from './run-seed';
import { report } from './report';

interface Job {
  from: number;
  count: number;
  durationMs: number;
  verbose: boolean;
  shape: ShapeClass | undefined;
  liveness: SeedOptions['liveness'];
  /** Every seed changes services folders (true), none does (false), or a share of them. */
  rescans: boolean | undefined;
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
  /** Per liveness class (and slow-network bucket): 'CLASS seeds', 'CLASS stuck', ... */
  live: Counts;
  /** Flaps in seeds without a liveness class. */
  plainFlapSeeds: number;
  output: string[];
}

function add(c: Counts, k: string, n = 1): void {
  c[k] = (c[k] ?? 0) + n;
}

function runJob(job: Job): JobResult {
  const res: JobResult = { violations: 0, excused: {}, shapes: {}, badShapes: {}, faults: {}, faultSeeds: {}, live: {}, plainFlapSeeds: 0, output: [] };
  for (let seed = job.from; seed < job.from + job.count; seed++) {
    const r = runSeed(seed, { durationMs: job.durationMs, ...(job.shape ? { shape: job.shape } : {}), ...(job.liveness ? { liveness: job.liveness } : {}), ...(job.rescans !== undefined ? { rescans: job.rescans } : {}) });
    const l = r.liveness;
    if (l === null) {
      if (r.flaps > 0) res.plainFlapSeeds++;
    } else {
      for (const key of l.slowBucket === null ? [l.cls] : [l.cls, `slow ${l.slowBucket}`]) {
        add(res.live, `${key}|seeds`);
        if (l.stuck > 0) add(res.live, `${key}|stuck`);
        if (l.stuckCause !== null && l.stuck > 0 && l.slowBucket === null) add(res.live, `stuck because|${l.stuckCause}`);
        if (l.flaps > 0) add(res.live, `${key}|flapped`);
        add(res.live, `${key}|flaps`, l.flaps);
        if (l.masterImpossible) add(res.live, `${key}|impossible`);
        if (l.tooSlow) add(res.live, `${key}|too slow`);
        if (l.stateLostStuck) add(res.live, `${key}|state lost`);
        if (l.safetyWait) add(res.live, `${key}|safety wait`);
        add(res.live, `${key}|confirm-down`, l.confirmDowns);
        add(res.live, `${key}|elections`, l.elections);
        add(res.live, `${key}|judged ms`, l.judgedMs);
        add(res.live, `${key}|no master ms`, l.noMasterMs);
      }
    }
    for (const [k, n] of Object.entries(r.excused)) add(res.excused, r.watchdogMs > 0 ? `${k} (watchdogs)` : k, n);
    if (r.watchdogMs > 0) {
      add(res.excused, 'watchdog seeds');
      add(res.excused, 'watchdog resets', r.watchdogResets);
    }
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

/**
 * Liveness lines: seeds per class, seeds stuck (no master past the bound
 * while one was possible), seeds that flapped (and the flaps), seeds whose
 * kept faults leave no master possible, koi confirm-down the operator sent,
 * and for the slow network, per delay and timings: how many were too slow
 * for the timings (measured, not judged), elections per minute and the share
 * of time without a master.
 */
function livenessTable(c: Counts, plainFlapSeeds: number): string {
  const get = (k: string, f: string) => c[`${k}|${f}`] ?? 0;
  const perMin = (k: string) => (get(k, 'judged ms') > 0 ? ((get(k, 'elections') * 60_000) / get(k, 'judged ms')).toFixed(1) : '-');
  const noMaster = (k: string) => (get(k, 'judged ms') > 0 ? `${Math.round((100 * get(k, 'no master ms')) / get(k, 'judged ms'))}%` : '-');
  const lines = ['liveness classes (faults kept after the final heal; slow-network: the whole run):'];
  for (const k of LIVENESS_CLASSES as readonly LivenessClass[]) {
    const extra = k === 'slow-network' ? `   too slow for timings ${get(k, 'too slow')}   elections/min ${perMin(k)}` : `   master impossible ${get(k, 'impossible')}   confirm-down ${get(k, 'confirm-down')}   quorum lost its state ${get(k, 'state lost')}   safety wait ${get(k, 'safety wait')}`;
    lines.push(`  ${k.padEnd(22)} ${String(get(k, 'seeds')).padStart(7)}   stuck ${get(k, 'stuck')}   flapped ${get(k, 'flapped')} (${get(k, 'flaps')} flaps)${extra}`);
  }
  const causes = Object.keys(c).filter((k) => k.startsWith('stuck because|'));
  if (causes.length > 0) lines.push('stuck seeds of the kept-fault classes, by what the leader waited for:');
  for (const k of causes.sort()) lines.push(`  ${k.slice('stuck because|'.length).padEnd(60)} ${c[k]}`);
  const buckets = Object.keys(c)
    .filter((k) => k.startsWith('slow ') && k.endsWith('|seeds'))
    .map((k) => k.slice(0, -'|seeds'.length))
    .sort((a, b) => parseInt(a.slice(5), 10) - parseInt(b.slice(5), 10) || a.localeCompare(b));
  if (buckets.length > 0) lines.push('slow network, by one-way delay and timings (heartbeat/leader_timeout/lease):');
  for (const k of buckets) {
    const judged = get(k, 'too slow') === get(k, 'seeds') ? 'too slow for timings' : get(k, 'too slow') === 0 ? 'judged' : `${get(k, 'too slow')} too slow`;
    lines.push(`  ${k.slice(5).padEnd(30)} ${String(get(k, 'seeds')).padStart(5)}   ${judged}   stuck ${get(k, 'stuck')}   flapped ${get(k, 'flapped')}   elections/min ${perMin(k)}   without master ${noMaster(k)}`);
  }
  lines.push(`seeds without a liveness class that flapped: ${plainFlapSeeds}`);
  return `${lines.join('\n')}\n`;
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
  const li = process.argv.indexOf('--liveness');
  const liveness = li < 0 ? undefined : (process.argv[li + 1] as SeedOptions['liveness']);
  const liveChoices = [...LIVENESS_CLASSES, 'all', 'none'];
  if (liveness !== undefined && !liveChoices.includes(liveness as string)) {
    process.stderr.write(`sim: --liveness must be one of ${liveChoices.join(', ')}\n`);
    process.exit(2);
  }
  const jobs = Math.max(1, Math.min(arg('jobs', availableParallelism()), seeds));
  const started = Date.now();
  const per = Math.ceil(seeds / jobs);
  const parts: Promise<JobResult>[] = [];
  for (let j = 0; j < jobs; j++) {
    const job: Job = { from: from + j * per, count: Math.max(0, Math.min(per, seeds - j * per)), durationMs, verbose, shape, liveness, rescans: process.argv.includes('--rescans') ? true : process.argv.includes('--no-rescans') ? false : undefined };
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
  const total: Omit<JobResult, 'violations' | 'output'> = { excused: {}, shapes: {}, badShapes: {}, faults: {}, faultSeeds: {}, live: {}, plainFlapSeeds: 0 };
  for (const r of await Promise.all(parts)) {
    for (const line of r.output) process.stdout.write(`${line}\n`);
    violations += r.violations;
    merge(total.excused, r.excused);
    merge(total.shapes, r.shapes);
    merge(total.badShapes, r.badShapes);
    merge(total.faults, r.faults);
    merge(total.faultSeeds, r.faultSeeds);
    merge(total.live, r.live);
    total.plainFlapSeeds += r.plainFlapSeeds;
  }
  const secs = ((Date.now() - started) / 1000).toFixed(1);
  const shapeKeys = SHAPE_CLASSES.flatMap((c) => [c, `${c}+fence`]);
  process.stdout.write(table('seeds per shape:', shapeKeys, total.shapes, total.badShapes, 'with violations'));
  const faultKeys = Object.keys(total.faults).filter((k) => k !== 'none').sort();
  process.stdout.write(table('faults per class:', faultKeys, total.faults, total.faultSeeds, 'seeds'));
  process.stdout.write(table('overlaps excused, by cause:', ['frozen-no-fence', 'frozen-fence-failed', 'stop-failed'], total.excused));
  const ex = (k: string) => total.excused[k] ?? 0;
  process.stdout.write(
    `seeds with a watchdog on every runner: ${ex('watchdog seeds')}, machines reset by one: ${ex('watchdog resets')}, ` +
      `overlaps excused in them: ${ex('frozen-no-fence (watchdogs)') + ex('frozen-fence-failed (watchdogs)')} frozen, ${ex('stop-failed (watchdogs)')} stop-failed\n`,
  );
  process.stdout.write(`seeds left without a leader because electors that lost their state leave no quorum (operator's turn): ${total.excused['stuck: quorum lost its state'] ?? 0}\n`);
  process.stdout.write(livenessTable(total.live, total.plainFlapSeeds));
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
