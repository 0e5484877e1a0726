// koinode's documented command line and signals with real processes:
// --name, --port, --services, --log json, --log file:PATH, several -f;
// SIGINT (graceful, in order), a second signal, and the shutdown bound.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { LocalJson } from '../../src/admin-types';
import { DAEMON_NODE_FLAGS, KOINODE, startNode } from '../../src/demo/local-cluster';
import { TestCluster } from './harness';

async function until(what: string, cond: () => boolean, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Resolves with the exit code (null when killed by a signal) and the time of exit. */
function exited(p: ChildProcess): Promise<{ code: number | null; atMs: number }> {
  return new Promise((r) => p.once('exit', (code) => r({ code, atMs: Date.now() })));
}

/** The promise's value, or null when it takes longer than `ms`. */
function within<T>(p: Promise<T>, ms: number): Promise<T | null> {
  let t: NodeJS.Timeout | undefined;
  const late = new Promise<null>((r) => (t = setTimeout(() => r(null), ms)));
  return Promise.race([p, late]).finally(() => clearTimeout(t));
}

function jsonLines(text: string): Record<string, unknown>[] {
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => {
      try {
        return JSON.parse(l) as Record<string, unknown>;
      } catch {
        throw new Error(`not a JSON line: ${l}`);
      }
    });
}

test('koinode --name --port --services --log json with several -f; --log file:PATH', async () => {
  const c = await TestCluster.start([{ name: 'n1', priority: 2 }, { name: 'n2', priority: 1 }], { start: false });
  try {
    const n1 = c.node('n1');
    const own = readFileSync(n1.conf, 'utf8');
    // The first file found wins (-f replaces the search list). Its name, port
    // and folder are wrong for n1, so only the flags make it work.
    const empty = join(c.root, 'empty-services');
    mkdirSync(empty);
    const first = join(c.root, 'first.conf');
    writeFileSync(first, own.replace(/^name = n1$/m, 'name = elsewhere').replace(/^port = \d+$/m, `port = ${n1.port === 65000 ? 65001 : 65000}`).replace(/^folder = .*$/m, `folder = ${empty}`), { mode: 0o600 });
    // A later file with another secret: read, or merged over the first, n2 would refuse n1.
    const second = join(c.root, 'second.conf');
    writeFileSync(second, own.replace(/^secret = .*$/m, 'secret = another-secret-0123456789abcdef'), { mode: 0o600 });
    const out = openSync(join(c.root, 'n1.stdout'), 'a');
    const p = spawn(process.execPath, [...DAEMON_NODE_FLAGS, KOINODE, '-f', join(c.root, 'absent.conf'), '-f', first, '-f', second, '--name', 'n1', '--port', String(n1.port), '--services', n1.services, '--log', 'json'], {
      stdio: ['ignore', out, out],
      env: { ...process.env, KOI_JOURNAL: c.journal, KOI_JOURNAL_DIR: c.root },
    });
    closeSync(out);
    n1.proc = p;
    const fileLog = join(c.root, 'n2-log.json');
    startNode(c.node('n2'), { KOI_JOURNAL: c.journal, KOI_JOURNAL_DIR: c.root }, ['--log', `file:${fileLog}`]);

    await c.waitFor('both up and a master', (s) => c.settled(s) && s.nodes.every((n) => n.reachable), 12_000);
    const r = await c.koi(['local', '--json'], 'n1');
    assert.equal(r.code, 0, r.stderr);
    const l = JSON.parse(r.stdout) as LocalJson;
    assert.equal(l.name, 'n1');
    assert.equal(l.address, `127.0.0.1:${n1.port}`);
    assert.equal(l.config, first);
    assert.equal(l.servicesFolder, n1.services);
    assert.deepEqual(l.services.map((s) => s.name), ['db']);
    await until('n1 ran the scripts of --services', () => c.journalLines().some((j) => j[1] === 'n1' && j[2] === 'db'), 5000);

    // --log json: every line on standard output is one JSON object with node and component.
    const lines = jsonLines(readFileSync(join(c.root, 'n1.stdout'), 'utf8'));
    assert.ok(lines.length >= 3, `only ${lines.length} lines`);
    for (const j of lines) {
      assert.equal(j.node, 'n1', JSON.stringify(j));
      assert.equal(typeof j.component, 'string', JSON.stringify(j));
      assert.equal(typeof j.level, 'string', JSON.stringify(j));
    }
    assert.ok(lines.some((j) => j.component === 'daemon' && String(j.message).startsWith(`listening on 127.0.0.1:${n1.port} as n1 `)));

    // --log file:PATH: the same, in that file, and nothing on the console.
    await until('n2 logged to its file', () => existsSync(fileLog) && readFileSync(fileLog, 'utf8').includes('listening on'), 5000);
    const fl = jsonLines(readFileSync(fileLog, 'utf8'));
    for (const j of fl) {
      assert.equal(j.node, 'n2', JSON.stringify(j));
      assert.equal(typeof j.component, 'string', JSON.stringify(j));
    }
    assert.ok(fl.some((j) => j.component === 'daemon' && String(j.message).startsWith(`listening on 127.0.0.1:${c.node('n2').port} as n2 `)));
    assert.equal(c.log('n2'), '', 'n2 wrote nothing to its console');
  } finally {
    await c.stop();
  }
});

