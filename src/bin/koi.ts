#!/usr/bin/env node
// koi: the command-line client.
import { main } from '../cli/main';

main(process.argv.slice(2)).catch((e: unknown) => {
  process.stderr.write(`koi: ${(e as Error).message}\n`);
  process.exitCode = 1;
});
