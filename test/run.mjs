// Runs every compiled test file with Node's own runner. Node 20 does not
// expand globs and passes silently on an empty list, so we list the files
// ourselves and refuse to run none.
//
// Skips are listed at the end, just before node's last summary, with their
// reasons. With KOI_TEST_NO_SKIP=1 (CI) a skip fails the run, unless its
// reason starts with "ci-cannot:" — the test's own statement that a CI
// machine cannot do this (the README names every such test).
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

const root = new URL('../dist/test/', import.meta.url).pathname;
const repo = new URL('../', import.meta.url).pathname;
const skipReporter = new URL('./skip-reporter.mjs', import.meta.url).href;
const only = process.argv.slice(2); // optional folder names: unit sim integration chaos
const noSkip = process.env.KOI_TEST_NO_SKIP === '1';
const ALLOWED_PREFIX = 'ci-cannot:';

function walk(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out;
}

// The block node prints last (TAP "# pass 3", spec "ℹ pass 3").
const SUMMARY = /^(#|ℹ) (tests|suites|pass|fail|cancelled|skipped|todo|duration_ms) /;

/**
 * One `node --test` run. Its stdout goes through us line by line; the
 * trailing summary block is held back and returned, so the caller decides
 * what is printed before it. Skips are written by our reporter to a file.
 */
function runGroup(files, concurrency, skipFile) {
  const reporter = process.stdout.isTTY ? 'spec' : 'tap'; // node's own default
  const args = ['--test', `--test-concurrency=${concurrency}`,
    `--test-reporter=${reporter}`, '--test-reporter-destination=stdout',
    `--test-reporter=${skipReporter}`, `--test-reporter-destination=${skipFile}`, ...files];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  let held = [];
  const lines = createInterface({ input: child.stdout });
  lines.on('line', (line) => {
    if (SUMMARY.test(line)) {
      held.push(line);
      return;
    }
    for (const h of held) process.stdout.write(`${h}\n`);
    held = [];
    process.stdout.write(`${line}\n`);
  });
  const read = new Promise((resolve) => lines.on('close', resolve));
  const exited = new Promise((resolve) => child.on('close', (code, signal) => resolve(code ?? (signal !== null ? 1 : 0))));
  return Promise.all([exited, read]).then(([status]) => ({ status, summary: held }));
}

function readSkips(file) {
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  return text.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l));
}

let files = walk(root);
if (only.length > 0) files = files.filter((f) => only.some((o) => f.startsWith(join(root, o) + '/')));
if (files.length === 0) {
  console.error('test/run.mjs: no test files found under dist/test — did the build run?');
  process.exit(1);
}
// The fault-injection runs are timing-sensitive: they get the machine to
// themselves, after the rest. So does the fuzz test, which keeps a cluster
// busy refusing messages and would slow the timing of the others.
const alone = (f) => f.includes('/chaos/') || f.endsWith('/fuzz.test.js');
const chaos = files.filter(alone);
const rest = files.filter((f) => !alone(f));
const groups = [[rest, 2], [chaos, 1]].filter(([g]) => g.length > 0);
const work = mkdtempSync(join(tmpdir(), 'koi-run-'));
let status = 0;
let skips = [];
let counted = 0; // skips according to node's own summaries
let last = [];
for (const [i, [group, concurrency]] of groups.entries()) {
  const skipFile = join(work, `skips-${i}.jsonl`);
  const r = await runGroup(group, concurrency, skipFile);
  if (r.status !== 0) status = r.status;
  skips.push(...readSkips(skipFile));
  for (const l of r.summary) counted += Number(/^(?:#|ℹ) skipped (\d+)/.exec(l)?.[1] ?? 0);
  if (i < groups.length - 1) for (const l of r.summary) process.stdout.write(`${l}\n`);
  else last = r.summary;
}
rmSync(work, { recursive: true, force: true });

if (skips.length > 0 || counted > 0) {
  const out = [`# koi: ${Math.max(skips.length, counted)} test(s) skipped:`];
  for (const s of skips) {
    const where = s.file !== '' ? `${relative(repo, s.file)}: ` : '';
    out.push(`#   ${where}${s.name} — ${s.reason !== '' ? s.reason : '(no reason given)'}`);
  }
  if (counted > skips.length) out.push(`#   ... and ${counted - skips.length} more node counted without a reason reaching us`);
  const refused = skips.filter((s) => !s.reason.startsWith(ALLOWED_PREFIX)).length + Math.max(0, counted - skips.length);
  if (noSkip && refused > 0) {
    out.push(`# koi: KOI_TEST_NO_SKIP=1 and ${refused} skip(s) are not marked "${ALLOWED_PREFIX}": failing the run`);
    if (status === 0) status = 1;
  }
  process.stdout.write(`${out.join('\n')}\n`);
}
for (const l of last) process.stdout.write(`${l}\n`);
process.exit(status);
