// `koi`: the command line. yargs parses (fast-args.ts first, for the
// everyday read-only commands); commands.ts does the work; exit.ts turns
// errors into one line and an exit status.
import type { Argv } from 'yargs';
import type YargsModule from 'yargs';
import { VERSION } from '../version';
import { UsageError } from '../errors';
import { exitFor } from './exit';
import * as cmd from './commands';
import { runCheck } from './check';
import { parseFast, type FastCommand } from './fast-args';

type Args = cmd.GlobalArgs & { _: (string | number)[] };

function run(fn: (ctx: cmd.Ctx, argv: Record<string, unknown>) => Promise<void>) {
  return async (argv: Record<string, unknown>): Promise<void> => {
    try {
      const a = argv as unknown as Args;
      const f = argv.file as string | string[] | undefined;
      a.file = f === undefined ? undefined : Array.isArray(f) ? f : [f];
      const ctx = new cmd.Ctx(a);
      await fn(ctx, argv);
      process.exitCode = 0;
    } catch (e) {
      const { code, message } = exitFor(e);
      process.stderr.write(`koi: ${message}\n`);
      process.exitCode = code;
    }
  };
}

const node = (y: Argv, what: string) => y.positional('node', { type: 'string', describe: what });

/** The commands both parsers can dispatch. */
const READ: Record<FastCommand, (c: cmd.Ctx, a: Record<string, unknown>) => Promise<void>> = {
  local: (c) => cmd.local(c),
  status: (c, a) => cmd.status(c, a.node as string | undefined),
  tree: (c) => cmd.tree(c),
  failures: (c) => cmd.failures(c),
};

export function main(args: string[]): Promise<unknown> {
  const fast = parseFast(args);
  if (fast !== null) return run(READ[fast.command])({ ...fast, _: [fast.command] });
  return parser(args).parseAsync();
}

/** Every command and option; `handle` wraps each command's work (tests swap it). */
export function parser(args: string[], handle: typeof run = run): Argv {
  const yargs = require('yargs') as typeof YargsModule;
  return yargs(args)
    .scriptName('koi')
    .usage('$0 <command> [options]\n\nShow and steer a koi cluster. Any node answers; commands for the leader are forwarded.')
    .option('file', { alias: 'f', type: 'string', requiresArg: true, describe: 'configuration file (default ./koi.conf, then /etc/koi/koi.conf)' })
    .option('host', { alias: 'H', type: 'string', describe: 'talk to this node instead of the local one' })
    .option('port', { alias: 'p', type: 'number', describe: 'port of that node' })
    .option('timeout', { alias: 't', type: 'number', default: 6, describe: 'seconds to wait for an answer' })
    .option('json', { type: 'boolean', default: false, describe: 'print one JSON document (watch: one per line)' })
    .option('color', { type: 'boolean', default: true, describe: 'colour on a terminal (--no-color to turn off)' })
    .command('local', 'this node: role, leader, its services', {}, handle(READ.local))
    .command('status [node]', 'the cluster: leader, master, every node and service', (y) => node(y, 'show only this node'), handle(READ.status))
    .command('tree', 'services per node, in priority order', {}, handle(READ.tree))
    .command('reconfigure [node]', 'reload koi.conf on a node (default: the local one)', (y) => node(y, 'node to reload'), handle((c, a) => cmd.reconfigure(c, a.node as string | undefined)))
    .command(
      'maintenance <mode>',
      'maintenance on: run no script, change no role; off: resume (status first)',
      (y) => y.positional('mode', { choices: ['on', 'off'] as const, describe: 'on or off' }),
      handle((c, a) => cmd.command(c, { kind: 'maintenance', on: a.mode === 'on' }, `maintenance ${a.mode as string}`)),
    )
    .command('promote <node>', 'make <node> the master (demote the old one first)', (y) => node(y, 'runner to promote').demandOption('node'), handle((c, a) => cmd.command(c, { kind: 'promote', node: a.node as string }, `${a.node as string} will be master once the old master has demoted — watch with koi status`)))
    .command('demote', 'leave the cluster without a master until koi elect or koi promote', {}, handle((c) => cmd.command(c, { kind: 'demote' }, 'master demoted; the cluster stays masterless until koi elect or koi promote')))
    .command('elect', 'let the leader choose the master again', {}, handle((c) => cmd.command(c, { kind: 'elect' }, 'automatic master choice is back on')))
    .command('start [node]', 'let a runner run its services again (after koi stop)', (y) => node(y, 'runner (default: local)'), handle((c, a) => cmd.command(c, { kind: 'start', node: cmd.localName(c, a.node as string | undefined) }, `start ${cmd.localName(c, a.node as string | undefined)}: its services will start`)))
    .command('stop [node]', 'stop a runner\'s services and keep it out of the master choice', (y) => node(y, 'runner (default: local)'), handle((c, a) => cmd.command(c, { kind: 'stop', node: cmd.localName(c, a.node as string | undefined) }, `stop ${cmd.localName(c, a.node as string | undefined)}: its services will stop until koi start`)))
    .command('recover [node]', 'clear a failed runner so it starts its services again', (y) => node(y, 'runner (default: local)'), handle((c, a) => cmd.command(c, { kind: 'recover', node: cmd.localName(c, a.node as string | undefined) }, `recover ${cmd.localName(c, a.node as string | undefined)}: it will start its services again`)))
    .command('confirm-down <node>', 'tell the leader that <node>\'s machine is powered off, so its master role is free (like a fence that succeeded)', (y) => node(y, 'node whose machine is down').demandOption('node'), handle((c, a) => cmd.command(c, { kind: 'confirm-down', node: a.node as string, wallMs: Date.now() }, `${a.node as string} confirmed down: the leader no longer waits for it (recorded in koi failures)`)))
    .command('failures', 'recorded failures (time, node, service, event, result, output)', {}, handle(READ.failures))
    .command('watch', 'stream cluster events until Ctrl-C', {}, handle((c) => cmd.watch(c)))
    .command('check [folder]', 'validate a services folder and koi.conf without a cluster', (y) => y.positional('folder', { type: 'string', describe: 'services folder (default: from koi.conf)' }), handle((c, a) => runCheck(c, a.folder as string | undefined)))
    .command('keygen', 'print a fresh cluster secret', {}, handle((c) => cmd.keygen(c)))
    .demandCommand(1, 'name a command')
    .recommendCommands()
    .strict()
    .version(VERSION)
    .help()
    .fail((msg, err, y) => {
      if (err !== undefined && !(err instanceof UsageError) && err !== null) throw err;
      process.stderr.write(`koi: ${msg ?? err?.message} — see koi --help\n`);
      void y;
      process.exit(2);
    });
}
