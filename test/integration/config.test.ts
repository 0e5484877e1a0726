// Configuration errors and CLI exit statuses, with the real programs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { KOINODE } from '../../src/demo/local-cluster';
import { freePorts } from '../../src/demo/local-cluster';
import { koi, tempDir } from './harness';
import { parseConfig } from '../../src/config/load';

function koinode(args: string[], timeoutMs = 10_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [KOINODE, ...args], { timeout: timeoutMs }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1, stdout, stderr });
    });
  });
}

const dir = tempDir('koi-conf-');
mkdirSync(join(dir, 'services'));
const GOOD = `[node]
name = n1
state_dir = ${dir}/state
[cluster]
secret = 0123456789abcdef0123
transport = n1=127.0.0.1:1, n2=127.0.0.1:2, n3=127.0.0.1:3
[service]
folder = ${dir}/services
`;

function conf(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  chmodSync(p, 0o600);
  return p;
}

const cases: [string, string, string][] = [
  ['unknown key', GOOD.replace('[service]', '[service]\nfolderz = x'), `[service] folderz: unknown key — valid keys in [service]: folder, start_timeout`],
  ['unknown section', `${GOOD}[nodes]\nx = 1\n`, '[nodes] unknown section'],
  ['malformed duration', `${GOOD}[time]\nleader_timeout = soon\n`, '[time] leader_timeout: "soon" is not a duration — write e.g. 200ms, 5s, 10m or 1h'],
  ['malformed boolean', GOOD.replace('name = n1', 'name = n1\nelector = maybe'), '[node] elector: "maybe" is not a boolean'],
  ['bad port', GOOD.replace('name = n1', 'name = n1\nport = 70000'), '[node] port: 70000 is out of range 1..65535'],
  ['leader_timeout <= heartbeat_interval', `${GOOD}[time]\nheartbeat_interval = 1s\nleader_timeout = 1s\n`, '[time] leader_timeout: 1s must be longer than heartbeat_interval (1s)'],
  ['master_lease < 2 heartbeats', `${GOOD}[time]\nheartbeat_interval = 1s\nleader_timeout = 3s\nmaster_lease = 1500ms\n`, '[time] master_lease: 1500ms must be at least twice heartbeat_interval (1s)'],
  ['this node missing from transport', GOOD.replace('n1=127.0.0.1:1, ', ''), '[cluster] transport: this node (n1) is missing — add n1=HOST:PORT'],
  ['duplicate names', GOOD.replace('n3=127.0.0.1:3', 'n2=127.0.0.1:3'), '[cluster] transport: node name n2 appears twice'],
  ['short secret', GOOD.replace('0123456789abcdef0123', 'short'), '[cluster] secret: is 5 bytes; use at least 16'],
  ['missing secret', GOOD.replace(/secret = .*\n/, ''), '[cluster] secret: missing'],
  ['missing services folder', GOOD.replace(`${dir}/services`, `${dir}/nope`), `[service] folder: ${dir}/nope does not exist or is not a directory`],
];

for (const [what, text, message] of cases) {
  test(`koinode refuses a configuration with ${what}: exit 2, one clear line`, async () => {
    const p = conf(`${what.replace(/\W+/g, '-')}.conf`, text);
    const r = await koinode(['-f', p]);
    assert.equal(r.code, 2);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.ok(lines[0]!.startsWith(`koinode: ${p}: `), lines[0]);
    assert.ok(lines[0]!.includes(message), `${lines[0]}\n  should include\n${message}`);
  });
}

test('a configuration readable by everyone while it holds the secret gets a warning', async () => {
  const [port] = await freePorts(1);
  const p = conf('shared.conf', GOOD.replace('n1=127.0.0.1:1', `n1=127.0.0.1:${port}`));
  chmodSync(p, 0o644);
  const r = await koinode(['-f', p, '--log-level', 'warn'], 5000);
  assert.match(r.stdout + r.stderr, /readable by every user and it holds the cluster secret — chmod o-r/);
});

