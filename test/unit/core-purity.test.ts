// src/core must stay a pure state machine: no imports from outside it, no
// ambient clock, timer, process, randomness or I/O. This test reads the
// sources, so it fails the moment someone reaches out.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

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

test('src/core imports only from src/core and uses no ambient clock, timer, process or randomness', () => {
  const files = readdirSync(coreDir).filter((f) => f.endsWith('.ts'));
  assert.ok(files.length >= 5, `found core files: ${files.join(', ')}`);
  const problems: string[] = [];
  for (const f of files) {
    const raw = readFileSync(join(coreDir, f), 'utf8');
    for (const m of raw.matchAll(/^\s*(?:import|export)\b[^;]*?from\s+['"]([^'"]+)['"]/gm)) {
      if (!m[1]!.startsWith('./')) problems.push(`${f}: imports ${m[1]}`);
    }
    const body = code(raw);
    for (const [re, what] of FORBIDDEN) if (re.test(body)) problems.push(`${f}: uses ${what}`);
  }
  assert.deepEqual(problems, []);
});

test('the purity check itself notices a forbidden line', () => {
  const sample = code("import { x } from './y';\nconst t = Date.now(); // Date in a comment is fine\n");
  assert.ok(FORBIDDEN[0]![0].test(sample));
  assert.ok(!FORBIDDEN[0]![0].test(code("const s = 'Date'; // Date\n")));
});
