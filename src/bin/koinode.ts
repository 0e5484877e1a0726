#!/usr/bin/env -S node --lite-mode --no-expose-wasm --no-memory-reducer --max-semi-space-size=1
// koinode: the daemon, one per machine.
import yargs from 'yargs';
import { loadConfig, type ConfigFlags } from '../config/load';
import { ConfigError } from '../errors';
import { createLog, parseLogTarget, type LogLevel } from '../observe/logger';
import { Daemon } from '../daemon/daemon';
import { VERSION } from '../version';

async function main(): Promise<void> {
  const argv = yargs(process.argv.slice(2))
    .scriptName('koinode')
    .usage('$0 [options]\n\nThe koi daemon: elects a leader, supervises the services of this machine.')
    .option('file', { alias: 'f', type: 'string', requiresArg: true, describe: 'configuration file (repeatable; replaces the search of ./koi.conf, /etc/koi/koi.conf)' })
    .option('name', { type: 'string', describe: 'node name (overrides [node] name)' })
    .option('port', { type: 'number', describe: 'gRPC port (overrides [node] port)' })
    .option('services', { type: 'string', describe: 'services folder (overrides [service] folder)' })
    .option('log', { type: 'string', default: 'console', describe: 'console | json | file:PATH' })
    .option('log-level', { type: 'string', default: 'info', choices: ['error', 'warn', 'info', 'debug'] })
    .option('color', { type: 'boolean', default: true, describe: 'colour on a terminal (--no-color to turn off)' })
    .option('rejoin', { type: 'boolean', default: false, describe: 'this machine ran koinode before and its state_dir is lost (a rebuilt disk): vote again only after following a leader' })
    .version(VERSION)
    .help()
    .strict()
    .fail((msg, err) => {
      process.stderr.write(`koinode: ${err?.message ?? msg} — see koinode --help\n`);
      process.exit(2);
    })
    .parseSync();

  const files = argv.file === undefined ? undefined : Array.isArray(argv.file) ? argv.file.map(String) : [String(argv.file)];
  const flags: ConfigFlags = {};
  if (argv.name !== undefined) flags.name = argv.name;
  if (argv.port !== undefined) {
    if (!Number.isInteger(argv.port) || argv.port < 1 || argv.port > 65535) {
      process.stderr.write(`koinode: --port ${argv.port} is not a port (1..65535)\n`);
      process.exit(2);
    }
    flags.port = argv.port;
  }
  if (argv.services !== undefined) flags.services = argv.services;
  let target;
  try {
    target = parseLogTarget(argv.log);
  } catch (e) {
    process.stderr.write(`koinode: ${(e as Error).message}\n`);
    process.exit(2);
  }
  let loaded;
  try {
    loaded = loadConfig(files, flags);
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`koinode: ${e.message}\n`);
      process.exit(2);
    }
    throw e;
  }
  const config = loaded.config;
  const log = createLog(config.node.name, target, argv['log-level'] as LogLevel, argv.color && process.stdout.isTTY === true);
  for (const w of loaded.warnings) log.warn('config', w);

  let daemon: Daemon;
  try {
    daemon = new Daemon({ config, configFiles: files, flags, log, version: VERSION, rejoin: argv.rejoin });
    await daemon.start();
  } catch (e) {
    process.stderr.write(`koinode: ${(e as Error).message}\n`);
    await log.close();
    process.exit(2);
  }
  let signals = 0;
  const stop = (sig: string) => {
    signals++;
    if (signals > 1) {
      log.warn('daemon', `${sig} again: exiting now`);
      daemon.forceStop();
      process.exit(1);
    }
    void daemon.shutdown().then(async () => {
      log.info('daemon', 'stopped');
      await log.close();
      process.exit(0);
    });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGHUP', () => void daemon.reload());
}

main().catch((e: unknown) => {
  process.stderr.write(`koinode: ${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
