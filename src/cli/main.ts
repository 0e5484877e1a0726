// `koi`: the command line. yargs parses every command; commands.ts does the
// work; exit.ts turns errors into one line and an exit status.
import type { Argv } from 'yargs';
import type YargsModule from 'yargs';
import { VERSION } from '../version';
import { UsageError } from '../errors';
import { EXIT, exitFor } from './exit';
import { parseHostPort } from '../config/values';
import * as cmd from './commands';
import { runCheck } from './check';

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

export async function main(args: string[]): Promise<unknown> {
  return await parser(args).parseAsync();
}

/** Every command and option; `handle` wraps each command's work (tests swap it). */
export function parser(args: string[], handle: typeof run = run): Argv {
  const yargs = require('yargs') as typeof YargsModule;
  return yargs(args)
    .scriptName('koi')
    .usage('$0 <command> [options]\n\nShow and steer a koi cluster. Any node answers; commands for the leader are forwarded.')
    .parserConfiguration({ 'camel-case-expansion': false, 'parse-numbers': false })
    .option('file', { alias: 'f', type: 'string', requiresArg: true, describe: 'configuration file (default ./koi.conf, then /etc/koi/koi.conf)' })
    .option('host', { alias: 'H', type: 'string', requiresArg: true, coerce: hostArg, describe: 'talk to this node instead of the local one (HOST or HOST:PORT)' })
    // No yargs type for the numbers: it would make "abc" NaN before koi could quote it.
    .option('port', { alias: 'p', requiresArg: true, coerce: portArg, describe: 'port of that node' })
    .option('timeout', { alias: 't', requiresArg: true, default: 6, coerce: timeoutArg, describe: 'seconds to wait for an answer' })
    .option('json', { type: 'boolean', default: false, coerce: flagArg('json'), describe: 'print one JSON document (watch: one per line)' })
    .option('color', { type: 'boolean', default: true, coerce: flagArg('color'), describe: 'colour on a terminal (--no-color to turn off)' })
    .command('local', 'this node: role, leader, its services', {}, handle((c) => cmd.local(c)))
    .command('status [node]', 'the cluster: leader, master, every node and service', (y) => node(y, 'show only this node'), handle((c, a) => cmd.status(c, a.node as string | undefined)))
    .command('tree', 'services per node, in priority order', {}, handle((c) => cmd.tree(c)))
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
    .command('failures', 'recorded failures (time, node, service, event, result, output)', {}, handle((c) => cmd.failures(c)))
    .command('watch', 'stream cluster events until Ctrl-C', {}, handle((c) => cmd.watch(c)))
    .command('check [folder]', 'validate a services folder and koi.conf without a cluster', (y) => y.positional('folder', { type: 'string', describe: 'services folder (default: from koi.conf)' }), handle((c, a) => runCheck(c, a.folder as string | undefined)))
    .command('keygen', 'print a fresh cluster secret', {}, handle((c) => cmd.keygen(c)))
    .check(() => {
      // yargs reads --json=maybe as true: a flag's value may only be true or false.
      const end = args.indexOf('--');
      for (const a of end < 0 ? args : args.slice(0, end)) {
        const m = /^--(?:no-)?(json|color)=(.*)$/.exec(a);
        if (m !== null && m[2] !== 'true' && m[2] !== 'false') throw new UsageError(`--${m[1]} takes no value (got ${JSON.stringify(m[2])})`);
      }
      return true;
    })
    .demandCommand(1, 'name a command')
    .recommendCommands()
    .strict()
    .version(VERSION)
    .help()
    .fail((msg, err) => {
      // Every parse failure (yargs's own YError, a coerce that refused, a
      // validation message) is a usage error: one line, exit 2, no stack.
      if (err !== undefined && err !== null && !(err instanceof UsageError) && err.name !== 'YError') throw err;
      process.stderr.write(`koi: ${usageLine(msg ?? err?.message ?? 'cannot read this command line', args)} — see koi --help\n`);
      process.exit(EXIT.usage);
    });
}

