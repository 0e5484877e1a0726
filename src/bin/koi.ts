#!/usr/bin/env node
// koi: the command-line client.
import { main } from '../cli/main';

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
