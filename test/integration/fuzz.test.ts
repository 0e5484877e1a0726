// Property tests (fast-check) against real koinodes: correctly signed
// envelopes whose bodies are random bytes, PeerFrame / AdminRequest shaped
// objects with arbitrary values, or mutations of valid bodies, sent on
// Peer.Link, Admin.Call and Admin.Watch. Whatever arrives, every koinode stays
// up and keeps answering; a body that is invalid (by construction, and
// confirmed by the codec in this process) is refused with INVALID_ARGUMENT
// (PERMISSION_DENIED from a sender outside the cluster) and changes nothing;
// refusals are logged at most once a minute per sender and reason. Valid
// random frames and requests come last and only liveness is checked: they
// may legitimately change the cluster's state.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import fc from 'fast-check';
import { mutate, mutations } from '../mutate';
import type { StatusJson } from '../../src/admin-types';
import type { Message } from '../../src/core/types';
import type { Envelope } from '../../src/transport/auth';
import { decodeAdminRequest, encodeAdminRequest } from '../../src/transport/admin-codec';
import { decodePeer, encodePeer, RUNNER_STATES, SCRIPT_EVENTS, SERVICE_STATES, type PeerPayload } from '../../src/transport/peer-codec';
import { bodyType, encodeBody, TO_OBJECT } from '../../src/transport/schema';
import { AdminClientCtor, PeerClient } from '../../src/transport/wire';
import { SECRET, TestCluster } from './harness';

const CLUSTER_ID = 13;
const NAMES = ['n1', 'n2', 'n3'];
const KNOWN: ReadonlySet<string> = new Set(NAMES);
const RUNS = Number(process.env.KOI_FC_RUNS ?? 100);
const SEED = process.env.KOI_FC_SEED === undefined ? undefined : Number(process.env.KOI_FC_SEED);
const fcOpts = (numRuns: number) => ({ numRuns, ...(SEED !== undefined ? { seed: SEED } : {}), maxSkipsPerRun: 1000, endOnFailure: true });

/** An envelope with a correct MAC over whatever it is given. */
function signed(from: string, body: Buffer, tsMs = Date.now(), major = 1, minor = 1): Envelope {
  const nonce = randomBytes(12);
  const mac = createHmac('sha256', SECRET).update(`koi.v1\n${from}\n${CLUSTER_ID}\n${tsMs}\n${nonce.toString('hex')}\n${major}.${minor}\n`).update(body).digest();
  return { from, cluster: CLUSTER_ID, ts_ms: tsMs, nonce, body, mac, protocol_major: major, protocol_minor: minor };
}

// ---- one reused channel per node and service (so an admin caller is one sender) ------

let c: TestCluster;
const peerClients = new Map<string, grpc.Client>();
const adminClients = new Map<string, grpc.Client>();

function cachedClient(cache: Map<string, grpc.Client>, ctor: () => grpc.ServiceClientConstructor, node: string): grpc.Client {
  let cl = cache.get(node);
  if (cl === undefined) {
    cl = new (ctor())(`127.0.0.1:${c.node(node).port}`, grpc.credentials.createInsecure());
    cache.set(node, cl);
  }
  return cl;
}

const peerClient = (node: string): grpc.Client => cachedClient(peerClients, PeerClient, node);
const adminClient = (node: string): grpc.Client => cachedClient(adminClients, AdminClientCtor, node);

interface Outcome {
  /** The gRPC status the far side ended the call with (OK when it answered or kept the stream open). */
  code: number;
  details: string;
  /** Envelopes received before we hung up. */
  received: number;
}

/**
 * Open a peer link to `to`, send one envelope, and wait for the far side to
 * end it. A link that it keeps (a valid frame) is held `holdMs` or until its
 * first envelope (its hello), then cancelled: that is reported as OK.
 */
function peerSend(to: string, env: Envelope, holdMs = 3000): Promise<Outcome> {
  const link = (peerClient(to) as unknown as { Link(): grpc.ClientDuplexStream<Envelope, Envelope> }).Link();
  return new Promise((resolve) => {
    let received = 0;
    let settled = false;
    const done = (o: Outcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(t);
      resolve(o);
      link.cancel();
    };
    const kept = () => done({ code: grpc.status.OK, details: 'kept the link', received });
    const t = setTimeout(kept, holdMs);
    link.on('data', () => {
      received++;
      kept();
    });
    link.on('error', (e: grpc.ServiceError) => done({ code: e.code, details: e.details, received }));
    link.on('end', () => done({ code: grpc.status.OK, details: 'ended', received }));
    link.write(env);
  });
}

function adminCall(node: string, env: Envelope): Promise<Outcome> {
  return new Promise((resolve) => {
    (adminClient(node) as unknown as { Call(e: Envelope, o: grpc.CallOptions, cb: (err: grpc.ServiceError | null) => void): void }).Call(env, { deadline: Date.now() + 10_000 }, (err) =>
      resolve(err === null ? { code: grpc.status.OK, details: 'answered', received: 1 } : { code: err.code, details: err.details, received: 0 }),
    );
  });
}

/** Admin.Watch: the status it ended with, or OK once a first event came (then cancelled). */
function adminWatch(node: string, env: Envelope): Promise<Outcome> {
  const call = (adminClient(node) as unknown as { Watch(e: Envelope): grpc.ClientReadableStream<Envelope> }).Watch(env);
  return new Promise((resolve) => {
    let settled = false;
    const done = (o: Outcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(t);
      resolve(o);
      call.cancel();
    };
    const t = setTimeout(() => done({ code: -1, details: 'no answer and no event within 5 s', received: 0 }), 5000);
    call.on('data', () => done({ code: grpc.status.OK, details: 'streaming', received: 1 }));
    call.on('error', (e: grpc.ServiceError) => done({ code: e.code, details: e.details, received: 0 }));
    call.on('end', () => done({ code: grpc.status.OK, details: 'ended', received: 0 }));
  });
}

