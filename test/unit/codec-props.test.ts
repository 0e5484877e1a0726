// Property tests of the peer codec (src/transport/peer-codec.ts) with
// fast-check: every valid core Message, and every hello, survives
// encodePeer → decodePeer unchanged; whatever bytes arrive, decodePeer (and
// decodeAdminRequest) either returns a checked value or throws AuthError —
// never anything else; and whatever it accepts encodes back to the same value.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { mutate, mutation } from '../mutate';
import type { ClusterState, FailureRecord, LeaseGrant, Message, RunnerReport, ServiceReport } from '../../src/core/types';
import { AuthError } from '../../src/errors';
import { decodePeer, encodePeer, RUNNER_STATES, SCRIPT_EVENTS, SERVICE_STATES, WATCHDOG_STATES, type PeerPayload } from '../../src/transport/peer-codec';
import { decodeAdminRequest, encodeAdminRequest } from '../../src/transport/admin-codec';
import { bodyType, encodeBody, PROTOCOL_MINOR } from '../../src/transport/schema';

const KNOWN: ReadonlySet<string> = new Set(['n1', 'n2', 'n3']);
const RUNS = Number(process.env.KOI_FC_RUNS ?? 400);

// ---- arbitraries of valid values, as fields.ts checks them ----------------------------

const known = fc.constantFrom('n1', 'n2', 'n3');
/** Any well-formed node name (fields.ts NODE_NAME), known or not. */
const nodeName = fc.oneof(known, fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/));
/** count(): a non-negative safe integer (uint64 on the wire). */
const count = fc.oneof(fc.nat({ max: 1000 }), fc.maxSafeNat());
/** countOrNone(): a count, or -1 for none yet (sint64 on the wire). */
const countOrNone = fc.oneof(fc.constant(-1), count);
/** timeMs(): finite, |x| < 1e15. */
const time = fc.oneof(fc.integer({ min: -1e6, max: 1e9 }), fc.double({ min: -9.99e14, max: 9.99e14, noNaN: true, noDefaultInfinity: true }));
/** durationMs(): 0 < x <= a day. */
const duration = fc.double({ min: Number.MIN_VALUE, max: 86_400_000, noNaN: true, noDefaultInfinity: true });
/** text(max): at most `max` UTF-16 units (strings as they come from files, no lone surrogates). */
const text = (max: number) => fc.fullUnicodeString({ maxLength: Math.min(max, 40) }).filter((s) => s.length <= max);
const serviceName = fc.fullUnicodeString({ minLength: 1, maxLength: 30 }).filter((s) => /^[^/\0]{1,255}$/.test(s));
const FAILURE_EVENTS = [...SCRIPT_EVENTS, 'confirm-down'] as const;
const prio = fc.integer({ min: -1_000_000, max: 1_000_000 });
const nul = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: null });

const failure: fc.Arbitrary<FailureRecord> = fc.record({
  wallMs: time,
  node: nodeName,
  service: text(255),
  event: fc.constantFrom(...FAILURE_EVENTS),
  exitCode: nul(fc.integer({ min: -1, max: 255 })),
  signal: nul(text(32)),
  output: fc.array(text(8192), { maxLength: 4 }),
});

const state: fc.Arbitrary<ClusterState> = fc.record(
  {
    versionEpoch: count,
    versionSeq: count,
    master: nul(known),
    masterEpoch: count,
    manualMaster: fc.boolean(),
    target: nul(known),
    maintenance: fc.boolean(),
    frozenHolders: fc.array(nodeName, { maxLength: 3 }),
    designated: fc.array(nodeName, { maxLength: 3 }),
    maintenanceHolders: fc.array(nodeName, { maxLength: 3 }),
    stopped: fc.array(nodeName, { maxLength: 3 }),
    recoverTokens: fc.dictionary(nodeName, count, { maxKeys: 3, noNullPrototype: true }),
    failures: fc.array(failure, { maxLength: 3 }),
  },
  { requiredKeys: ['versionEpoch', 'versionSeq', 'master', 'masterEpoch', 'manualMaster', 'target', 'maintenance', 'frozenHolders', 'stopped', 'recoverTokens', 'failures'] },
);

const service: fc.Arbitrary<ServiceReport> = fc.record({
  name: serviceName,
  priority: nul(prio),
  state: fc.constantFrom(...SERVICE_STATES),
  running: nul(fc.constantFrom(...SCRIPT_EVENTS)),
  failed: fc.boolean(),
  notPromotable: fc.boolean(),
  disabled: fc.boolean(),
  died: fc.constant(true),
  score: fc.nat({ max: Number.MAX_SAFE_INTEGER }),
}, { requiredKeys: ['name', 'priority', 'state', 'running', 'failed', 'notPromotable', 'disabled'] });

