#!/usr/bin/env -S node --lite-mode --no-expose-wasm
// koi: the command-line client. --lite-mode (V8 without its optimizing
// compiler): a command runs for a fraction of a second, mostly loading
// grpc-js, proto-loader and yargs, which optimizing would not repay.
// --no-expose-wasm: lite mode turns WebAssembly off anyway, and would say so
// on stderr, where koi prints one line.
import { main } from '../cli/main';

// grpc-js gives Node's TLS the node's IP address as server name, and Node
// warns about that (DEP0123) on stderr, where koi's contract is one line.
// The certificate is still checked against that address.
const emitWarning = process.emitWarning.bind(process) as (...a: unknown[]) => void;
process.emitWarning = ((warning: unknown, ...rest: unknown[]) => {
  const opts = rest[0];
  const code = typeof opts === 'object' && opts !== null ? (opts as { code?: unknown }).code : rest[1];
  if (code === 'DEP0123') return;
  emitWarning(warning, ...rest);
}) as typeof process.emitWarning;

let settled = false;
// A request whose connection vanished without an answer can leave nothing
// for the event loop to wait on: Node would then exit 0 having printed
// nothing, which scripts would read as success. (beforeExit: the loop ran
// dry; yargs's own process.exit for --help and --version does not count.)
process.once('beforeExit', () => {
  if (settled) return;
  process.stderr.write('koi: the connection ended without an answer — retry\n');
  process.exitCode = 3;
});

main(process.argv.slice(2))
  .catch((e: unknown) => {
    process.stderr.write(`koi: ${(e as Error).message}\n`);
    process.exitCode = 1;
  })
  .finally(() => (settled = true));