// ---- the cluster's state, and that everyone is alive ---------------------------------------

type Snapshot = Pick<StatusJson['cluster'], 'epoch' | 'leader' | 'master' | 'target' | 'manualMaster' | 'maintenance'>;
const snap = (s: StatusJson): Snapshot => ({ epoch: s.cluster.epoch, leader: s.cluster.leader, master: s.cluster.master, target: s.cluster.target, manualMaster: s.cluster.manualMaster, maintenance: s.cluster.maintenance });

function assertProcessesAlive(when: string): void {
  for (const n of c.nodes) assert.ok(n.proc !== null && n.proc.exitCode === null && n.proc.signalCode === null, `koinode ${n.name} exited ${when} (exit ${n.proc?.exitCode}); log tail:\n${c.log(n.name).split('\n').slice(-20).join('\n')}`);
}

async function assertAnswering(when: string): Promise<StatusJson[]> {
  assertProcessesAlive(when);
  const out: StatusJson[] = [];
  for (const n of NAMES) {
    const r = await c.koi(['status', '--json', '-t', '5'], n);
    assert.equal(r.code, 0, `koi status through ${n} got no answer ${when}: ${r.stderr}`);
    out.push(JSON.parse(r.stdout) as StatusJson);
  }
  return out;
}

/** Same leader, epoch, master and switches on every node, and settled. */
async function assertUnchanged(s0: Snapshot, when: string): Promise<void> {
  for (const s of await assertAnswering(when)) {
    assert.deepEqual(snap(s), s0, `the cluster's state changed ${when} (answered by ${s.answeredBy})`);
    assert.ok(c.settled(s), `not settled ${when}`);
    assert.ok(s.nodes.every((n) => n.reachable), `a node became unreachable ${when}: ${JSON.stringify(s.nodes.map((n) => [n.name, n.reachable]))}`);
  }
}

/** Lines of a node's log that refuse `sender` (a regexp source). */
function refusals(node: string, sender: string): string[] {
  return c.log(node).split('\n').filter((l) => new RegExp(`refused ${sender}: `).test(l));
}

// ---- arbitraries ------------------------------------------------------------------------

const known = fc.constantFrom(...NAMES);
const nodeName = fc.oneof(known, fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._-]{0,20}$/));
const count = fc.oneof(fc.nat({ max: 1000 }), fc.maxSafeNat());
const smallCount = fc.nat({ max: 1000 });
/** A sequence number or version where -1 means none yet. */
const orNone = (n: fc.Arbitrary<number>) => fc.oneof(fc.constant(-1), n);
const time = fc.oneof(fc.integer({ min: -1e6, max: 1e9 }), fc.double({ min: -9.99e14, max: 9.99e14, noNaN: true, noDefaultInfinity: true }));
const duration = fc.double({ min: Number.MIN_VALUE, max: 86_400_000, noNaN: true, noDefaultInfinity: true });
const text = (max: number) => fc.fullUnicodeString({ maxLength: Math.min(max, 20) }).filter((s) => s.length <= max);
const nul = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: null });

const failure = fc.record({
  wallMs: time,
  node: nodeName,
  service: text(255),
  event: fc.constantFrom(...SCRIPT_EVENTS, 'confirm-down' as const),
  exitCode: nul(fc.integer({ min: -1, max: 255 })),
  signal: nul(text(32)),
  output: fc.array(text(100), { maxLength: 2 }),
});

/** A valid ClusterState with its counts drawn from `n`. */
const stateOf = (n: fc.Arbitrary<number>) =>
  fc.record({
    versionEpoch: n,
    versionSeq: n,
    master: nul(known),
    masterEpoch: n,
    manualMaster: fc.boolean(),
    target: nul(known),
    maintenance: fc.boolean(),
    frozenHolders: fc.array(nodeName, { maxLength: 2 }),
    stopped: fc.array(nodeName, { maxLength: 2 }),
    recoverTokens: fc.dictionary(nodeName, n, { maxKeys: 2, noNullPrototype: true }),
    failures: fc.array(failure, { maxLength: 2 }),
  });

const report = fc.record({
  state: fc.constantFrom(...RUNNER_STATES),
  holding: fc.boolean(),
  promotable: fc.boolean(),
  failed: fc.boolean(),
  failcount: fc.nat({ max: 0xffff_ffff }),
  lastFailureAgoMs: nul(time),
  nextRecoveryInMs: nul(time),
  recoveryWaitReason: nul(text(1024)),
  disabled: fc.boolean(),
  uptimeMs: time,
  services: fc.array(
    fc.record({
      name: fc.stringMatching(/^[a-z0-9-]{1,20}$/),
      priority: nul(fc.integer({ min: -1_000_000, max: 1_000_000 })),
      state: fc.constantFrom(...SERVICE_STATES),
      running: nul(fc.constantFrom(...SCRIPT_EVENTS)),
      failed: fc.boolean(),
      notPromotable: fc.boolean(),
      disabled: fc.boolean(),
    }),
    { maxLength: 2 },
  ),
  pendingFailures: fc.array(failure, { maxLength: 1 }),
});