/** failcount is a uint32 on the wire (see the test of larger values below). */
const report = (failcount: fc.Arbitrary<number> = fc.nat({ max: 0xffff_ffff })): fc.Arbitrary<RunnerReport> =>
  fc.record(
    {
      state: fc.constantFrom(...RUNNER_STATES),
      watchdog: fc.constantFrom(...WATCHDOG_STATES),
      holding: fc.boolean(),
      promotable: fc.boolean(),
      failed: fc.boolean(),
      failcount,
      lastFailureAgoMs: nul(time),
      // Optional in the type (older nodes), but the decoder always says null when absent.
      nextRecoveryInMs: nul(time),
      recoveryWaitReason: nul(text(1024)),
      disabled: fc.boolean(),
      uptimeMs: time,
      services: fc.array(service, { maxLength: 3 }),
      pendingFailures: fc.array(failure, { maxLength: 2 }),
    },
    { requiredKeys: ['state', 'holding', 'promotable', 'failed', 'failcount', 'lastFailureAgoMs', 'nextRecoveryInMs', 'recoveryWaitReason', 'disabled', 'uptimeMs', 'services', 'pendingFailures'] },
  );

const grant: fc.Arbitrary<LeaseGrant> = fc.record({ echoMs: time, incarnation: count, leaseMs: duration, demoteMs: duration }, { requiredKeys: ['echoMs', 'incarnation'] });

const voteReq = fc.record(
  { kind: fc.constant('vote-req' as const), epoch: count, takeover: fc.boolean(), preVote: fc.boolean(), windowMs: duration, rescue: fc.boolean() },
  { requiredKeys: ['kind', 'epoch', 'takeover', 'preVote'] },
);
const vote = fc.record(
  {
    kind: fc.constant('vote' as const),
    epoch: count,
    preVote: fc.boolean(),
    granted: fc.boolean(),
    outranked: fc.boolean(),
    lastAckAgoMs: time,
    grantsEndInMs: time,
    state: nul(state),
    nowMs: time,
    incarnation: count,
  },
  { requiredKeys: ['kind', 'epoch', 'preVote', 'granted', 'outranked', 'lastAckAgoMs', 'state', 'nowMs', 'incarnation'] },
);
const heartbeat = fc.record(
  {
    kind: fc.constant('heartbeat' as const),
    epoch: count,
    seq: count,
    sentMs: time,
    master: nul(known),
    masterEpoch: count,
    grant: nul(grant),
    state: nul(state),
    stateVersionEpoch: count,
    stateVersionSeq: count,
    commitVersionEpoch: countOrNone,
    commitVersionSeq: countOrNone,
    windowMs: duration,
    quorate: fc.boolean(),
    reach: fc.array(known, { maxLength: 3 }),
  },
  {
    requiredKeys: ['kind', 'epoch', 'seq', 'sentMs', 'master', 'masterEpoch', 'grant', 'state', 'stateVersionEpoch', 'stateVersionSeq', 'commitVersionEpoch', 'commitVersionSeq'],
  },
);
const ack = (failcount?: fc.Arbitrary<number>) =>
  fc.record(
    {
      kind: fc.constant('ack' as const),
      epoch: count,
      seq: countOrNone,
      // Absent on the wire: the ack answers no heartbeat.
      echoSentMs: fc.oneof(time, fc.constant(-Infinity)),
      echoWindowMs: duration,
      rejoining: fc.boolean(),
      nowMs: time,
      incarnation: count,
      stateVersionEpoch: count,
      stateVersionSeq: count,
      report: nul(report(failcount)),
    },
    { requiredKeys: ['kind', 'epoch', 'seq', 'echoSentMs', 'nowMs', 'incarnation', 'stateVersionEpoch', 'stateVersionSeq', 'report'] },
  );

const message: fc.Arbitrary<Message> = fc.oneof(voteReq, vote, heartbeat, ack());

const uint32 = fc.nat({ max: 0xffff_ffff });
const hello: fc.Arbitrary<PeerPayload> = fc
  .record({
    info: fc.record(
      { name: known, elector: fc.boolean(), runner: fc.boolean(), priority: prio, masterLeaseMs: duration, demoteTimeoutMs: duration },
      { requiredKeys: ['name', 'elector', 'runner', 'priority'] },
    ),
    softwareVersion: text(64),
    major: uint32,
    minors: fc.tuple(uint32, uint32).map(([a, b]) => (a <= b ? [a, b] : [b, a])),
    watchdogMode: text(16),
  })
  .map(({ info, softwareVersion, major, minors, watchdogMode }) => ({
    type: 'hello' as const,
    info,
    extras: { softwareVersion, protocol: { major, minMinor: minors[0]!, maxMinor: minors[1]! }, watchdogMode },
  }));

