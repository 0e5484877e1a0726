// The run journal with real processes: what a killed koinode left running is
// killed by the next one, and nothing else is (a process group number alone
// may belong to someone else by now).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { RunJournal } from '../../src/daemon/run-journal';
import { groupAlive } from '../../src/scripts/executor';
import { tempDir } from './harness';

function detached(env: Record<string, string> = {}, script = 'sleep 30'): ChildProcess {
  const c = spawn('sh', ['-c', script], { detached: true, stdio: 'ignore', env: { ...process.env, ...env } });
  c.unref();
  return c;
}

function cleanup(...cs: ChildProcess[]): void {
  for (const c of cs) {
    try {
      process.kill(-c.pid!, 'SIGKILL');
    } catch {
      // gone
    }
  }
}

const noErrors = (m: string) => assert.fail(m);

test('leftover runs are killed (group and all), interrupted services named, and the records removed', () => {
  const dir = tempDir('koi-journal-');
  const before = new RunJournal(dir, noErrors);
  const t1 = before.begin(1, 7, 'db', 'promote', false);
  // The promote's shell started a child that ignores SIGTERM: it dies with the group.
  const p1 = detached({ KOI_RUN: t1 }, 'trap "" TERM; sleep 30 & sleep 30');
  before.spawned(1, p1.pid);
  const t2 = before.begin(2, 7, 'web', 'status', false);
  const p2 = detached({ KOI_RUN: t2 });
  before.spawned(2, p2.pid);
  // Recorded before the spawn only (koinode died in between): found by its token.
  const t3 = before.begin(3, 7, 'cache', 'start', true);
  const p3 = detached({ KOI_RUN: t3 });
  try {
    assert.equal(readdirSync(before.dir).length, 3);
    const after = new RunJournal(dir, noErrors);
    const left = after.reapLeftovers(() => undefined);
    for (const p of [p1, p2, p3]) assert.equal(groupAlive(p.pid!), false, `process group ${p.pid} survived`);
    assert.deepEqual(left.interrupted, ['cache', 'db'], 'promote, and any run while the role may have been held');
    assert.equal(left.killed.length, 3);
    // Something may be promoted: that stays recorded until this koinode let go.
    assert.equal(left.holdingKept, true);
    assert.deepEqual(readdirSync(after.dir), ['holding.json']);
  } finally {
    cleanup(p1, p2, p3);
  }
});

test('a recorded group number now used by an unrelated process is left alone; records of another boot or torn ones are discarded', () => {
  const dir = tempDir('koi-journal-');
  const before = new RunJournal(dir, noErrors);
  before.begin(1, 7, 'db', 'promote', false);
  // The recorded group's number belongs to a process without the run's token
  // and with another start time: not ours.
  const stranger = detached();
  before.spawned(1, stranger.pid);
  const file = join(before.dir, readdirSync(before.dir)[0]!);
  const rec = JSON.parse(readFileSync(file, 'utf8')) as { leaderStart: number };
  rec.leaderStart -= 1;
  writeFileSync(file, JSON.stringify(rec));
  const other = detached({ KOI_RUN: 'x' });
  writeFileSync(join(before.dir, 'old.json'), JSON.stringify({ v: 1, bootId: 'another-boot', token: 'x', service: 's', event: 'promote', mayHold: true, pgid: other.pid, leaderStart: null, startedWall: '' }));
  writeFileSync(join(before.dir, 'torn.json'), '{"v":1,"bootId"');
  try {
    const left = new RunJournal(dir, noErrors).reapLeftovers(() => undefined);
    assert.equal(groupAlive(stranger.pid!), true, 'an unrelated process group was killed');
    assert.equal(groupAlive(other.pid!), true, "a record of another boot was acted on");
    assert.deepEqual(left.killed, []);
    assert.equal(left.discarded, 2);
    // The run itself is gone, but it was a promote: the service may be promoted.
    assert.deepEqual(left.interrupted, ['db']);
    assert.deepEqual(readdirSync(before.dir), ['holding.json']);
  } finally {
    cleanup(stranger, other);
  }
});

test('a record that cannot be written is reported, and the run goes on', () => {
  const dir = tempDir('koi-journal-');
  const errors: string[] = [];
  const j = new RunJournal(dir, (m) => errors.push(m));
  // The records folder replaced by a file: every write fails.
  rmSync(j.dir, { recursive: true });
  writeFileSync(j.dir, '');
  const token = j.begin(1, 7, 'db', 'demote', true);
  assert.match(token, /^\d+-7-1$/);
  assert.equal(errors.length, 1);
  assert.match(errors[0]!, /cannot record db\/demote in .* — if koinode dies now, its next start cannot stop this script/);
  j.end(1);
});

test('holding.json of this boot makes every service suspect and is kept; one of another boot is discarded', () => {
  const dir = tempDir('koi-journal-');
  const j = new RunJournal(dir, noErrors);
  j.setHolding(true);
  const left = new RunJournal(dir, noErrors).reapLeftovers(() => undefined);
  assert.equal(left.wasHolding, true);
  assert.equal(left.holdingKept, true);
  assert.deepEqual(readdirSync(j.dir), ['holding.json']);
  writeFileSync(join(j.dir, 'holding.json'), JSON.stringify({ v: 1, bootId: 'another-boot' }));
  const again = new RunJournal(dir, noErrors).reapLeftovers(() => undefined);
  assert.equal(again.wasHolding, false);
  assert.deepEqual(readdirSync(j.dir), []);
});
