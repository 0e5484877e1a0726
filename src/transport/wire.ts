// The koi.v1 services of proto/koi.proto as grpc-js definitions, with the
// hand-written Envelope codec: neither koinode nor koi parses the .proto or
// loads protobufjs at run time (less memory, faster start, no Long objects
// per message). test/unit/envelope-codec.test.ts proves both agree with what
// @grpc/proto-loader makes of proto/koi.proto.
import type * as grpc from '@grpc/grpc-js';
import type { Envelope } from './auth';
import { decodeEnvelope, encodeEnvelope } from './envelope-codec';

function method(service: string, name: string, requestStream: boolean, responseStream: boolean): grpc.MethodDefinition<Envelope, Envelope> {
  return {
    path: `/koi.v1.${service}/${name}`,
    requestStream,
    responseStream,
    requestSerialize: encodeEnvelope,
    requestDeserialize: decodeEnvelope,
    responseSerialize: encodeEnvelope,
    responseDeserialize: decodeEnvelope,
  };
}

export const PEER_SERVICE = {
  Link: method('Peer', 'Link', true, true),
} satisfies grpc.ServiceDefinition;

export const ADMIN_SERVICE = {
  Call: method('Admin', 'Call', false, false),
  Watch: method('Admin', 'Watch', false, true),
} satisfies grpc.ServiceDefinition;