const payload: fc.Arbitrary<PeerPayload> = fc.oneof(
  message.map((msg) => ({ type: 'msg' as const, msg })),
  hello,
);

/** What a receiver of protocol minor 0 gets: no watchdog state in reports or hellos. */
/** What a receiver of an older minor gets: the fields added since left out. */
function asMinor(p: PeerPayload, minor: number): PeerPayload {
  if (p.type === 'hello') return minor >= 1 ? p : { ...p, extras: { ...p.extras, watchdogMode: '' } };
  if (p.msg.kind !== 'ack' || p.msg.report === null) return p;
  const { watchdog, ...rest } = p.msg.report;
  const services = rest.services.map(({ died, score, ...s }) => ({ ...s, ...(minor >= 1 && died === true ? { died } : {}), ...(minor >= 2 && score !== undefined ? { score } : {}) }));
  const report = { ...rest, ...(minor >= 1 && watchdog !== undefined ? { watchdog } : {}), services };
  return { type: 'msg', msg: { ...p.msg, report } };
}

/** decodePeer that must either return or throw AuthError('malformed'). */
function decodeOrAuthError(body: Buffer): PeerPayload | null {
  try {
    return decodePeer(body, KNOWN);
  } catch (e) {
    if (!(e instanceof AuthError) || e.reason !== 'malformed') {
      throw new Error(`decodePeer threw ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)} on ${body.toString('hex')}`);
    }
    return null;
  }
}


// ---- properties ------------------------------------------------------------------------

test(`every valid core Message and hello survives encodePeer → decodePeer unchanged (minor ${PROTOCOL_MINOR})`, () => {
  fc.assert(
    fc.property(payload, (p) => {
      assert.deepStrictEqual(decodePeer(encodePeer(p, PROTOCOL_MINOR), KNOWN), p);
    }),
    { numRuns: RUNS },
  );
});

for (let minor = 0; minor < PROTOCOL_MINOR; minor++) {
  test(`written for a minor-${minor} receiver, the same values come back without what later minors added`, () => {
    fc.assert(
      fc.property(payload, (p) => {
        assert.deepStrictEqual(decodePeer(encodePeer(p, minor), KNOWN), asMinor(p, minor));
      }),
      { numRuns: RUNS },
    );
  });
}

test('decodePeer throws nothing but AuthError on random bytes', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 600 }), (u8) => {
      decodeOrAuthError(Buffer.from(u8));
    }),
    { numRuns: RUNS * 5 },
  );
});

test('decodePeer throws nothing but AuthError on mutated valid frames, and what it accepts encodes back to itself', () => {
  fc.assert(
    fc.property(payload, fc.array(mutation, { minLength: 1, maxLength: 4 }), (p, ms) => {
      const body = mutate(encodePeer(p, PROTOCOL_MINOR), ms);
      const got = decodeOrAuthError(body);
      if (got !== null) assert.deepStrictEqual(decodePeer(encodePeer(got, PROTOCOL_MINOR), KNOWN), got, `re-encoding what ${body.toString('hex')} decoded to`);
    }),
    { numRuns: RUNS * 2 },
  );
});

/** Any JSON-ish value, with the numbers and strings a codec finds hard. */
const wild: fc.Arbitrary<unknown> = fc.oneof(
  fc.double(),
  fc.integer(),
  fc.constantFrom(-1, 2 ** 31, 2 ** 32, 2 ** 53, 2 ** 64, 1e300, -0, NaN, Infinity, -Infinity, '18446744073709551615', '-1', 'NaN', '', null, true),
  fc.string({ maxLength: 20 }),
  fc.constantFrom('x'.repeat(9000), 'n1', 'intruder', '../n2', 'RUNNER_STATE_MASTER', 'SERVICE_STATE_PROMOTED', 'FAILURE_EVENT_CONFIRM_DOWN', 'WATCHDOG_STATE_ARMED'),
  fc.boolean(),
);

