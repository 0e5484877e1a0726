// "A client in any language": a koi admin client written from nothing but
// proto/koi.proto and the authentication rule documented in it, with
// generic gRPC and protobuf libraries (@grpc/grpc-js, @grpc/proto-loader,
// protobufjs) and node:crypto. Nothing of koi's own src/ is used by the
// client; the harness only starts a real cluster and runs `koi status --json`
// to compare against.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import * as protobuf from 'protobufjs';
import { SECRET, TestCluster } from './harness';

// ---- the client: proto/koi.proto and the rule in its Envelope comment, nothing else ----

// dist/test/integration → the repository root.
const PROTO = join(__dirname, '..', '..', '..', 'proto', 'koi.proto');
// [cluster] id: the harness writes none, so the documented default.
const CLUSTER_ID = 13;
const MAJOR = 1;
const MINOR = 1;

interface Envelope {
  from: string;
  cluster: number;
  ts_ms: string | number;
  nonce: Buffer;
  body: Buffer;
  mac: Buffer;
  protocol_major: number;
  protocol_minor: number;
}

type AdminStub = grpc.Client & {
  Call(req: Envelope, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: Envelope) => void): grpc.ClientUnaryCall;
  Watch(req: Envelope, opts?: grpc.CallOptions): grpc.ClientReadableStream<Envelope>;
};

const packageDefinition = protoLoader.loadSync(PROTO, { keepCase: true, longs: String, defaults: true });
const loaded = grpc.loadPackageDefinition(packageDefinition) as unknown as {
  koi: { v1: { Admin: new (address: string, creds: grpc.ChannelCredentials) => AdminStub } };
};
const AdminClient = loaded.koi.v1.Admin;

const root = protobuf.loadSync(PROTO);
const AdminRequest = root.lookupType('koi.v1.AdminRequest');
const AdminReply = root.lookupType('koi.v1.AdminReply');
const WatchEvent = root.lookupType('koi.v1.WatchEvent');
const ReplyCode = root.lookupEnum('koi.v1.ReplyCode');

/**
 * HMAC-SHA256 keyed with the cluster secret over the UTF-8 bytes of
 *   "koi.v1\n" + from + "\n" + cluster + "\n" + ts_ms + "\n" + hex(nonce) + "\n"
 *   + protocol_major + "." + protocol_minor + "\n"
 * followed by the body bytes exactly as sent (numbers in decimal).
 */
function macOf(secret: string, e: Omit<Envelope, 'mac'>): Buffer {
  const head = `koi.v1\n${e.from}\n${e.cluster}\n${e.ts_ms}\n${e.nonce.toString('hex')}\n${e.protocol_major}.${e.protocol_minor}\n`;
  return createHmac('sha256', secret).update(Buffer.from(head, 'utf8')).update(e.body).digest();
}

function seal(body: Uint8Array): Envelope {
  const unsigned = { from: 'koi', cluster: CLUSTER_ID, ts_ms: Date.now(), nonce: randomBytes(12), body: Buffer.from(body), protocol_major: MAJOR, protocol_minor: MINOR };
  return { ...unsigned, mac: macOf(SECRET, unsigned) };
}

function macValid(e: Envelope): boolean {
  const expected = macOf(SECRET, e);
  return Buffer.isBuffer(e.mac) && e.mac.length === expected.length && timingSafeEqual(e.mac, expected);
}

function request(payload: Record<string, unknown>): Uint8Array {
  const err = AdminRequest.verify(payload);
  if (err !== null) throw new Error(err);
  return AdminRequest.encode(AdminRequest.create(payload)).finish();
}

const asObject = (t: protobuf.Type, bytes: Buffer) => t.toObject(t.decode(bytes), { longs: String, enums: String, defaults: true, oneofs: true }) as Record<string, any>;

function call(port: number, env: Envelope): Promise<Envelope> {
  const client = new AdminClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  return new Promise((resolve, reject) => {
    client.Call(env, { deadline: Date.now() + 5000 }, (err, res) => {
      client.close();
      if (err !== null) reject(err);
      else resolve(res!);
    });
  });
}

/** Open Admin.Watch and collect the first `n` envelopes (then cancel). */
function watch(port: number, env: Envelope, n: number, timeoutMs = 5000): Promise<Envelope[]> {
  const client = new AdminClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  const stream = client.Watch(env);
  const got: Envelope[] = [];
  return new Promise((resolve, reject) => {
    let done = false;
    const finish = (err: Error | null) => {
      if (done) return;
      done = true;
      clearTimeout(t);
      stream.cancel();
      client.close();
      if (err !== null) reject(err);
      else resolve(got);
    };
    const t = setTimeout(() => finish(new Error(`only ${got.length} of ${n} watch events within ${timeoutMs}ms`)), timeoutMs);
    stream.on('data', (e: Envelope) => {
      got.push(e);
      if (got.length >= n) finish(null);
    });
    stream.on('error', (e: grpc.ServiceError) => finish(e.code === grpc.status.CANCELLED ? null : e));
    stream.on('end', () => finish(got.length >= n ? null : new Error(`watch ended after ${got.length} events`)));
  });
}

