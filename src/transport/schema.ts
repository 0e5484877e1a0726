// proto/koi.proto, loaded once per process: @grpc/proto-loader makes the
// service definitions grpc-js serves and calls; protobufjs (the library
// proto-loader is built on) gives the codecs of the typed bodies the
// envelopes carry, because the MAC covers their exact bytes.
import { join } from 'node:path';
import * as protoLoader from '@grpc/proto-loader';
import * as protobuf from 'protobufjs';

export const PROTO_PATH = join(__dirname, '..', '..', '..', 'proto', 'koi.proto');

/** The protocol this build speaks: major 1, minors MIN_MINOR..MINOR. */
export const PROTOCOL_MAJOR = 1;
export const PROTOCOL_MINOR = 2;
/** The oldest minor accepted: the previous one, so a rolling upgrade works. */
export const PROTOCOL_MIN_MINOR = 0;

export interface ProtocolRange {
  major: number;
  minMinor: number;
  maxMinor: number;
}

/**
 * What this node advertises. KOI_PROTOCOL_MINOR lowers the newest minor it
 * speaks (tests of mixed-version clusters run a node as the previous release
 * would); it can never raise it.
 */
export function ownProtocol(env: NodeJS.ProcessEnv = process.env): ProtocolRange {
  const v = Number(env.KOI_PROTOCOL_MINOR);
  const max = env.KOI_PROTOCOL_MINOR !== undefined && Number.isInteger(v) && v >= PROTOCOL_MIN_MINOR && v < PROTOCOL_MINOR ? v : PROTOCOL_MINOR;
  return { major: PROTOCOL_MAJOR, minMinor: PROTOCOL_MIN_MINOR, maxMinor: max };
}

let pkg: protoLoader.PackageDefinition | null = null;
let root: protobuf.Root | null = null;

/** Envelopes as grpc-js hands them over: field names as in the .proto, uint64 as decimal strings. */
export function packageDefinition(): protoLoader.PackageDefinition {
  pkg ??= protoLoader.loadSync(PROTO_PATH, { keepCase: true, longs: String, defaults: true });
  return pkg;
}

/** A body type, e.g. `PeerFrame`. */
export function bodyType(name: string): protobuf.Type {
  root ??= protobuf.loadSync(PROTO_PATH);
  return root.lookupType(`koi.v1.${name}`);
}

/**
 * How decoded bodies are turned into plain objects: numbers for uint64 (koi's
 * epochs stay far below 2^53; the checks refuse larger), enum names, every
 * non-optional field present, `optional` fields absent when unset, unset
 * message fields null, and the name of the set member of each oneof.
 */
export const TO_OBJECT: protobuf.IConversionOptions = { longs: Number, enums: String, defaults: true, arrays: true, objects: true, oneofs: true };

/** Serialize a plain object (enum values by name, as TO_OBJECT gives them). */
export function encodeBody(type: protobuf.Type, obj: Record<string, unknown>): Buffer {
  const u8 = type.encode(type.fromObject(obj)).finish();
  return Buffer.from(u8.buffer, u8.byteOffset, u8.byteLength);
}

/** Decode; throws on bytes that are not this type (the caller refuses the message). */
export function decodeBody(type: protobuf.Type, body: Buffer): Record<string, unknown> {
  return type.toObject(type.decode(body), TO_OBJECT);
}
