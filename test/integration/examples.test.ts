// The example scripts run on their own: the DNS handler with nodes named by
// DNS names, the virtual IP scripts with an IPv6 address (root only: a
// network namespace made by the test).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO } from '../../src/demo/local-cluster';

const sh = (cmd: string, env: NodeJS.ProcessEnv = {}, cwd?: string) => spawnSync('sh', ['-c', cmd], { encoding: 'utf8', env: { ...process.env, ...env }, cwd });

test('dns-hosts writes addresses only: IPs as they are, names from KOI_DNS_MAP or DNS, and leaves out what does not resolve', () => {
  const dir = mkdtempSync(join(tmpdir(), 'koi-dns-'));
  try {
    writeFileSync(join(dir, 'map'), 'db1 10.9.8.7\n');
    const r = sh(join(REPO, 'etc', 'handlers', 'dns-hosts'), {
      KOI_DNS_FILE: join(dir, 'hosts'),
      KOI_DNS_MAP: join(dir, 'map'),
      KOI_EVENT: 'sync',
      KOI_EVENT_ID: '3-1',
      KOI_UP_NODES: 'a,b,c,d,e',
      KOI_UP_ADDRESSES: '10.0.0.1:42012,[fd00::2]:42012,db1:42012,localhost:42012,nohost.invalid:42012',
    });
    assert.equal(r.status, 0, r.stderr);
    const lines = readFileSync(join(dir, 'hosts'), 'utf8').split('\n').filter((l) => l !== '' && !l.startsWith('#'));
    assert.deepEqual(lines.slice(0, 3), ['10.0.0.1 service.koi', 'fd00::2 service.koi', '10.9.8.7 service.koi']);
    assert.equal(lines.length, 4, `localhost resolved, nohost.invalid left out: ${lines.join(' | ')}`);
    assert.match(lines[3]!, /^(127\.0\.0\.1|::1) service\.koi$/);
    assert.match(r.stderr, /no address for nohost\.invalid/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('VIP example with an IPv6 address: added at once (no DAD), held, released', (t) => {
  if (process.getuid?.() !== 0 || sh('ip netns list').status !== 0) {
    t.skip('needs root and iproute2 to make a network namespace');
    return;
  }
  const ns = `koivip6${process.pid}`;
  const made = sh(`ip netns add ${ns} && ip -n ${ns} link add koi0 type veth peer name koi1 && ip -n ${ns} link set koi0 up`);
  if (made.status !== 0) {
    sh(`ip netns del ${ns} 2>/dev/null`);
    t.skip(`cannot create a network namespace here: ${made.stderr.trim()}`);
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'koi-vip6-'));
  try {
    cpSync(join(REPO, 'services', 'examples', '10-vip'), join(dir, '10-vip'), { recursive: true });
    cpSync(join(REPO, 'services', 'koi-service.sh'), join(dir, 'koi-service.sh'));
    const svc = join(dir, '10-vip');
    const run = (event: string) => sh(`./${event}`, { KOI_NODE: 'n1', KOI_EVENT: event }, svc);
    // IPv6: added without duplicate address detection, no ARP.
    writeFileSync(join(svc, 'vip.conf.sh'), `VIP=fd00:10::10/64\nDEV=koi0\nNETNS=${ns}\n`);
    assert.equal(run('status').status, 91, 'not held yet');
    const p = run('promote');
    assert.equal(p.status, 0, p.stderr);
    assert.match(p.stdout, /IPv6: neighbours learn it by NDP/);
    assert.match(sh(`ip -n ${ns} -o addr show dev koi0`).stdout, / fd00:10::10\/64 /);
    assert.equal(run('status').status, 90);
    assert.equal(run('demote').status, 0);
    assert.equal(run('status').status, 91);
    assert.doesNotMatch(sh(`ip -n ${ns} -o addr show dev koi0`).stdout, / fd00:10::10\//);
  } finally {
    sh(`ip netns del ${ns}`);
    rmSync(dir, { recursive: true, force: true });
  }
});
