// Every way `koi` can fail says so in one line on stderr, with the exit
// status of SPEC section 6 (1 refused or failed, 2 usage or configuration, 3
// no node reached), and nothing on stdout. Real processes throughout: the
// built koi, real koinodes, and for the protocol check a small grpc-js server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createServer, type Socket } from 'node:net';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { freePorts, KOI } from '../../src/demo/local-cluster';
import { koi, TestCluster, type KoiResult } from './harness';

/** One line on stderr, nothing on stdout, the given status. */
function oneLine(r: KoiResult, code: number, line: RegExp | string, what: string): void {
  assert.equal(r.stdout, '', `${what}: stdout`);
  assert.equal(r.code, code, `${what}: exit status (stderr: ${r.stderr})`);
  assert.match(r.stderr, /^koi: [^\n]+\n$/, `${what}: one line`);
  if (typeof line === 'string') assert.equal(r.stderr, `koi: ${line}\n`, what);
  else assert.match(r.stderr, line, what);
}

/** A copy of `conf` for koi, changed by `edit`, readable by its owner only. */
function clientConf(conf: string, name: string, edit: (text: string) => string): string {
  const file = join(conf, '..', '..', name);
  writeFileSync(file, edit(readFileSync(conf, 'utf8')), { mode: 0o600 });
  return file;
}

// ---- usage ---------------------------------------------------------------------------

/** Each bad command line and (part of) the line koi must print for it. */
const USAGE: [string[], RegExp][] = [
  [[], /name a command/],
  [['bogus'], /unknown command "bogus"/],
  [['stat'], /unknown command "stat" — did you mean/],
  [[''], /unknown command ""/],
  [['status', '--bogus'], /unknown option --bogus/],
  [['status', '-Z'], /unknown option -Z/],
  [['status', '--no-json=3'], /unknown option --no-json/],
  [['status', '-f'], /-f needs a value/],
  [['status', '--file'], /--file needs a value/],
  [['-f'], /-f needs a value/],
  [['status', '-H'], /-H needs a value/],
  [['status', '-p'], /-p needs a value/],
  [['status', '-t'], /-t needs a value/],
  [['--timeout', 'abc', 'status'], /--timeout "abc" is not a positive number of seconds/],
  [['--timeout=abc', 'status'], /--timeout "abc" is not a positive number/],
  [['-t', '-1', 'status'], /--timeout "-1" is not a positive number/],
  [['-t', '0', 'status'], /--timeout "0" is not a positive number/],
  [['-t', '', 'status'], /--timeout "" is not a positive number/],
  [['--port', 'x', 'status'], /--port "x" is not a port number/],
  [['-p', '70000', 'status'], /--port "70000" is not a port number/],
  [['-p', '0', 'status'], /--port "0" is not a port number/],
  [['-p', '1.5', 'status'], /--port "1.5" is not a port number/],
  [['-H', 'a b', 'status'], /--host "a b": .*not a host name/],
  [['-H', 'a', '-H', 'b', 'status'], /give --host once/],
  [['-t', '1', '-t', '2', 'status'], /give --timeout once/],
  [['-p', '1', '-p', '2', 'status'], /give --port once/],
  [['status', '--json=maybe'], /--json takes no value/],
  [['status', '--color=yes'], /--color takes no value/],
  [['maintenance'], /maintenance needs on or off/],
  [['maintenance', 'maybe'], /maintenance mode must be one of "on", "off", not "maybe"/],
  [['maintenance', 'on', 'off'], /too many arguments for maintenance: off/],
  [['promote'], /promote needs a node/],
  [['promote', 'a', 'b'], /too many arguments for promote: b/],
  [['confirm-down'], /confirm-down needs a node/],
  [['status', 'a', 'b'], /too many arguments for status: b/],
  [['local', 'extra'], /too many arguments for local: extra/],
  [['watch', 'extra'], /too many arguments for watch: extra/],
  [['keygen', 'x'], /too many arguments for keygen: x/],
  [['check', 'a', 'b'], /too many arguments for check: b/],
];

test('every bad command line: one line ending "see koi --help", nothing on stdout, exit 2, no stack trace', async () => {
  for (const [args, want] of USAGE) {
    const r = await koi(args);
    const what = `koi ${args.map((a) => JSON.stringify(a)).join(' ')}`;
    oneLine(r, 2, /^koi: .+ — see koi --help\n$/, what);
    assert.match(r.stderr, want, what);
  }
});