// ---- option values and usage lines ---------------------------------------------------

/** A repeated option comes as an array: only -f may be given more than once. */
function once(name: string, v: unknown): string {
  if (Array.isArray(v)) throw new UsageError(`give --${name} once, not ${v.length} times`);
  return String(v);
}

function hostArg(v: unknown): string {
  const s = once('host', v);
  try {
    parseHostPort(s, 1);
  } catch (e) {
    throw new UsageError(`--host ${JSON.stringify(s)}: ${(e as Error).message}`);
  }
  return s;
}

function portArg(v: unknown): number {
  const s = once('port', v).trim();
  const n = Number(s);
  if (!/^\d+$/.test(s) || n < 1 || n > 65535) throw new UsageError(`--port ${JSON.stringify(once('port', v))} is not a port number (1-65535)`);
  return n;
}

function timeoutArg(v: unknown): number {
  const s = once('timeout', v).trim();
  const n = Number(s);
  if (s === '' || !Number.isFinite(n) || n <= 0) throw new UsageError(`--timeout ${JSON.stringify(once('timeout', v))} is not a positive number of seconds`);
  return n;
}

/** A boolean flag takes no value (`--json`, `--no-json`), and is given once. */
function flagArg(name: string) {
  return (v: unknown): boolean => {
    if (Array.isArray(v)) throw new UsageError(`give --${name} once`);
    if (typeof v !== 'boolean') throw new UsageError(`--${name} takes no value (got ${JSON.stringify(v)})`);
    return v;
  };
}

const COMMANDS = ['local', 'status', 'tree', 'reconfigure', 'maintenance', 'promote', 'demote', 'elect', 'start', 'stop', 'recover', 'confirm-down', 'failures', 'watch', 'check', 'keygen'];
const NEEDS: Record<string, string> = { maintenance: 'on or off (koi maintenance on|off)', promote: 'a node (koi promote <node>)', 'confirm-down': 'a node (koi confirm-down <node>)' };

/** yargs's message, said for this command line in one line. */
export function usageLine(msg: string, args: readonly string[]): string {
  const words = args.filter((a) => !a.startsWith('-'));
  const command = COMMANDS.find((c) => args.includes(c)) ?? null;
  let m: RegExpExecArray | null;
  if ((m = /^Not enough arguments following: (\S+)/.exec(msg)) !== null) return `${m[1]!.length === 1 ? '-' : '--'}${m[1]} needs a value`;
  if (/^Not enough non-option arguments/.test(msg) && command !== null && NEEDS[command] !== undefined) return `${command} needs ${NEEDS[command]}`;
  if ((m = /^Invalid values:\s*Argument: (\S+), Given: (.*), Choices: (.*)$/s.exec(msg.trim())) !== null) return `${command ?? ''} ${m[1]} must be one of ${m[3]!.replace(/\s+/g, ' ')}, not ${m[2]}`.trim();
  if (/^Did you mean /.test(msg) || (command === null && /^Unknown arguments?: /.test(msg) && words.length > 0 && !COMMANDS.includes(words[0]!))) {
    const hint = /^Did you mean (.*)\?$/.exec(msg);
    return `unknown command ${JSON.stringify(words[0] ?? '')}${hint !== null ? ` — did you mean ${hint[1]}?` : ''}`;
  }
  if ((m = /^Unknown arguments?: (.*)$/.exec(msg)) !== null) {
    const unknown = m[1]!.split(', ');
    const opts = unknown.filter((u) => args.some((a) => a === `-${u}` || a === `--${u}` || a.startsWith(`--${u}=`) || (a.startsWith('-') && !a.startsWith('--') && a.includes(u))));
    const extra = unknown.filter((u) => !opts.includes(u));
    if (extra.length > 0 && command !== null) return `too many arguments for ${command}: ${extra.join(' ')}`;
    return `unknown option ${opts.map((u) => (u.length === 1 ? `-${u}` : `--${u}`)).join(', ')}`;
  }
  return msg.replace(/\s*\n\s*/g, ' ').trim();
}
