// Protocol versions in a real cluster: a node of the previous minor (1.0, as
// the release before would run) works with nodes of the current one, and
// `koi status` shows every node's version; a rolling upgrade to the current
// minor then leaves no mixed versions behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { PeerClient } from '../../src/transport/wire';
import { bodyType, encodeBody, PROTOCOL_MAJOR, PROTOCOL_MINOR } from '../../src/transport/schema';
import { SECRET, TestCluster } from './harness';

const CURRENT = `${PROTOCOL_MAJOR}.${PROTOCOL_MINOR}`;
const PREVIOUS = `${PROTOCOL_MAJOR}.${PROTOCOL_MINOR - 1}`;

test('a node speaking the previous protocol minor joins, can be master, and shows its version; restarted on the current one, the mix is gone', async () => {
  const c = await TestCluster.start(undefined, { start: false });
  try {
    c.startNode('n1', { KOI_PROTOCOL_MINOR: String(PROTOCOL_MINOR - 1) });
    c.startNode('n2');
    c.startNode('n3');
    // n1 outranks the others: once settled it leads (a late n1 takes over), the newer ones following it.
    const s = await c.waitFor('settled under the older n1', (x) => c.settled(x) && x.cluster.leader === 'n1' && x.nodes.every((n) => n.reachable && n.version !== null), 30_000);
    const v = Object.fromEntries(s.nodes.map((n) => [n.name, n.version]));
    assert.equal(v.n1!.protocol, PREVIOUS);
    assert.equal(v.n2!.protocol, CURRENT);
    assert.equal(v.n3!.protocol, CURRENT);
    assert.ok(s.nodes.every((n) => n.version!.compatible && n.version!.software !== ''), JSON.stringify(v));
    const text = await c.koi(['status'], 'n2');
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /VERSION/);
    assert.match(text.stdout, new RegExp(`mixed protocol versions \\(n1 ${PREVIOUS.replace('.', '\\.')}`));
    // A switchover across versions: the older node's leadership promotes a newer runner and back.
    const other = s.cluster.master === 'n2' ? 'n3' : 'n2';
    const r = await c.koi(['promote', other], 'n3');
    assert.equal(r.code, 0, r.stderr);
    await c.waitFor(`${other} master`, (x) => c.settled(x) && x.cluster.master === other, 15_000);
    assert.doesNotMatch(c.log('n1') + c.log('n2') + c.log('n3'), /incompatible protocol|malformed message/);

    // Upgrade n1: stop it, start it on the current minor.
    const exited = new Promise((res) => c.node('n1').proc!.once('exit', res));
    c.node('n1').proc!.kill('SIGTERM');
    await exited;
    c.startNode('n1');
    const after = await c.waitFor('every node on the current minor', (x) => c.settled(x) && x.nodes.every((n) => n.reachable && n.version?.protocol === CURRENT), 20_000);
    assert.equal(after.nodes.length, 3);
    const text2 = await c.koi(['status'], 'n2');
    assert.doesNotMatch(text2.stdout, /mixed protocol versions/);
  } finally {
    await c.stop();
  }
});

test('a peer of another protocol major is refused with one clear log line and shown as incompatible', async () => {
  const c = await TestCluster.start(undefined, { start: false });
  try {
    c.startNode('n2');
    c.startNode('n3');
    // n2 leads (it outranks n3; a takeover may take the settle period): the
    // status it answers is its own view, which is where the refusal shows.
    await c.waitFor('n2 and n3 settled under n2', (x) => c.settled(x) && x.cluster.leader === 'n2', 30_000);
    // "n1" from a future release: protocol 2.0. Its hello is signed correctly for its own rule.
    const body = encodeBody(bodyType('PeerFrame'), { hello: { name: 'n1', elector: true, runner: true, priority: 3, softwareVersion: '9.0.0', protocol: { major: 2, minMinor: 0, maxMinor: 0 } } });
    const client = new (PeerClient())(`127.0.0.1:${c.node('n2').port}`, grpc.credentials.createInsecure());
    const link = (client as unknown as { Link(): grpc.ClientDuplexStream<unknown, unknown> }).Link();
    const ended = new Promise<grpc.ServiceError | null>((res) => {
      link.on('data', () => undefined);
      link.on('error', (e: grpc.ServiceError) => res(e));
      link.on('end', () => res(null));
    });
    for (let i = 0; i < 5; i++) {
      const ts = Date.now();
      const nonce = randomBytes(12);
      const mac = createHmac('sha256', SECRET).update(`koi.v1\nn1\n13\n${ts}\n${nonce.toString('hex')}\n2.0\n`).update(body).digest();
      link.write({ from: 'n1', cluster: 13, ts_ms: ts, nonce, body, mac, protocol_major: 2, protocol_minor: 0 });
    }
    const err = await ended;
    client.close();
    assert.equal(err?.code, grpc.status.FAILED_PRECONDITION, String(err));
    assert.match(err!.details, /^incompatible protocol 2\.0 from n1: this node speaks 1\.0–1\.\d/);
    const lines = c.log('n2').split('\n').filter((l) => /refused n1: incompatible protocol 2\.0/.test(l));
    assert.equal(lines.length, 1, `one log line per sender and minute:\n${lines.join('\n')}`);
    const s = (await c.status('n2'))!;
    const n1 = s.nodes.find((n) => n.name === 'n1')!;
    assert.deepEqual(n1.version, { software: '', protocol: '2.0', compatible: false });
    const text = await c.koi(['status'], 'n2');
    assert.match(text.stdout, /n1 speaks protocol 2\.0, which this cluster cannot talk to/);
    assert.ok(c.settled(s), 'the others carry on');
  } finally {
    await c.stop();
  }
});