test('--help, --version and keygen still answer on stdout with exit 0', async () => {
  const h = await koi(['--help']);
  assert.equal(h.code, 0, h.stderr);
  assert.match(h.stdout, /koi status \[node\]/);
  assert.equal(h.stderr, '');
  const v = await koi(['--version']);
  assert.equal(v.code, 0);
  assert.match(v.stdout, /^\d+\.\d+\.\d+/);
  const k = await koi(['keygen']);
  assert.equal(k.code, 0, k.stderr);
  assert.match(k.stdout, /^\S{16,}\n$/);
});

// ---- no node reached -----------------------------------------------------------------

test('connection refused, unknown host name, silence: exit 3, each says what to check; refusals do not wait for the timeout', async () => {
  const c = await TestCluster.start([{ name: 'n1' }], { start: false });
  const sockets: Socket[] = [];
  const silent = createServer((s) => sockets.push(s));
  try {
    const conf = c.node('n1').conf;
    const [closed, quiet] = await freePorts(2);
    await new Promise<void>((r) => silent.listen(quiet, '127.0.0.1', r));

    let t0 = Date.now();
    const refused = await koi(['-f', conf, '-H', '127.0.0.1', '-p', String(closed), '-t', '30', 'status'], 40_000);
    oneLine(refused, 3, `127.0.0.1:${closed} refused the connection — is koinode running on 127.0.0.1:${closed}?`, 'refused');
    assert.ok(Date.now() - t0 < 20_000, 'a refused connection does not wait out -t 30');

    t0 = Date.now();
    const unresolved = await koi(['-f', conf, '-H', 'nohost.invalid', '-t', '30', 'local'], 40_000);
    oneLine(unresolved, 3, "cannot resolve the host name nohost.invalid — check -H, or the node's address in [cluster] transport", 'unresolved');
    assert.ok(Date.now() - t0 < 20_000, 'an unknown name does not wait out -t 30');

    const timeout = await koi(['-f', conf, '-H', `127.0.0.1:${quiet}`, '-t', '1', 'status']);
    oneLine(timeout, 3, `no node answered at 127.0.0.1:${quiet} within 1s — is koinode running?`, 'timeout');

    // The configuration's own address, no -H: the same line.
    const own = await koi(['-f', conf, 'failures']);
    oneLine(own, 3, `127.0.0.1:${c.node('n1').port} refused the connection — is koinode running on 127.0.0.1:${c.node('n1').port}?`, 'own address');
  } finally {
    for (const s of sockets) s.destroy();
    silent.close();
    await c.stop();
  }
});

// ---- refused by the node -------------------------------------------------------------

test('a wrong secret and a wrong cluster id are refused with exit 1, each named', async () => {
  const c = await TestCluster.start([{ name: 'n1' }]);
  try {
    await c.waitFor('settled', (x) => c.settled(x), 10_000);
    const conf = c.node('n1').conf;
    const port = c.node('n1').port;
    const secret = clientConf(conf, 'other-secret.conf', (t) => t.replace(/^secret = .*$/m, 'secret = another-secret-0123456789abcdef'));
    oneLine(
      await koi(['-f', secret, 'status']),
      1,
      `127.0.0.1:${port} refused koi: wrong secret (the node's [cluster] secret differs from the one koi read) — give koi the cluster's secret or secret_file (see -f)`,
      'wrong secret',
    );
    const id = clientConf(conf, 'other-id.conf', (t) => t.replace('[cluster]', '[cluster]\nid = 14'));
    oneLine(
      await koi(['-f', id, 'promote', 'n1']),
      1,
      `127.0.0.1:${port} refused koi: wrong cluster id (koi sent 14, the node is cluster 13) — set [cluster] id = 13 in koi's configuration (see -f)`,
      'wrong cluster id',
    );
    oneLine(await koi(['-f', id, 'watch']), 1, /wrong cluster id \(koi sent 14, the node is cluster 13\)/, 'watch, wrong cluster id');
    assert.equal((await c.koi(['status'])).code, 0, 'the right configuration is answered');
  } finally {
    await c.stop();
  }
});