/** A valid core Message; `n` draws its epochs and sequence numbers. */
const messageOf = (n: fc.Arbitrary<number>): fc.Arbitrary<Message> =>
  fc.oneof(
    fc.record({ kind: fc.constant('vote-req' as const), epoch: n, takeover: fc.boolean(), preVote: fc.boolean(), windowMs: duration, rescue: fc.boolean() }, { requiredKeys: ['kind', 'epoch', 'takeover', 'preVote'] }),
    fc.record({
      kind: fc.constant('vote' as const),
      epoch: n,
      preVote: fc.boolean(),
      granted: fc.boolean(),
      outranked: fc.boolean(),
      lastAckAgoMs: time,
      state: nul(stateOf(n)),
      nowMs: time,
      incarnation: n,
    }),
    fc.record(
      {
        kind: fc.constant('heartbeat' as const),
        epoch: n,
        seq: n,
        sentMs: time,
        master: nul(known),
        masterEpoch: n,
        grant: nul(fc.record({ echoMs: time, incarnation: n, leaseMs: duration, demoteMs: duration }, { requiredKeys: ['echoMs', 'incarnation'] })),
        state: nul(stateOf(n)),
        stateVersionEpoch: n,
        stateVersionSeq: n,
        commitVersionEpoch: orNone(n),
        commitVersionSeq: orNone(n),
        windowMs: duration,
        quorate: fc.boolean(),
        reach: fc.array(known, { maxLength: 3 }),
      },
      { requiredKeys: ['kind', 'epoch', 'seq', 'sentMs', 'master', 'masterEpoch', 'grant', 'state', 'stateVersionEpoch', 'stateVersionSeq', 'commitVersionEpoch', 'commitVersionSeq'] },
    ),
    fc.record({
      kind: fc.constant('ack' as const),
      epoch: n,
      seq: orNone(n),
      echoSentMs: fc.oneof(time, fc.constant(-Infinity)),
      nowMs: time,
      incarnation: n,
      stateVersionEpoch: n,
      stateVersionSeq: n,
      report: nul(report),
    }),
  );

const helloOf = (name: fc.Arbitrary<string>): fc.Arbitrary<PeerPayload> =>
  fc.record({ name, elector: fc.boolean(), runner: fc.boolean(), priority: fc.integer({ min: -1_000_000, max: 1_000_000 }), sw: text(64), wd: fc.constantFrom('off', 'auto', 'required', '') }).map((h) => ({
    type: 'hello' as const,
    info: { name: h.name, elector: h.elector, runner: h.runner, priority: h.priority },
    extras: { softwareVersion: h.sw, protocol: { major: 1, minMinor: 0, maxMinor: 1 }, watchdogMode: h.wd },
  }));

/** A valid frame as protobufjs's plain object (the shape encodeBody takes). */
const FRAME = () => bodyType('PeerFrame');
const asObject = (body: Buffer): Record<string, any> => FRAME().toObject(FRAME().decode(body), { ...TO_OBJECT, oneofs: false, defaults: false }) as Record<string, any>;

/** Values a codec finds hard: huge, negative, NaN/Infinity, very long, wrong types. */
const wild: fc.Arbitrary<unknown> = fc.oneof(
  fc.double(),
  fc.integer(),
  fc.constantFrom(-1, 2 ** 31, 2 ** 32, 2 ** 53 + 2, 2 ** 64, 1e300, -0, NaN, Infinity, -Infinity, '18446744073709551615', '-1', 'NaN', '', null, true, false),
  fc.string({ maxLength: 20 }),
  fc.constantFrom('x'.repeat(9000), 'n1', 'intruder', '../n2', 'RUNNER_STATE_MASTER', 'SERVICE_STATE_UNSPECIFIED', 99, -7),
  fc.array(fc.oneof(fc.string({ maxLength: 5 }), fc.integer()), { maxLength: 3 }),
  fc.dictionary(fc.constantFrom('names', 'epoch', 'bogus', 'name', 'state'), fc.oneof(fc.integer(), fc.string({ maxLength: 5 })), { maxKeys: 2, noNullPrototype: true }),
);

/**
 * One change that makes a frame invalid whatever else it holds: each a field
 * check of peer-codec.ts / fields.ts. `kind` is the frame's oneof member.
 */
type Poison = (f: Record<string, any>) => string;
const LONG = 'y'.repeat(9000);
const badTime = fc.constantFrom(NaN, Infinity, -Infinity, 1e15, -1e15, 1e300);
const badDuration = fc.constantFrom(0, -1, NaN, Infinity, 1e10, 1e300, -0.5);
// (not -1: protobufjs's fromObject writes a negative uint64 number as 0)
const badCount = fc.constantFrom(2 ** 53 + 2, 2 ** 60, '18446744073709551615', '-5');
// sint64 fields where -1 means none yet (heartbeat.commit_version_*, ack.seq)
const badCountOrNone = fc.constantFrom(-2, -1000, 2 ** 53 + 2, 2 ** 60);
const badName = fc.constantFrom('intruder', '../n2', '', ' n1', 'n1 ', 'x'.repeat(64), '_n1', 'n4');
/** Not node names at all: wrong wherever a name goes (an unknown but well-formed name is wrong only in a hello). */
const malformedName = badName.filter((v) => v !== 'intruder' && v !== 'n4');
const badEnum = fc.constantFrom(0, 42, -1, 2 ** 31 - 1);

