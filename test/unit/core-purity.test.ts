// src/core must stay a pure state machine: no imports from outside it, no
// ambient clock, timer, process, randomness or I/O. This test reads the
// sources, so it fails the moment someone reaches out.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, posix } from 'node:path';

const coreDir = join(__dirname, '..', '..', '..', 'src', 'core');

/** Drop comments and string contents so prose cannot trip the check. */
function code(text: string): string {
  return text
    .replace(/\/\*[\s\S]*?\*\//g, '')
    .replace(/\/\/.*$/gm, '')
    .replace(/`(?:\\.|[^`\\])*`/g, '``')
    .replace(/'(?:\\.|[^'\\])*'/g, "''");
}

const FORBIDDEN: [RegExp, string][] = [
  [/\bDate\b/, 'Date (time enters only as nowMs)'],
  [/\b(setTimeout|setInterval|setImmediate|queueMicrotask)\b/, 'timers'],
  [/\bMath\.random\b/, 'Math.random (randomness is injected)'],
  [/\bprocess\b/, 'process'],
  [/\bperformance\b/, 'performance clock'],
  [/\brequire\s*\(/, 'require()'],
  [/\bimport\s*\(/, 'dynamic import'],
  [/\bconsole\b/, 'console (the core emits events; the edge logs)'],
  [/\bglobalThis\b/, 'globalThis'],
];

/** Where an import may point: a relative path that stays inside src/core. */
function insideCore(spec: string): boolean {
  if (!spec.startsWith('./') && !spec.startsWith('../')) return false;
  return posix.normalize(posix.join('src/core', spec)).startsWith('src/core/');
}

/** Everything wrong with one core source file, one line per problem. */
function problems(file: string, raw: string): string[] {
  const out: string[] = [];
  const specs = [
    ...raw.matchAll(/^\s*(?:import|export)\b[^;]*?\bfrom\s*['"]([^'"]+)['"]/gm), // import ... from, export ... from
    ...raw.matchAll(/^\s*import\s*['"]([^'"]+)['"]/gm), // import 'x' (for its side effects)
  ].map((m) => m[1]!);
  for (const spec of specs) if (!insideCore(spec)) out.push(`${file}: imports ${spec}`);
  const body = code(raw);
  for (const [re, what] of FORBIDDEN) if (re.test(body)) out.push(`${file}: uses ${what}`);
  return out;
}

test('src/core imports only from src/core and uses no ambient clock, timer, process or randomness', () => {
  const files = readdirSync(coreDir).filter((f) => f.endsWith('.ts'));
  assert.ok(files.length >= 5, `found core files: ${files.join(', ')}`);
  assert.deepEqual(files.flatMap((f) => problems(f, readFileSync(join(coreDir, f), 'utf8'))), []);
});

test('the purity check fires on each forbidden use, and on nothing in comments or strings', () => {
  const samples: Record<string, string> = {
    'Date (time enters only as nowMs)': 'const t = Date.now();',
    timers: 'setTimeout(() => undefined, 1);',
    'Math.random (randomness is injected)': 'const r = Math.random();',
    process: 'const e = process.env;',
    'performance clock': 'const t = performance.now();',
    'require()': "const fs = require('node:fs');",
    'dynamic import': "const m = await import('./state');",
    'console (the core emits events; the edge logs)': 'console.log(1);',
    globalThis: 'globalThis.x = 1;',
  };
  assert.deepEqual(Object.keys(samples).sort(), FORBIDDEN.map(([, what]) => what).sort(), 'one sample per rule');
  for (const [what, line] of Object.entries(samples)) {
    assert.deepEqual(problems('s.ts', `import { x } from './types';\n${line}\n`), [`s.ts: uses ${what}`], line);
  }
  const quiet = "// Date, setTimeout, process, console\n/* Math.random() */\nconst s = 'globalThis performance require(';\nconst u = `Date ${1}`;\n";
  assert.deepEqual(problems('s.ts', quiet), []);
});

test('the import rule catches every way out of src/core and lets core imports through', () => {
  const bad = [
    "import { x } from '../daemon/clock';",
    "import '../daemon/clock';",
    'import "node:fs";',
    "import './../admin-types';",
    "import type { StatusJson } from '../admin-types';",
    "import * as fs from 'node:fs';",
    "import {\n  a,\n  b,\n} from '../x';",
    "export * from '../x';",
    "export { y } from './sub/../../x';",
  ];
  for (const line of bad) assert.equal(problems('s.ts', `${line}\n`).length, 1, line);
  const good = ["import { x } from './types';", "import './state';", "export type { T } from './types';", "import {\n  a,\n} from './election';"];
  for (const line of good) assert.deepEqual(problems('s.ts', `${line}\n`), [], line);
});
