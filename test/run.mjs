// Runs every compiled test file with Node's own runner. Node 20 does not
// expand globs and passes silently on an empty list, so we list the files
// ourselves and refuse to run none.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

const root = new URL('../dist/test/', import.meta.url).pathname;
const only = process.argv.slice(2); // optional folder names: unit sim integration chaos

function walk(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out;
}

let files = walk(root);
if (only.length > 0) files = files.filter((f) => only.some((o) => f.startsWith(join(root, o) + '/')));
if (files.length === 0) {
  console.error('test/run.mjs: no test files found under dist/test — did the build run?');
  process.exit(1);
}
// The fault-injection runs are timing-sensitive: they get the machine to themselves, after the rest.
const chaos = files.filter((f) => f.includes('/chaos/'));
const rest = files.filter((f) => !f.includes('/chaos/'));
let status = 0;
for (const [group, concurrency] of [[rest, 2], [chaos, 1]]) {
  if (group.length === 0) continue;
  const r = spawnSync(process.execPath, ['--test', `--test-concurrency=${concurrency}`, ...group], { stdio: 'inherit' });
  if (r.status !== 0) status = r.status ?? 1;
}
process.exit(status);