function ensure(o: Record<string, any>, k: string, init: () => Record<string, any>): Record<string, any> {
  if (o[k] === null || o[k] === undefined || typeof o[k] !== 'object') o[k] = init();
  return o[k];
}
const minimalState = () => ({ versionEpoch: 1, versionSeq: 1, masterEpoch: 0, frozenHolders: [], stopped: [], recoverTokens: {}, failures: [] });
const minimalReport = () => ({ state: 'RUNNER_STATE_LIVE', uptimeMs: 1, services: [], pendingFailures: [] });
const minimalFailure = () => ({ wallMs: 1, node: 'n1', service: 's', event: 'FAILURE_EVENT_START', output: [] });
const minimalService = () => ({ name: 's', state: 'SERVICE_STATE_STARTED' });

const statePoison: fc.Arbitrary<(s: Record<string, any>) => string> = fc.oneof(
  malformedName.map((v) => (s: Record<string, any>) => ((s.master = v), `state.master=${JSON.stringify(v)}`)),
  malformedName.map((v) => (s: Record<string, any>) => ((s.target = v), `state.target=${JSON.stringify(v)}`)),
  badCount.map((v) => (s: Record<string, any>) => ((s.versionEpoch = v), `state.versionEpoch=${v}`)),
  badCount.map((v) => (s: Record<string, any>) => ((s.masterEpoch = v), `state.masterEpoch=${v}`)),
  fc.constantFrom('', '../x', 'a b', '-n1').map((v) => (s: Record<string, any>) => ((s.frozenHolders = ['n1', v]), `state.frozenHolders has ${JSON.stringify(v)}`)),
  fc.constant((s: Record<string, any>) => ((s.stopped = Array.from({ length: 257 }, (_, i) => `n${i}`)), 'state.stopped with 257 names')),
  fc.constantFrom('bad/key', '', '..').map((k) => (s: Record<string, any>) => ((s.recoverTokens = { n1: 1, [k]: 2 }), `state.recoverTokens key ${JSON.stringify(k)}`)),
  badCount.map((v) => (s: Record<string, any>) => ((s.recoverTokens = { n2: v }), `state.recoverTokens.n2=${v}`)),
  fc.constantFrom('', '/x', '-').map((v) => (s: Record<string, any>) => ((s.designated = { names: [v] }), `state.designated has ${JSON.stringify(v)}`)),
  fc
    .oneof(
      badEnum.map((v) => (f: Record<string, any>) => ((f.event = v), `event=${v}`)),
      fc.constantFrom(256, -2, 1000).map((v) => (f: Record<string, any>) => ((f.exitCode = v), `exitCode=${v}`)),
      badTime.map((v) => (f: Record<string, any>) => ((f.wallMs = v), `wallMs=${v}`)),
      fc.constant((f: Record<string, any>) => ((f.signal = 'S'.repeat(33)), 'signal of 33 chars')),
      fc.constant((f: Record<string, any>) => ((f.service = 's'.repeat(256)), 'service of 256 chars')),
      fc.constant((f: Record<string, any>) => ((f.output = Array.from({ length: 201 }, () => 'l')), 'output of 201 lines')),
      fc.constant((f: Record<string, any>) => ((f.output = [LONG]), 'an output line of 9000 chars')),
      badName.filter((v) => v !== 'intruder' && v !== 'n4').map((v) => (f: Record<string, any>) => ((f.node = v), `node=${JSON.stringify(v)}`)),
    )
    .map((p) => (s: Record<string, any>) => {
      const f = minimalFailure();
      s.failures = [...(Array.isArray(s.failures) ? s.failures : []), f];
      return `state.failures[last].${p(f)}`;
    }),
);

const reportPoison: fc.Arbitrary<(r: Record<string, any>) => string> = fc.oneof(
  badEnum.map((v) => (r: Record<string, any>) => ((r.state = v), `report.state=${v}`)),
  fc.constantFrom(5, 42, -3).map((v) => (r: Record<string, any>) => ((r.watchdog = v), `report.watchdog=${v}`)),
  badTime.map((v) => (r: Record<string, any>) => ((r.uptimeMs = v), `report.uptimeMs=${v}`)),
  badTime.map((v) => (r: Record<string, any>) => ((r.lastFailureAgoMs = v), `report.lastFailureAgoMs=${v}`)),
  fc.constant((r: Record<string, any>) => ((r.recoveryWaitReason = 'r'.repeat(1025)), 'report.recoveryWaitReason of 1025 chars')),
  fc
    .oneof(
      fc.constantFrom('', 'a/b', 'nul\0', 'x'.repeat(256)).map((v) => (s: Record<string, any>) => ((s.name = v), `name=${JSON.stringify(v.slice(0, 20))}(${v.length})`)),
      badEnum.map((v) => (s: Record<string, any>) => ((s.state = v), `state=${v}`)),
      fc.constantFrom(7, 99, -1).map((v) => (s: Record<string, any>) => ((s.running = v), `running=${v}`)),
      fc.constantFrom(1_000_001, -1_000_001, 2 ** 31 - 1).map((v) => (s: Record<string, any>) => ((s.priority = v), `priority=${v}`)),
    )
    .map((p) => (r: Record<string, any>) => {
      const s = minimalService();
      r.services = [...(Array.isArray(r.services) ? r.services : []), s];
      return `report.services[last].${p(s)}`;
    }),
  fc.constant((r: Record<string, any>) => ((r.services = Array.from({ length: 1025 }, () => minimalService())), 'report with 1025 services')),
);

