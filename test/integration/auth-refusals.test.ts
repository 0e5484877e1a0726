// Calls that must be refused and change nothing, sent to real koinodes: a
// timestamp two minutes ahead (outside the ±60 s window) and malformed
// envelopes or payloads that carry a valid MAC. Admin calls go through koi's
// own client or grpc-js; peer links through grpc-js with the project's wire
// definitions, the MAC computed here with node:crypto.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { Authenticator, type Envelope } from '../../src/transport/auth';
import { AdminClient } from '../../src/transport/admin-client';
import { AdminClientCtor, PeerClient } from '../../src/transport/wire';
import { bodyType, encodeBody } from '../../src/transport/schema';
import { SECRET, TestCluster } from './harness';

const CLUSTER_ID = 13;
const AHEAD_MS = 120_000;

/** An envelope with a correct MAC over whatever it is given. */
function signed(from: string, body: Buffer, tsMs = Date.now(), major = 1, minor = 1): Envelope {
  const nonce = randomBytes(12);
  const mac = createHmac('sha256', SECRET).update(`koi.v1\n${from}\n${CLUSTER_ID}\n${tsMs}\n${nonce.toString('hex')}\n${major}.${minor}\n`).update(body).digest();
  return { from, cluster: CLUSTER_ID, ts_ms: tsMs, nonce, body, mac, protocol_major: major, protocol_minor: minor };
}

const frame = (x: Record<string, unknown>) => encodeBody(bodyType('PeerFrame'), x);
const request = (x: Record<string, unknown>) => encodeBody(bodyType('AdminRequest'), x);

const AdminCtor = AdminClientCtor();
const PeerCtor = PeerClient();

