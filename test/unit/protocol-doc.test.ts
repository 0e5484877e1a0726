// docs/PROTOCOL.md stays in step with proto/koi.proto: every service, call,
// peer frame, admin request and command of the schema is named in the doc,
// and every message or enum the doc names in backticks exists in the schema.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as protobuf from 'protobufjs';
import { PROTO_PATH, PROTOCOL_MAJOR, PROTOCOL_MIN_MINOR, PROTOCOL_MINOR } from '../../src/transport/schema';

const doc = readFileSync(join(__dirname, '..', '..', '..', 'docs', 'PROTOCOL.md'), 'utf8');
const root = new protobuf.Root().loadSync(PROTO_PATH, { keepCase: true });
const pkg = root.lookup('koi.v1') as protobuf.Namespace;

function oneofMembers(type: string, oneof: string, camel = false): string[] {
  const t = root.lookupType(`koi.v1.${type}`);
  return t.oneofs[oneof]!.fieldsArray.map((f) => (camel ? f.resolvedType!.name : f.name));
}

test('every service, call, frame, request and command of proto/koi.proto is in docs/PROTOCOL.md', () => {
  const names: string[] = [];
  for (const s of pkg.nestedArray.filter((n): n is protobuf.Service => n instanceof protobuf.Service)) {
    for (const m of s.methodsArray) names.push(`${s.name}.${m.name}`);
  }
  assert.ok(names.length >= 3);
  names.push(...oneofMembers('PeerFrame', 'kind', true));
  names.push(...oneofMembers('AdminRequest', 'op'));
  names.push(...oneofMembers('Command', 'kind'));
  names.push('Envelope', 'AdminReply', 'WatchEvent', 'StatusView', 'LocalView', 'ProtocolRange', 'RunnerReport', 'ClusterState', 'LeaseGrant');
  for (const f of root.lookupType('koi.v1.Envelope').fieldsArray) names.push(f.name);
  const missing = names.filter((n) => !doc.includes(`\`${n}`) && !doc.includes(` ${n} `) && !doc.includes(`${n}\``));
  assert.deepEqual(missing, [], 'named in the schema, missing from docs/PROTOCOL.md');
});

test('every message or enum docs/PROTOCOL.md names in backticks exists in proto/koi.proto', () => {
  const named = new Set([...doc.matchAll(/`([A-Z][A-Za-z]+)(?:[ .`(])/g)].map((m) => m[1]!));
  const known = new Set(pkg.nestedArray.map((n) => n.name));
  const unknown = [...named].filter((n) => !known.has(n) && !['Peer', 'Admin', 'Watch', 'KoiNode'].includes(n) && !/^[A-Z_]+$/.test(n));
  assert.deepEqual(unknown, [], 'named in docs/PROTOCOL.md, not in the schema');
});

test('the doc and the schema state the version this build speaks', () => {
  assert.match(doc, new RegExp(`version ${PROTOCOL_MAJOR}\\.${PROTOCOL_MINOR}\\)`));
  assert.match(doc, new RegExp(`accepts \\*\\*${PROTOCOL_MAJOR}\\.${PROTOCOL_MIN_MINOR}\\*\\*`));
  assert.match(readFileSync(PROTO_PATH, 'utf8'), new RegExp(`version ${PROTOCOL_MAJOR}\\.${PROTOCOL_MINOR} \\(package koi\\.v1\\)`));
});