const poisonOf: Record<string, fc.Arbitrary<Poison>> = {
  hello: fc.oneof(
    badName.map((v) => (f: Record<string, any>) => ((f.hello.name = v), `hello.name=${JSON.stringify(v)}`)),
    fc.constantFrom(1_000_001, -1_000_001, 2 ** 31 - 1).map((v) => (f: Record<string, any>) => ((f.hello.priority = v), `hello.priority=${v}`)),
    fc.constant((f: Record<string, any>) => ((f.hello.softwareVersion = 'v'.repeat(65)), 'hello.softwareVersion of 65 chars')),
    fc.constant((f: Record<string, any>) => ((f.hello.watchdogMode = 'w'.repeat(17)), 'hello.watchdogMode of 17 chars')),
    fc.constant((f: Record<string, any>) => (delete f.hello.protocol, 'hello without protocol')),
    fc.constant((f: Record<string, any>) => ((f.hello.protocol = { major: 1, minMinor: 2, maxMinor: 1 }), 'hello.protocol min above max')),
    badDuration.filter((v) => v !== 0).map((v) => (f: Record<string, any>) => ((f.hello.masterLeaseMs = v), `hello.masterLeaseMs=${v}`)),
    badDuration.filter((v) => v !== 0).map((v) => (f: Record<string, any>) => ((f.hello.demoteTimeoutMs = v), `hello.demoteTimeoutMs=${v}`)),
  ),
  voteRequest: fc.oneof(
    badCount.map((v) => (f: Record<string, any>) => ((f.voteRequest.epoch = v), `voteRequest.epoch=${v}`)),
    badDuration.map((v) => (f: Record<string, any>) => ((f.voteRequest.windowMs = v), `voteRequest.windowMs=${v}`)),
  ),
  vote: fc.oneof(
    badCount.map((v) => (f: Record<string, any>) => ((f.vote.epoch = v), `vote.epoch=${v}`)),
    badCount.map((v) => (f: Record<string, any>) => ((f.vote.incarnation = v), `vote.incarnation=${v}`)),
    badTime.map((v) => (f: Record<string, any>) => ((f.vote.lastAckAgoMs = v), `vote.lastAckAgoMs=${v}`)),
    badTime.map((v) => (f: Record<string, any>) => ((f.vote.nowMs = v), `vote.nowMs=${v}`)),
    badTime.map((v) => (f: Record<string, any>) => ((f.vote.grantsEndInMs = v), `vote.grantsEndInMs=${v}`)),
    statePoison.map((p) => (f: Record<string, any>) => `vote.${p(ensure(f.vote, 'state', minimalState))}`),
  ),
  heartbeat: fc.oneof(
    badCount.map((v) => (f: Record<string, any>) => ((f.heartbeat.epoch = v), `heartbeat.epoch=${v}`)),
    badCountOrNone.map((v) => (f: Record<string, any>) => ((f.heartbeat.commitVersionSeq = v), `heartbeat.commitVersionSeq=${v}`)),
    badTime.map((v) => (f: Record<string, any>) => ((f.heartbeat.sentMs = v), `heartbeat.sentMs=${v}`)),
    malformedName.map((v) => (f: Record<string, any>) => ((f.heartbeat.master = v), `heartbeat.master=${JSON.stringify(v)}`)),
    malformedName.map((v) => (f: Record<string, any>) => ((f.heartbeat.reach = { names: ['n1', v] }), `heartbeat.reach has ${JSON.stringify(v)}`)),
    badDuration.map((v) => (f: Record<string, any>) => ((f.heartbeat.windowMs = v), `heartbeat.windowMs=${v}`)),
    badDuration.map((v) => (f: Record<string, any>) => ((ensure(f.heartbeat, 'grant', () => ({ echoMs: 1, incarnation: 1 })).leaseMs = v), `heartbeat.grant.leaseMs=${v}`)),
    badTime.map((v) => (f: Record<string, any>) => ((ensure(f.heartbeat, 'grant', () => ({ echoMs: 1, incarnation: 1 })).echoMs = v), `heartbeat.grant.echoMs=${v}`)),
    statePoison.map((p) => (f: Record<string, any>) => `heartbeat.${p(ensure(f.heartbeat, 'state', minimalState))}`),
  ),
  ack: fc.oneof(
    badCountOrNone.map((v) => (f: Record<string, any>) => ((f.ack.seq = v), `ack.seq=${v}`)),
    badTime.map((v) => (f: Record<string, any>) => ((f.ack.nowMs = v), `ack.nowMs=${v}`)),
    badTime.map((v) => (f: Record<string, any>) => ((f.ack.echoSentMs = v), `ack.echoSentMs=${v}`)),
    badDuration.map((v) => (f: Record<string, any>) => ((f.ack.echoWindowMs = v), `ack.echoWindowMs=${v}`)),
    reportPoison.map((p) => (f: Record<string, any>) => `ack.${p(ensure(f.ack, 'report', minimalReport))}`),
  ),
};

/** Up to three wild values at random keys of the frame's message (known field names or not). */
const wildEdits = fc.array(
  fc.tuple(fc.constantFrom('epoch', 'seq', 'sentMs', 'nowMs', 'master', 'reach', 'takeover', 'granted', 'priority', 'elector', 'softwareVersion', 'noSuchField', 'stateVersionSeq', 'incarnation', 'quorate', 'rescue'), wild),
  { maxLength: 3 },
);