test('koi status with no node running exits 3 and says what to do', async () => {
  const [port] = await freePorts(1);
  const p = conf('client.conf', GOOD.replace('n1=127.0.0.1:1', `n1=127.0.0.1:${port}`));
  const r = await koi(['-f', p, 'status', '-t', '1']);
  assert.equal(r.code, 3);
  assert.equal(r.stderr, `koi: 127.0.0.1:${port} refused the connection — is koinode running on 127.0.0.1:${port}?\n`);
  assert.equal(r.stdout, '');
});

test('usage errors exit 2; --help and --version exit 0', async () => {
  const bad = await koi(['frobnicate']);
  assert.equal(bad.code, 2);
  assert.equal(bad.stderr, 'koi: unknown command "frobnicate" — see koi --help\n');
  const none = await koi(['-f', join(dir, 'no-such.conf'), 'status']);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /no-such\.conf: file not found — check the -f path/);
  for (const prog of [koi, (a: string[]) => koinode(a)]) {
    const h = await prog(['--help']);
    assert.equal(h.code, 0);
    assert.match(h.stdout, /Options:/);
    const v = await prog(['--version']);
    assert.equal(v.code, 0);
    assert.match(v.stdout, /^\d+\.\d+\.\d+\n$/);
  }
  const k = await koi(['keygen']);
  assert.equal(k.code, 0);
  assert.ok(Buffer.from(k.stdout.trim(), 'base64').length === 32);
});

test('lease + demote beyond what the clock-rate part of the safety margin covers gets a warning that says the tolerated rate', () => {
  const warn = (extra: string) => parseConfig(`${GOOD}${extra}`, join(dir, 'x.conf')).warnings.filter((w) => w.includes('safety margin'));
  assert.deepEqual(warn(''), [], 'defaults: 6.5s is covered');
  assert.deepEqual(warn('demote_timeout = 8500ms\n'), [], '1.5s + 8.5s = 10s is still covered');
  assert.deepEqual(warn('demote_timeout = 30s\n'), [
    "[time] master_lease + [service] demote_timeout is 31.5s: the leader's safety margin covers clocks whose rates differ by 0.5 % only up to 10s; " +
      "at 31.5s the machines' clock rates must stay within 0.16 % of each other (NTP keeps them far closer) — or shorten them",
  ]);
});

test('the loader explains which timings must match across nodes, with this file\'s values', () => {
  const { notes } = parseConfig(`${GOOD}demote_timeout = 3s\n[time]\nmaster_lease = 2s\n`, join(dir, 'x.conf'));
  assert.equal(notes.length, 2);
  assert.match(notes[0]!, /^master_lease \(2s\) and demote_timeout \(3s\) should be the same on every node: the leader waits out the longest any node reports, .*about master_lease \+ demote_timeout: 5s here/);
  assert.match(notes[1]!, /^leader_timeout \(1s\), heartbeat_interval \(200ms\) and quorum \(2\) must be the same on every node: they are not exchanged/);
});

test('koi check prints what the loader warns about and explains, and exits 0 on warnings alone', async () => {
  const p = conf('check-warns.conf', `${GOOD}demote_timeout = 30s\n`);
  chmodSync(p, 0o644);
  const r = await koi(['check', '-f', p, '--no-color']);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  assert.ok(lines.includes(`warning: ${p} is readable by every user and it holds the cluster secret — chmod o-r ${p}`), r.stdout);
  assert.ok(lines.some((l) => l.startsWith('warning: [time] master_lease + [service] demote_timeout is 31.5s')), r.stdout);
  assert.ok(lines.some((l) => l.startsWith('note: master_lease (1500ms) and demote_timeout (30s) should be the same on every node')), r.stdout);
  assert.equal(lines.at(-1), 'ok (2 warning(s))');
  const j = JSON.parse((await koi(['check', '-f', p, '--json'])).stdout) as { ok: boolean; warnings: string[]; notes: string[] };
  assert.equal(j.ok, true);
  assert.equal(j.warnings.length, 2);
  assert.ok(j.notes.some((n) => n.startsWith('leader_timeout (1s), heartbeat_interval (200ms) and quorum (2) must be the same')));
});