// ---- the test ----

test('a client built from proto/koi.proto alone calls Admin.Call and Admin.Watch on a real cluster', async (t) => {
  const c = await TestCluster.start();
  try {
    const s = await c.waitFor('settled, every node reachable', (x) => c.settled(x) && x.nodes.every((n) => n.reachable), 15_000);
    const nodeNames = new Set(c.nodes.map((n) => n.name));

    // Admin.Call status, through a node that is not the leader too (it forwards).
    for (const via of c.nodes.map((n) => n.name)) {
      const reply = await call(c.node(via).port, seal(request({ status: {} })));
      assert.ok(nodeNames.has(reply.from), `reply signed by a node, not ${reply.from}`);
      assert.equal(reply.from, via, 'the node answering signs with its own name');
      assert.equal(reply.cluster, CLUSTER_ID);
      assert.equal(reply.protocol_major, MAJOR);
      assert.equal(reply.protocol_minor, MINOR);
      assert.equal(reply.nonce.length, 12);
      assert.ok(Math.abs(Number(reply.ts_ms) - Date.now()) < 60_000, `reply ts_ms ${reply.ts_ms} within the window`);
      assert.ok(macValid(reply), `the reply from ${via} carries a MAC by the documented rule`);
      // A tampered body no longer verifies.
      assert.ok(!macValid({ ...reply, body: Buffer.concat([reply.body, Buffer.from([0])]) }));

      const r = asObject(AdminReply, reply.body);
      assert.equal(r.ok, true, `ok from ${via}: ${r.error}`);
      assert.equal(r.code, 'REPLY_CODE_OK');
      assert.equal(ReplyCode.values.REPLY_CODE_OK, 1);
      assert.equal(r.data, 'status');
      const view = r.status;
      assert.equal(view.partial, false);
      assert.equal(view.cluster.id, CLUSTER_ID);
      assert.equal(view.cluster.leader ?? null, s.cluster.leader, `leader via ${via}`);
      assert.equal(view.cluster.master ?? null, s.cluster.master, `master via ${via}`);
      assert.deepEqual(view.nodes.map((n: { name: string }) => n.name).sort(), s.nodes.map((n) => n.name).sort());
      assert.deepEqual([...nodeNames].sort(), s.nodes.map((n) => n.name).sort());
      const master = view.nodes.find((n: { name: string }) => n.name === s.cluster.master);
      assert.equal(master.state, 'NODE_STATE_MASTER');
      assert.equal(view.nodes.filter((n: { leader: boolean }) => n.leader).map((n: { name: string }) => n.name).join(), s.cluster.leader);
    }
    // The same answer through the harness's `koi status --json` once more (nothing moved meanwhile).
    const again = await c.status();
    assert.equal(again?.cluster.leader, s.cluster.leader);
    assert.equal(again?.cluster.master, s.cluster.master);

    // A wrong secret is refused: the MAC really is checked.
    const forged = seal(request({ status: {} }));
    forged.mac = macOf('not-the-secret', forged);
    await assert.rejects(call(c.node('n1').port, forged), (e: grpc.ServiceError) => e.code === grpc.status.UNAUTHENTICATED);

    // Admin.Watch: the first event is the node's view, seq 1, signed by the node.
    const [first] = await watch(c.node('n2').port, seal(request({ watch: {} })), 1);
    assert.equal(first!.from, 'n2');
    assert.equal(first!.cluster, CLUSTER_ID);
    assert.ok(macValid(first!), 'the watch event carries a MAC by the documented rule');
    const ev = asObject(WatchEvent, first!.body);
    assert.equal(ev.kind, 'view');
    assert.equal(ev.seq, '1');
    assert.equal(ev.node, 'n2');
    assert.ok(!Number.isNaN(Date.parse(ev.time)), `time is ISO 8601: ${ev.time}`);
    assert.equal(ev.leader ?? null, s.cluster.leader);
    assert.equal(ev.master ?? null, s.cluster.master);

    // proto/koi.proto and docs/PROTOCOL.md: WatchEvent.seq is "per stream,
    // from 1", so a second stream on the same node starts at 1 too.
    await t.test('a second watch stream on the same node also counts from 1', async () => {
      const [second] = await watch(c.node('n2').port, seal(request({ watch: {} })), 1);
      assert.ok(macValid(second!));
      const ev2 = asObject(WatchEvent, second!.body);
      assert.equal(ev2.kind, 'view');
      assert.equal(ev2.seq, '1', 'a second watch stream also counts from 1');
    });
  } finally {
    await c.stop();
  }
});