/** A PeerFrame that must be refused: a valid frame, wild edits, then one poison. */
const poisonedFrame: fc.Arbitrary<{ body: Buffer; what: string }> = fc
  .oneof(messageOf(count).map((msg): PeerPayload => ({ type: 'msg', msg })), helloOf(known))
  .chain((p) => {
    const obj = asObject(encodePeer(p, 1));
    const kind = Object.keys(obj)[0]!;
    return fc.tuple(fc.constant(obj), fc.constant(kind), wildEdits, poisonOf[kind]!);
  })
  .map(([obj, kind, edits, poison]) => {
    const f = structuredClone(obj);
    for (const [k, v] of edits) f[kind][k] = v;
    const what = `${poison(f)} after ${JSON.stringify(edits.map(([k, v]) => [k, typeof v === 'string' && v.length > 30 ? `${v.slice(0, 10)}…(${v.length})` : v]))}`;
    let body: Buffer | null;
    try {
      body = encodeBody(FRAME(), f);
    } catch {
      body = null; // a wild value protobufjs will not serialize: drawn again
    }
    return { body, what };
  })
  .filter((x): x is { body: Buffer; what: string } => x.body !== null);


/** Why this process's codec refuses `body`, or null when it accepts it. */
function peerRefusal(body: Buffer, from: string): string | null {
  try {
    const p = decodePeer(body, KNOWN);
    if (p.type === 'hello' && p.info.name !== from) return `hello names ${p.info.name}`;
    return null;
  } catch (e) {
    return (e as Error).message;
  }
}

/** Bodies for Peer.Link: random bytes, poisoned frames, mutated valid frames, a missing oneof. */
const peerBody: fc.Arbitrary<{ body: Buffer; what: string; poisoned: boolean }> = fc.oneof(
  { arbitrary: poisonedFrame.map((x) => ({ ...x, poisoned: true })), weight: 4 },
  { arbitrary: fc.uint8Array({ maxLength: 300 }).map((u) => ({ body: Buffer.from(u), what: `random bytes ${Buffer.from(u).toString('hex')}`, poisoned: false })), weight: 2 },
  {
    arbitrary: fc.tuple(fc.oneof(messageOf(count).map((msg): PeerPayload => ({ type: 'msg', msg })), helloOf(known)), mutations).map(([p, ms]) => {
      const body = mutate(encodePeer(p, 1), ms);
      return { body, what: `mutated ${body.toString('hex')}`, poisoned: false };
    }),
    weight: 3,
  },
  { arbitrary: fc.constant({ body: encodeBody(FRAME(), {}), what: 'an empty PeerFrame (no oneof member)', poisoned: true }), weight: 1 },
);

/** Who sends to whom: links the cluster really has (the first name dials), and a stranger. */
const route = fc.constantFrom({ from: 'n1', to: 'n2' }, { from: 'n1', to: 'n3' }, { from: 'n2', to: 'n3' }, { from: 'n2', to: 'n1' }, { from: 'intruder', to: 'n2' }, { from: 'n4', to: 'n1' });

// ---- the tests ------------------------------------------------------------------------

let s0: Snapshot;

before(async () => {
  c = await TestCluster.start();
  // n1 ranks first: once it leads (a Bully takeover may follow the first election), the state is still.
  s0 = snap(await c.waitFor('settled under n1, all up', (x) => c.settled(x) && x.cluster.leader === 'n1' && x.nodes.every((n) => n.reachable), 20_000));
});

after(async () => {
  for (const cl of [...peerClients.values(), ...adminClients.values()]) cl.close();
  await c?.stop();
});

test('Peer.Link: invalid frames from a peer or a stranger are refused, and no koinode dies or changes its state', async () => {
  const seen = { sent: 0, poisoned: 0, random: 0, byCode: new Map<number, number>() };
  await fc.assert(
    fc.asyncProperty(route, peerBody, async (r, b) => {
      const why = peerRefusal(b.body, r.from);
      if (b.poisoned) assert.ok(why !== null, `codec bug: this process's decodePeer accepts an invalid frame (${b.what}): ${b.body.toString('hex')}`);
      fc.pre(why !== null); // a mutation or random bytes that happen to be valid: sent in the last test
      const o = await peerSend(r.to, signed(r.from, b.body));
      seen.sent++;
      if (b.poisoned) seen.poisoned++;
      seen.byCode.set(o.code, (seen.byCode.get(o.code) ?? 0) + 1);
      // A stranger, or a peer on a link only the other side may open, is
      // refused before its frame is even decoded.
      const mayDial = KNOWN.has(r.from) && r.from < r.to;
      const want = mayDial ? grpc.status.INVALID_ARGUMENT : grpc.status.PERMISSION_DENIED;
      assert.equal(o.code, want, `${r.from} → ${r.to}: ${b.what} (${why}) was answered ${o.code} ${o.details}`);
      assert.equal(o.received, 0, 'nothing is sent back on a refused link');
      if (mayDial) assert.match(o.details, /^malformed message: |^hello from \S+ names /);
    }),
    fcOpts(RUNS),
  );
  assert.ok(seen.poisoned > RUNS / 4, `only ${seen.poisoned} poisoned frames were sent`);
  await assertUnchanged(s0, 'after the invalid peer frames');
});