/** PeerFrame-shaped objects with arbitrary field values, unknown keys, and sometimes no oneof member. */
const frameObject: fc.Arbitrary<Record<string, unknown>> = fc.letrec<{ obj: Record<string, unknown>; val: unknown }>((tie) => ({
  obj: fc.dictionary(
    fc.constantFrom('epoch', 'seq', 'sentMs', 'master', 'state', 'report', 'services', 'name', 'priority', 'failures', 'recoverTokens', 'frozenHolders', 'reach', 'names', 'grant', 'nowMs', 'windowMs', 'running', 'watchdog', 'event', 'exitCode', 'output', 'protocol', 'maxMinor', 'bogus'),
    tie('val'),
    { maxKeys: 6, noNullPrototype: true },
  ),
  val: fc.oneof({ depthSize: 'small', withCrossShrink: true }, wild, tie('obj'), fc.array(tie('val'), { maxLength: 3 })),
})).obj;

const frameShaped = fc.oneof(
  fc.record({ kind: fc.constantFrom('hello', 'voteRequest', 'vote', 'heartbeat', 'ack', 'bogus'), body: frameObject }).map(({ kind, body }) => ({ [kind]: body })),
  frameObject,
);

test('decodePeer throws nothing but AuthError on frames built from arbitrary objects', () => {
  let encoded = 0;
  fc.assert(
    fc.property(frameShaped, (obj) => {
      let body: Buffer;
      try {
        body = encodeBody(bodyType('PeerFrame'), obj);
      } catch {
        return; // protobufjs would not serialize it: nothing to send
      }
      encoded++;
      const got = decodeOrAuthError(body);
      if (got !== null) assert.deepStrictEqual(decodePeer(encodePeer(got, PROTOCOL_MINOR), KNOWN), got);
    }),
    { numRuns: RUNS * 2 },
  );
  assert.ok(encoded > RUNS / 2, `only ${encoded} of the objects could be serialized`);
});

test('decodeAdminRequest round-trips every request and throws nothing but AuthError on random or mutated bytes', () => {
  const request = fc.oneof(
    fc.constantFrom({ op: 'status' as const }, { op: 'local' as const }, { op: 'failures' as const }, { op: 'watch' as const }),
    fc.record({ op: fc.constant('reconfigure' as const), node: nul(nodeName) }),
    fc.record({
      op: fc.constant('command' as const),
      command: fc.oneof(
        fc.record({ kind: fc.constantFrom('promote' as const, 'start' as const, 'stop' as const, 'recover' as const), node: nodeName }),
        fc.record({ kind: fc.constantFrom('demote' as const, 'elect' as const) }),
        fc.record({ kind: fc.constant('maintenance' as const), on: fc.boolean() }),
        fc.record({ kind: fc.constant('confirm-down' as const), node: nodeName, wallMs: time }),
      ),
    }),
  );
  const decodeOr = (b: Buffer) => {
    try {
      return decodeAdminRequest(b);
    } catch (e) {
      if (!(e instanceof AuthError)) throw new Error(`decodeAdminRequest threw ${String(e)} on ${b.toString('hex')}`);
      return null;
    }
  };
  fc.assert(
    fc.property(request, fc.array(mutation, { maxLength: 3 }), fc.uint8Array({ maxLength: 100 }), (r, ms, raw) => {
      const body = encodeAdminRequest(r);
      assert.deepStrictEqual(decodeAdminRequest(body), r);
      decodeOr(mutate(body, ms));
      decodeOr(Buffer.from(raw));
    }),
    { numRuns: RUNS * 2 },
  );
});

test('a heartbeat from a node whose [cluster] transport lists a node ours lacks is accepted, unknown names and all', () => {
  const known = new Set(['n1', 'n2', 'n3']);
  const hb: Message = {
    kind: 'heartbeat', epoch: 4, seq: 9, sentMs: 10, master: 'n4', masterEpoch: 4, grant: null,
    state: { versionEpoch: 4, versionSeq: 2, master: 'n4', masterEpoch: 4, manualMaster: false, target: 'n4', maintenance: false, frozenHolders: [], designated: ['n1', 'n4'], stopped: [], recoverTokens: {}, failures: [] },
    stateVersionEpoch: 4, stateVersionSeq: 2, commitVersionEpoch: 4, commitVersionSeq: 2, windowMs: 500, reach: ['n1', 'n2', 'n4'],
  };
  assert.deepEqual(decodePeer(encodePeer({ type: 'msg', msg: hb }, 1), known), { type: 'msg', msg: hb });
  // A hello still has to come from one of ours.
  assert.throws(() => decodePeer(encodePeer({ type: 'hello', info: { name: 'n4', elector: true, runner: true, priority: 1 }, extras: { softwareVersion: 'x', protocol: { major: 1, minMinor: 0, maxMinor: 1 }, watchdogMode: 'off' } }, 1), known), /hello\.name \(n4 is not in \[cluster\] transport\)/);
});
