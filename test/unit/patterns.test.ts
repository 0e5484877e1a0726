// koi check's reading of service scripts (issue 17): shapes that worked with
// the original koi or look harmless but break koi's contract are named, and
// ordinary scripts are left alone.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { scriptPatternWarnings } from '../../src/scripts/patterns';
import { checkServices } from '../../src/scripts/check';

function script(dir: string, name: string, body: string): string {
  const p = join(dir, name);
  writeFileSync(p, `#!/bin/sh\n${body}\n`);
  chmodSync(p, 0o755);
  return p;
}

test('a status that cannot fail, a start that execs its daemon, a demote that ends with echo are named', () => {
  const dir = mkdtempSync(join(tmpdir(), 'koi-patterns-'));
  try {
    const w = (name: string, ev: Parameters<typeof scriptPatternWarnings>[1], body: string) => scriptPatternWarnings(script(dir, name, body), ev);
    assert.match(w('s1', 'status', 'pgrep mydaemon\nexit 0')[0] ?? '', /always exits 0 .* exit 92 when it is down/);
    assert.match(w('s2', 'status', '# check\nredis-cli ping\necho ok')[0] ?? '', /always exits 0/);
    assert.match(w('st', 'start', 'cd /opt/app\nexec ./mydaemon --foreground')[0] ?? '', /exec'ing a program.* start must exit/);
    assert.match(w('d1', 'demote', 'redis-cli replicaof 10.0.0.1 6379\necho demoted')[0] ?? '', /ends with "echo demoted", so it exits 0 whatever happened before — a failed demote goes unnoticed/);
    // Ordinary scripts: nothing to say.
    assert.deepEqual(w('ok1', 'status', 'pgrep mydaemon || exit 92\nexit 0'), []);
    assert.deepEqual(w('ok2', 'status', '. ../koi-service.sh\npgrep mydaemon || exit $KOI_IS_STOPPED\nexit 0'), []);
    assert.deepEqual(w('ok3', 'status', 'pgrep -x mydaemon >/dev/null'), [], 'its last command decides');
    assert.deepEqual(w('ok4', 'start', 'mydaemon &'), []);
    assert.deepEqual(w('ok5', 'demote', 'set -e\nredis-cli replicaof 10.0.0.1 6379\necho demoted'), []);
    assert.deepEqual(w('ok6', 'demote', 'echo demoting'), [], 'a script that only logs does no work to hide');
    // Not a shell script: not read.
    const py = join(dir, 'py');
    writeFileSync(py, '#!/usr/bin/python3\nprint(1)\n');
    assert.deepEqual(scriptPatternWarnings(py, 'status'), []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('koi check lists those warnings for a services folder', () => {
  const dir = mkdtempSync(join(tmpdir(), 'koi-patterns-'));
  try {
    mkdirSync(join(dir, '10-app'));
    script(join(dir, '10-app'), 'status', 'pgrep app\nexit 0');
    script(join(dir, '10-app'), 'start', 'app &');
    const r = checkServices(dir, null);
    assert.equal(r.warnings.length, 1);
    assert.match(r.warnings[0]!, /10-app\/status: this status always exits 0/);
    assert.deepEqual(r.problems, []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