/** AdminRequest bodies that must be refused: each breaks one check of admin-codec.ts. */
const badAdminRequest: fc.Arbitrary<{ obj: Record<string, unknown>; what: string }> = fc.oneof(
  fc.tuple(fc.constantFrom('promote', 'start', 'stop', 'recover'), badName.filter((v) => v !== 'intruder' && v !== 'n4')).map(([k, v]) => ({ obj: { command: { [k]: { node: v } } }, what: `${k} ${JSON.stringify(v)}` })),
  fc.tuple(fc.constantFrom('', '../n1', 'a b', 'x'.repeat(64)), fc.oneof(time, badTime)).map(([v, t]) => ({ obj: { command: { confirmDown: { node: v, wallMs: t } } }, what: `confirm-down ${JSON.stringify(v)} at ${t}` })),
  fc.tuple(known, badTime).map(([v, t]) => ({ obj: { command: { confirmDown: { node: v, wallMs: t } } }, what: `confirm-down ${v} at ${t}` })),
  fc.constantFrom('', '../n1', '-n1').map((v) => ({ obj: { reconfigure: { node: v } }, what: `reconfigure ${JSON.stringify(v)}` })),
  fc.constant({ obj: { command: {} }, what: 'a command of no kind' }),
  fc.constant({ obj: {}, what: 'a request of no op' }),
);

const goodAdminOp = fc.constantFrom({ op: 'status' as const }, { op: 'local' as const }, { op: 'failures' as const }, { op: 'watch' as const });

/** Bodies for Admin.Call and Admin.Watch. */
const adminBody: fc.Arbitrary<{ body: Buffer; what: string; poisoned: boolean }> = fc.oneof(
  { arbitrary: badAdminRequest.map(({ obj, what }) => ({ body: encodeBody(bodyType('AdminRequest'), obj), what, poisoned: true })), weight: 3 },
  { arbitrary: fc.uint8Array({ maxLength: 200 }).map((u) => ({ body: Buffer.from(u), what: `random bytes ${Buffer.from(u).toString('hex')}`, poisoned: false })), weight: 2 },
  {
    arbitrary: fc
      .tuple(
        fc.oneof(
          goodAdminOp,
          badAdminRequest.map(({ obj }) => obj),
        ),
        mutations,
      )
      .map(([r, ms]) => {
        const base = 'op' in r ? encodeAdminRequest(r as Parameters<typeof encodeAdminRequest>[0]) : encodeBody(bodyType('AdminRequest'), r);
        const body = mutate(base, ms);
        return { body, what: `mutated ${body.toString('hex')}`, poisoned: false };
      }),
    weight: 3,
  },
);

/** What this process's codec makes of an admin body: refused (why), or the op. */
function adminVerdict(body: Buffer): { refused: string } | { op: string } {
  try {
    return { op: decodeAdminRequest(body).op };
  } catch (e) {
    return { refused: (e as Error).message };
  }
}

test('Admin.Call and Admin.Watch: invalid requests are refused with INVALID_ARGUMENT, and nothing changes', async () => {
  let sent = 0;
  await fc.assert(
    fc.asyncProperty(known, adminBody, fc.boolean(), async (node, b, watch) => {
      const v = adminVerdict(b.body);
      if (b.poisoned) assert.ok('refused' in v, `codec bug: decodeAdminRequest accepts an invalid request (${b.what}) as ${JSON.stringify(v)}: ${b.body.toString('hex')}`);
      fc.pre('refused' in v);
      sent++;
      const o = watch ? await adminWatch(node, signed('koi', b.body)) : await adminCall(node, signed('koi', b.body));
      assert.equal(o.code, grpc.status.INVALID_ARGUMENT, `${watch ? 'Watch' : 'Call'} to ${node}: ${b.what} (${(v as { refused: string }).refused}) was answered ${o.code} ${o.details}`);
      assert.match(o.details, /^malformed message: /);
    }),
    fcOpts(RUNS),
  );
  assert.ok(sent > RUNS / 2, `only ${sent} invalid requests were sent`);
  // A valid request that is not a watch, on Admin.Watch: refused too.
  const status = await adminWatch('n2', signed('koi', encodeAdminRequest({ op: 'status' })));
  assert.equal(status.code, grpc.status.INVALID_ARGUMENT, status.details);
  await assertUnchanged(s0, 'after the invalid admin requests');
});

test('a refusal is logged at most once a minute per sender and reason', () => {
  // The two tests above sent hundreds of refused envelopes in well under a minute.
  for (const n of NAMES) {
    const log = c.log(n);
    const lines = log.split('\n').filter((l) => / refused /.test(l));
    // sender and the reason of AuthError: the message's first words tell it apart well enough here.
    const keys = new Map<string, number>();
    for (const l of lines) {
      const m = /refused (\S+): (.*)$/.exec(l);
      assert.ok(m !== null, l);
      const [, sender, message] = m;
      // The AuthError reason the daemon's rate limit is keyed by, told from its message.
      const reason = /^malformed|^hello from .* names|^Admin\.Watch takes/.test(message!)
        ? 'malformed'
        : /is not in \[cluster\]|opened a link|sent on the link of/.test(message!)
          ? 'unknown-peer'
          : /off our clock|replayed/.test(message!)
            ? 'replay'
            : /failed authentication/.test(message!)
              ? 'secret'
              : /incompatible protocol/.test(message!)
                ? 'version'
                : /is for cluster/.test(message!)
                  ? 'cluster'
                  : message!;
      const key = `${sender} ${reason}`;
      keys.set(key, (keys.get(key) ?? 0) + 1);
    }
    for (const [k, nLines] of keys) assert.ok(nLines <= 1, `${n} logged ${nLines} refusals of ${k} within a minute:\n${lines.join('\n')}`);
    assert.ok(lines.length <= 10, `${n} logged ${lines.length} refusals:\n${lines.slice(0, 20).join('\n')}`);
  }
  assert.equal(refusals('n2', 'n1').length, 1, 'n2 logged the malformed frames of n1 once');
  assert.equal(refusals('n2', 'intruder').length, 1, 'n2 logged the stranger once');
});

