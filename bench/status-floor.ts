// The floor under `koi status` (SPEC section 9): a `node` that loads what the
// CLI loads for every command — @grpc/grpc-js, @grpc/proto-loader with
// proto/koi.proto parsed by loadSync, and yargs — and then exits. No koi
// code, no connection. bench/run.ts times `node dist/bench/status-floor.js`
// against `koi status` in the same run; the target is ≤ 1.3 × this.
import { join } from 'node:path';

require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader') as typeof import('@grpc/proto-loader');
require('yargs');

protoLoader.loadSync(join(__dirname, '..', '..', 'proto', 'koi.proto'), { keepCase: true, longs: String, defaults: true });