/** A stop script that journals its start, then ignores SIGTERM: only SIGKILL ends it. */
const STUBBORN_STOP = `#!/bin/sh
printf '%s %s %s stop begin -\\n' "$(date +%s%N)" "$KOI_NODE" "$KOI_SERVICE" >> "$KOI_JOURNAL"
trap '' TERM
while :; do sleep 1; done
`;

/** Pids of scripts a node started (they carry its KOI_NODE and this cluster's journal). */
function scriptsOf(c: TestCluster, node: string): number[] {
  const out: number[] = [];
  for (const p of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
    try {
      const env = readFileSync(`/proc/${p}/environ`, 'utf8').split('\0');
      if (env.includes(`KOI_JOURNAL=${c.journal}`) && env.includes(`KOI_NODE=${node}`)) out.push(Number(p));
    } catch {
      // gone, or not ours
    }
  }
  return out;
}

test('SIGINT demotes then stops in order; a second signal exits at once; a hanging stop is cut at demote_timeout + stop_timeout + 5s', async () => {
  const c = await TestCluster.start(undefined, { services: ['10-a/', '20-b/', '30-c/'], start: false });
  try {
    // n2: a stop that hangs, with a time limit far beyond the test.
    const conf2 = c.node('n2').conf;
    writeFileSync(conf2, readFileSync(conf2, 'utf8').replace(/^stop_timeout = .*$/m, 'stop_timeout = 60s'));
    // n3: every stop ignores SIGTERM, so each takes stop_timeout (3s) + the kill grace (2s):
    // 15 s in a row, where the bound is demote 1s + stop 3s + 5s = 9 s.
    for (const s of ['10-a', '20-b', '30-c']) {
      const f = join(c.node('n3').services, s, 'stop');
      writeFileSync(f, STUBBORN_STOP);
      chmodSync(f, 0o755);
    }
    for (const n of ['n1', 'n2', 'n3']) c.startNode(n);
    let s = await c.waitFor('settled, all up', (x) => c.settled(x) && x.nodes.every((n) => n.reachable), 12_000);
    if (s.cluster.master !== 'n1') {
      assert.equal((await c.koi(['promote', 'n1'])).code, 0);
      s = await c.waitFor('n1 master', (x) => x.cluster.master === 'n1' && c.settled(x), 8000);
    }

    // SIGINT to the master: demote c, b, a, then stop c, b, a, one at a time; exit 0.
    const mark = c.journalLines().length;
    const p1 = c.node('n1').proc!;
    const gone1 = exited(p1);
    p1.kill('SIGINT');
    assert.equal((await gone1).code, 0);
    const seq = c.journalLines().slice(mark).filter((j) => j[1] === 'n1' && j[3] !== 'status').map((j) => `${j[2]}/${j[3]}/${j[4]}${j[4] === 'end' ? `/${j[5]}` : ''}`);
    const want: string[] = [];
    for (const ev of ['demote', 'stop']) for (const sv of ['c', 'b', 'a']) want.push(`${sv}/${ev}/begin`, `${sv}/${ev}/end/0`);
    assert.deepEqual(seq, want);
    assert.match(c.log('n1'), /shutting down: demoting and stopping services \(at most 9s; signal again to exit at once\)[\s\S]*daemon: stopped/);
    await c.waitFor('a new master', (x) => x.cluster.master !== null && x.cluster.master !== 'n1' && c.settled(x), 8000);

    // Both others at once. n2: a second SIGINT while its stop hangs ends it now.
    c.setFlag('hang-n2-c-stop');
    const p2 = c.node('n2').proc!;
    const p3 = c.node('n3').proc!;
    const gone2 = exited(p2);
    const gone3 = exited(p3);
    const t3 = Date.now();
    p3.kill('SIGINT');
    p2.kill('SIGINT');
    await until('n2 running its hanging stop', () => c.journalLines().some((j) => j[1] === 'n2' && j[2] === 'c' && j[3] === 'stop' && j[4] === 'begin'), 10_000);
    p2.kill('SIGINT');
    const e2 = await within(gone2, 5000);
    assert.notEqual(e2, null, 'n2 still running 5 s after the second SIGINT (its stop would hang 60 s)');
    assert.equal(e2!.code, 1);
    assert.match(c.log('n2'), /SIGINT again: exiting now/);
    assert.ok(!c.journalLines().some((j) => j[1] === 'n2' && j[2] === 'b' && j[3] === 'stop'), 'n2 went on with its shutdown after the second signal');
    await until('the hanging stop of n2 killed', () => scriptsOf(c, 'n2').length === 0, 3000);

    // n3: its stops would take 15 s; the shutdown bound (9 s) ends them. 3 s of slack for a loaded machine.
    const e3 = await within(gone3, 20_000);
    assert.notEqual(e3, null, 'n3 still running 20 s after SIGINT');
    const took = e3!.atMs - t3;
    assert.ok(took <= 9000 + 3000, `n3 took ${took}ms to shut down; the bound is 9 s`);
    assert.equal(e3!.code, 0);
    assert.match(c.log('n3'), /shutdown bound reached: killing the scripts still running/);
    assert.ok(c.journalLines().some((j) => j[1] === 'n3' && j[3] === 'stop'), 'n3 was stopping its services');
    await until('the stubborn stops of n3 killed', () => scriptsOf(c, 'n3').length === 0, 3000);
  } finally {
    await c.stop();
  }
});