/** One Peer.Link with one envelope, held `holdMs` (or until refused). */
function sendValid(from: string, to: string, msg: Message): Promise<Outcome> {
  return peerSend(to, signed(from, encodePeer({ type: 'msg', msg }, 1)), 300);
}

const bareHeartbeat = (epoch: number): Message => ({
  kind: 'heartbeat', epoch, seq: 1, sentMs: 0, master: null, masterEpoch: 0, grant: null, state: null, stateVersionEpoch: 0, stateVersionSeq: 0, commitVersionEpoch: 0, commitVersionSeq: 0,
});

test(
  'a valid frame on a link its sender must not open (n2 dialing n1) is refused and changes nothing',
  async () => {
    const before = snap((await c.status('n1'))!);
    const o = await sendValid('n2', 'n1', bareHeartbeat(before.epoch + 1000));
    assert.equal(o.code, grpc.status.PERMISSION_DENIED, o.details);
    await new Promise((r) => setTimeout(r, 1500));
    const s = (await c.status('n1'))!;
    assert.ok(s.cluster.epoch < before.epoch + 1000, `the refused heartbeat moved the epoch from ${before.epoch} to ${s.cluster.epoch}`);
  },
);

test('valid random frames and requests: every koinode stays up and answers (its state may change)', async (t) => {
  const outcomes = new Map<string, number>();
  const tally = (k: string) => outcomes.set(k, (outcomes.get(k) ?? 0) + 1);
  // Read-only admin requests, and whatever mutations of them still decode to one.
  await fc.assert(
    fc.asyncProperty(known, fc.oneof(goodAdminOp.map((r) => encodeAdminRequest(r)), fc.tuple(goodAdminOp, mutations).map(([r, ms]) => mutate(encodeAdminRequest(r), ms))), fc.boolean(), async (node, body, watch) => {
      const v = adminVerdict(body);
      fc.pre('op' in v && ['status', 'local', 'failures', 'watch'].includes(v.op));
      const o = watch ? await adminWatch(node, signed('koi', body)) : await adminCall(node, signed('koi', body));
      tally(`admin ${watch ? 'Watch' : 'Call'} ${(v as { op: string }).op}: ${o.code}`);
      if (watch) assert.equal(o.code, (v as { op: string }).op === 'watch' ? grpc.status.OK : grpc.status.INVALID_ARGUMENT, o.details);
      else assert.equal(o.code, grpc.status.OK, o.details);
    }),
    fcOpts(Math.round(RUNS / 2)),
  );
  assertProcessesAlive('after the valid admin requests');
  // Valid frames from the peer that dials (they replace its link for a moment), small epochs and huge ones.
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom({ from: 'n1', to: 'n2' }, { from: 'n1', to: 'n3' }, { from: 'n2', to: 'n3' }),
      fc.oneof(messageOf(smallCount), messageOf(count)).map((msg): PeerPayload => ({ type: 'msg', msg })),
      fc.boolean(),
      async (r, p, greet) => {
        const env = signed(r.from, encodePeer(p, 1));
        if (greet) {
          // A hello first, as a real peer does, then the frame on the same link.
          const link = (peerClient(r.to) as unknown as { Link(): grpc.ClientDuplexStream<Envelope, Envelope> }).Link();
          const o = await new Promise<Outcome>((resolve) => {
            const t = setTimeout(() => resolve({ code: grpc.status.OK, details: 'kept', received: 0 }), 300);
            link.on('error', (e: grpc.ServiceError) => (clearTimeout(t), resolve({ code: e.code, details: e.details, received: 0 })));
            link.on('data', () => undefined);
            link.write(signed(r.from, encodePeer({ type: 'hello', info: { name: r.from, elector: true, runner: true, priority: 1 }, extras: { softwareVersion: 'fuzz', protocol: { major: 1, minMinor: 0, maxMinor: 1 }, watchdogMode: 'off' } }, 1)));
            link.write(env);
          });
          link.cancel();
          tally(`peer hello+${p.type === 'msg' ? p.msg.kind : 'hello'}: ${o.code}`);
          assert.notEqual(o.code, grpc.status.INVALID_ARGUMENT, `a valid frame was refused: ${o.details}`);
        } else {
          const o = await peerSend(r.to, env, 300);
          tally(`peer ${p.type === 'msg' ? p.msg.kind : 'hello'}: ${o.code}`);
          // Without a hello first, a valid frame is refused for that alone.
          if (o.code === grpc.status.INVALID_ARGUMENT) assert.match(o.details, /before its hello$/, `a valid frame was refused: ${o.details}`);
        }
      },
    ),
    fcOpts(Math.round(RUNS / 2)),
  );
  await assertAnswering('after the valid random frames');
  // Not required: a stray authenticated leader at epoch 2^53 - 1 may leave the cluster unable to elect again.
  const settled = await c.waitFor('settled again', (x) => c.settled(x), 10_000).then(
    (s) => `settled again: ${JSON.stringify(snap(s))}`,
    (e: Error) => `not settled again: ${e.message}`,
  );
  t.diagnostic(settled);
  t.diagnostic(`outcomes ${JSON.stringify([...outcomes])}`);
});

// Not tested as a property: a member holding the secret that sends an epoch
// near 2^53 can leave the cluster unable to campaign past it. Members are
// trusted to run koi (docs/PROTOCOL.md, "What the secret does not protect
// against"); the schema's limit only keeps every number exact.