/** One Admin.Call with a hand-made envelope: the gRPC error, or null on success. */
function adminCall(port: number, env: Envelope): Promise<grpc.ServiceError | null> {
  const client = new AdminCtor(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  return new Promise((resolve) => {
    (client as unknown as { Call(e: Envelope, o: grpc.CallOptions, cb: (err: grpc.ServiceError | null) => void): void }).Call(env, { deadline: Date.now() + 5000 }, (err) => {
      client.close();
      resolve(err);
    });
  });
}

/** Open a peer link, send one envelope, and return how the far side ended it. */
function peerSend(port: number, env: Envelope): Promise<grpc.ServiceError | null> {
  const client = new PeerCtor(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  const link = (client as unknown as { Link(): grpc.ClientDuplexStream<Envelope, Envelope> }).Link();
  return new Promise((resolve) => {
    const done = (e: grpc.ServiceError | null) => {
      clearTimeout(t);
      client.close();
      resolve(e);
    };
    const t = setTimeout(() => {
      link.cancel();
      done(null);
    }, 5000);
    link.on('data', () => undefined);
    link.on('error', (e: grpc.ServiceError) => done(e));
    link.on('end', () => done(null));
    link.write(env);
  });
}

test('a future timestamp and malformed calls are refused with their gRPC status, logged, and change nothing', async () => {
  const c = await TestCluster.start([{ name: 'n1', priority: 2 }, { name: 'n2', priority: 1 }]);
  try {
    // Under n1, which outranks n2: a late takeover would change the leader mid-test.
    const s0 = await c.waitFor('settled under n1, both up', (x) => c.settled(x) && x.cluster.leader === 'n1' && x.nodes.every((n) => n.reachable), 20_000);
    const p1 = c.node('n1').port;
    const p2 = c.node('n2').port;
    const maintenanceOn = { op: 'command', command: { kind: 'maintenance', on: true } } as const;

    // koi's own client with a clock two minutes fast. The same call with the right clock goes through.
    const fast = new AdminClient(`127.0.0.1:${p1}`, new Authenticator(SECRET, CLUSTER_ID, 'koi', 60_000, () => Date.now() + AHEAD_MS), grpc.credentials.createInsecure());
    await assert.rejects(fast.call(maintenanceOn, 5000), (e: Error) => {
      assert.equal(e.name, 'AuthError');
      assert.match(e.message, new RegExp(`^127\\.0\\.0\\.1:${p1} refused us: message from koi is -12\\ds off our clock \\(window ±60s\\) — check NTP`));
      return true;
    });
    fast.close();
    const right = new AdminClient(`127.0.0.1:${p1}`, new Authenticator(SECRET, CLUSTER_ID, 'koi'), grpc.credentials.createInsecure());
    assert.equal((await right.call({ op: 'status' }, 5000)).ok, true, 'the same client with the right clock is answered');
    right.close();
    assert.match(c.log('n1'), /transport: refused 127\.0\.0\.1: message from koi is -12\ds off our clock/);

    // The same on a peer link: a hello from "n1" two minutes ahead, sent to n2.
    const hello = frame({ hello: { name: 'n1', elector: true, runner: true, priority: 2, softwareVersion: 'x', protocol: { major: 1, minMinor: 0, maxMinor: 1 } } });
    const ahead = await peerSend(p2, signed('n1', hello, Date.now() + AHEAD_MS));
    assert.equal(ahead?.code, grpc.status.UNAUTHENTICATED, String(ahead));
    assert.match(c.log('n2'), /refused n1: message from n1 is -12\ds off our clock/);

    // Malformed admin calls, each with a valid MAC: INVALID_ARGUMENT, and the reason in the log.
    const notProto = await adminCall(p1, signed('koi', Buffer.from('{"op": "command", "command": {"kind": "maintenance", "on": true}}')));
    assert.equal(notProto?.code, grpc.status.INVALID_ARGUMENT, String(notProto));
    assert.match(notProto!.details, /^malformed message: not a koi\.v1\.AdminRequest/);
    const noSender = await adminCall(p1, signed('', request({ command: { maintenance: { on: true } } })));
    assert.equal(noSender?.code, grpc.status.INVALID_ARGUMENT, String(noSender));
    assert.equal(noSender!.details, 'malformed envelope');
    const badNode = await adminCall(p1, signed('koi', request({ command: { promote: { node: '../n2' } } })));
    assert.equal(badNode?.code, grpc.status.INVALID_ARGUMENT, String(badNode));
    assert.equal(badNode!.details, 'malformed message: command.promote.node (not a node name)');
    const noOp = await adminCall(p1, signed('koi', request({})));
    assert.equal(noOp?.code, grpc.status.INVALID_ARGUMENT, String(noOp));
    assert.equal(noOp!.details, 'malformed message: admin request of unknown op');
    assert.match(c.log('n1'), /refused 127\.0\.0\.1: malformed message: not a koi\.v1\.AdminRequest/);
    // Another protocol major: refused as incompatible, whatever the MAC.
    const v2 = await adminCall(p1, signed('koi', request({ command: { maintenance: { on: true } } }), Date.now(), 2, 0));
    assert.equal(v2?.code, grpc.status.FAILED_PRECONDITION, String(v2));
    assert.match(v2!.details, /^incompatible protocol 2\.0 from koi: this node speaks 1\.0–1\.2/);

    // A heartbeat from "n1" at a far higher epoch naming a master that is no node name: refused before the core sees it.
    const hb = frame({ heartbeat: { epoch: 1_000_000, seq: 1, master: '../n2' } });
    const malformed = await peerSend(p2, signed('n1', hb));
    assert.equal(malformed?.code, grpc.status.INVALID_ARGUMENT, String(malformed));
    assert.match(c.log('n2'), /refused n1: malformed message: heartbeat\.master \(not a node name\)/);

    // Nothing changed: no maintenance, same leader, master and epoch, on both nodes.
    for (const via of ['n1', 'n2']) {
      const s = (await c.status(via))!;
      assert.equal(s.cluster.maintenance, false, `maintenance on at ${via}`);
      assert.equal(s.cluster.leader, s0.cluster.leader);
      assert.equal(s.cluster.master, s0.cluster.master);
      assert.equal(s.cluster.epoch, s0.cluster.epoch, `epoch moved at ${via}`);
    }
    assert.ok(c.settled((await c.status('n1'))!), 'the cluster is still settled');
  } finally {
    await c.stop();
  }
});
