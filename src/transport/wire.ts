// The koi.v1 services of proto/koi.proto for grpc-js, as @grpc/proto-loader
// makes them: the one description both koinode and koi serve and call.
import * as grpc from '@grpc/grpc-js';
import { packageDefinition } from './schema';

interface KoiPackage {
  koi: { v1: { Peer: grpc.ServiceClientConstructor; Admin: grpc.ServiceClientConstructor } };
}

let pkg: KoiPackage | null = null;

function koiV1(): KoiPackage['koi']['v1'] {
  pkg ??= grpc.loadPackageDefinition(packageDefinition()) as unknown as KoiPackage;
  return pkg.koi.v1;
}

export const peerService = (): grpc.ServiceDefinition => koiV1().Peer.service;
export const adminService = (): grpc.ServiceDefinition => koiV1().Admin.service;
export const PeerClient = (): grpc.ServiceClientConstructor => koiV1().Peer;
export const AdminClientCtor = (): grpc.ServiceClientConstructor => koiV1().Admin;
