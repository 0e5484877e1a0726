// What grpc-js alone costs per message on a long-lived bidirectional stream:
// a client and an echo server in two processes, Buffer payloads (no
// protobuf, no HMAC, no JSON), CPU of each side per message sent and
// answered. The floor under koi's per-heartbeat cost (bench/README.md).
import * as grpc from '@grpc/grpc-js';
import { fork } from 'node:child_process';

const id = (b: Buffer) => b;
const SERVICE = {
  Link: { path: '/floor.Echo/Link', requestStream: true, responseStream: true, requestSerialize: id, requestDeserialize: id, responseSerialize: id, responseDeserialize: id },
} satisfies grpc.ServiceDefinition;

function serve(): void {
  const s = new grpc.Server();
  s.addService(SERVICE, {
    Link: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
      call.on('data', (m: Buffer) => call.write(m));
      call.on('end', () => call.end());
    },
  });
  s.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (_e, port) => process.send!(port));
  process.on('message', () => process.send!(process.cpuUsage()));
}

/** Microseconds of CPU per exchange: [client, server]. */
export async function grpcFloor(exchanges = 2000, flags: string[] = process.execArgv): Promise<[number, number]> {
  const child = fork(__filename, ['--serve'], { execArgv: flags });
  const port = await new Promise<number>((r) => child.once('message', (m) => r(m as number)));
  const Ctor = grpc.makeGenericClientConstructor(SERVICE, 'Echo');
  const client = new Ctor(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  const stream = (client as unknown as { Link(): grpc.ClientDuplexStream<Buffer, Buffer> }).Link();
  stream.on('error', () => undefined);
  const msg = Buffer.alloc(300, 1);
  // One message in flight at a time, as heartbeats are.
  const pingPong = (n: number) =>
    new Promise<void>((resolve) => {
      let left = n;
      const onData = () => {
        if (--left === 0) {
          stream.off('data', onData);
          resolve();
        } else stream.write(msg);
      };
      stream.on('data', onData);
      stream.write(msg);
    });
  const serverCpu = () => new Promise<NodeJS.CpuUsage>((r) => {
    child.once('message', (m) => r(m as NodeJS.CpuUsage));
    child.send('cpu');
  });
  await pingPong(300);
  const s0 = await serverCpu();
  const c0 = process.cpuUsage();
  await pingPong(exchanges);
  const c = process.cpuUsage(c0);
  const s1 = await serverCpu();
  stream.end();
  client.close();
  child.kill();
  return [(c.user + c.system) / exchanges, (s1.user - s0.user + s1.system - s0.system) / exchanges];
}

if (process.argv.includes('--serve')) serve();