test('a node of another protocol version: FAILED_PRECONDITION "incompatible protocol ..." becomes one line, exit 1', async () => {
  const raw = (b: Buffer) => b;
  const service: grpc.ServiceDefinition = {
    Call: { path: '/koi.v1.Admin/Call', requestStream: false, responseStream: false, requestSerialize: raw, requestDeserialize: raw, responseSerialize: raw, responseDeserialize: raw },
    Watch: { path: '/koi.v1.Admin/Watch', requestStream: false, responseStream: true, requestSerialize: raw, requestDeserialize: raw, responseSerialize: raw, responseDeserialize: raw },
  };
  const refusal = { code: grpc.status.FAILED_PRECONDITION, details: 'incompatible protocol 2.0: this node speaks 1.0–1.1' };
  const server = new grpc.Server();
  server.addService(service, {
    Call: (_call: unknown, cb: grpc.sendUnaryData<Buffer>) => cb(refusal),
    Watch: (call: grpc.ServerWritableStream<Buffer, Buffer>) => call.emit('error', refusal),
  });
  const port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
  const c = await TestCluster.start([{ name: 'n1' }], { start: false });
  try {
    const r = await koi(['-f', c.node('n1').conf, '-H', `127.0.0.1:${port}`, 'status']);
    oneLine(r, 1, /^koi: 127\.0\.0\.1:\d+ speaks another protocol version \(incompatible protocol 2\.0: this node speaks 1\.0–1\.1\) — use koi from the same koi release as that koinode \(this koi is \S+\)\n$/, 'incompatible');
    const w = await koi(['-f', c.node('n1').conf, '-H', `127.0.0.1:${port}`, 'watch']);
    oneLine(w, 1, /speaks another protocol version \(incompatible protocol 2\.0/, 'incompatible, watch');
  } finally {
    server.forceShutdown();
    await c.stop();
  }
});

// ---- TLS -----------------------------------------------------------------------------

function openssl(args: string[], cwd: string): void {
  const r = spawnSync('openssl', args, { cwd, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`);
}

/** A CA `ca` and a certificate `name` signed by it for 127.0.0.1 only (no DNS name). */
function certs(d: string, ca: string, names: string[]): void {
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${ca}.key`, '-out', `${ca}.crt`, '-days', '2', '-subj', `/CN=${ca}`], d);
  for (const n of names) {
    openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${n}.key`, '-out', `${n}.csr`, '-subj', `/CN=${n}`], d);
    writeFileSync(join(d, `${n}.ext`), 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n');
    openssl(['x509', '-req', '-in', `${n}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-out', `${n}.crt`, '-days', '2', '-extfile', `${n}.ext`], d);
  }
}

const tlsLines = (d: string, cert: string, ca: string) => `[cluster]\ntls_cert = ${join(d, `${cert}.crt`)}\ntls_key = ${join(d, `${cert}.key`)}\ntls_ca = ${join(d, `${ca}.crt`)}`;

test('TLS: koi without TLS, with another CA, with a certificate the node does not trust, by a name the certificate lacks, or with TLS to a plain node: exit 1, each named', async (t) => {
  if (spawnSync('openssl', ['version']).status !== 0) {
    t.skip('openssl is not installed');
    return;
  }
  const c = await TestCluster.start([{ name: 'n1', priority: 2 }, { name: 'n2', priority: 1 }], { start: false });
  try {
    const d = c.root;
    certs(d, 'ca', ['n1', 'koi']);
    certs(d, 'other', ['stranger']);
    const conf1 = c.node('n1').conf;
    const plainConf = clientConf(conf1, 'plain.conf', (x) => x);
    writeFileSync(conf1, readFileSync(conf1, 'utf8').replace('[cluster]', tlsLines(d, 'n1', 'ca')));
    c.startNode('n1'); // with TLS
    c.startNode('n2'); // without: a plain node for koi with TLS
    const p1 = c.node('n1').port;
    const p2 = c.node('n2').port;
    const good = clientConf(conf1, 'good.conf', (x) => x.replace(/tls_cert = .*\ntls_key = .*\n/, `tls_cert = ${join(d, 'koi.crt')}\ntls_key = ${join(d, 'koi.key')}\n`));
    const end = Date.now() + 10_000;
    let ok = await koi(['-f', good, 'local', '-t', '2']);
    while (ok.code !== 0 && Date.now() < end) {
      await new Promise((r) => setTimeout(r, 200));
      ok = await koi(['-f', good, 'local', '-t', '2']);
    }
    assert.equal(ok.code, 0, `koi with the right certificates: ${ok.stderr}`);
    assert.equal(ok.stderr, '', 'nothing on stderr (no Node warning either)');

    oneLine(
      await koi(['-f', plainConf, 'status']),
      1,
      `127.0.0.1:${p1} closed the connection before answering — if the nodes use TLS, give koi [cluster] tls_cert, tls_key and tls_ca too`,
      'koi without TLS',
    );
    const otherCa = clientConf(conf1, 'other-ca.conf', (x) => x.replace(/tls_cert = .*\ntls_key = .*\ntls_ca = .*/, tlsLines(d, 'stranger', 'other').replace('[cluster]\n', '')));
    oneLine(
      await koi(['-f', otherCa, 'status']),
      1,
      new RegExp(`^koi: TLS: koi does not trust the certificate of 127\\.0\\.0\\.1:${p1} \\(self-signed certificate in certificate chain\\) — \\[cluster\\] tls_ca must be the CA that signed the nodes' certificates\\n$`),
      'another CA',
    );
    const stranger = clientConf(conf1, 'stranger.conf', (x) => x.replace(/tls_cert = .*\ntls_key = .*\n/, `tls_cert = ${join(d, 'stranger.crt')}\ntls_key = ${join(d, 'stranger.key')}\n`));
    oneLine(await koi(['-f', stranger, 'status']), 1, new RegExp(`^koi: TLS: 127\\.0\\.0\\.1:${p1} (closed the connection during the handshake|refused koi's certificate)`), 'a client certificate from another CA');
    oneLine(
      await koi(['-f', good, '-H', `localhost:${p1}`, 'status']),
      1,
      new RegExp(`^koi: TLS: the certificate of localhost:${p1} is not valid for the name localhost \\(.*\\) — reach the node by a name or address its certificate lists \\(-H\\), or issue it a certificate with subjectAltName DNS:localhost\\n$`),
      'a name the certificate lacks',
    );
    oneLine(
      await koi(['-f', good, '-p', String(p2), 'status']),
      1,
      new RegExp(`^koi: TLS: 127\\.0\\.0\\.1:${p2} does not speak TLS \\(.*\\) — koi has \\[cluster\\] tls_cert/tls_key/tls_ca but the node does not: set them on both or on neither\\n$`),
      'TLS to a plain node',
    );
  } finally {
    await c.stop();
  }
});

// ---- koi watch and a frozen node -----------------------------------------------------

test('koi watch notices a frozen koinode by its keepalive pings: one line, exit 3', async () => {
  const c = await TestCluster.start([{ name: 'n1' }]);
  const pid = () => c.node('n1').proc!.pid!;
  let stopped = false;
  try {
    await c.waitFor('settled', (x) => c.settled(x), 10_000);
    const w = spawn(process.execPath, [KOI, '-f', c.node('n1').conf, '--no-color', 'watch'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    w.stdout.on('data', (b: Buffer) => (out += b.toString()));
    w.stderr.on('data', (b: Buffer) => (err += b.toString()));
    const exited = new Promise<number | null>((r) => w.once('exit', (code) => r(code)));
    const seen = Date.now() + 8000;
    while (!/^#1 /m.test(out) && Date.now() < seen) await new Promise((r) => setTimeout(r, 50));
    assert.match(out, /^#1 /m, `watch printed the first event (stderr: ${err})`);

    process.kill(pid(), 'SIGSTOP');
    stopped = true;
    // Keepalive: a ping every 5 s, 3 s for its answer. Generous bound: no tight timing here.
    const code = await Promise.race([exited, new Promise<'running'>((r) => setTimeout(() => r('running'), 30_000))]);
    if (code === 'running') w.kill('SIGKILL');
    assert.equal(code, 3, `koi watch still ran 30 s after koinode froze (stderr: ${err})`);
    assert.match(err, /^koi: lost the connection to 127\.0\.0\.1:\d+ \([^)]*\) — koinode stopped or froze, or the network is cut; retry once it is back\n$/);
  } finally {
    if (stopped) process.kill(pid(), 'SIGCONT');
    await c.stop();
  }
});
