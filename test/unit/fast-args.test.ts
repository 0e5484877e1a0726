// The yargs-free parser of the everyday commands must read every form it
// accepts exactly as yargs does, and leave everything else to yargs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseFast, type FastArgs } from '../../src/cli/fast-args';
import { parser } from '../../src/cli/main';

/** What either parser made of a command line. */
type Parsed = FastArgs;

async function viaYargs(args: string[]): Promise<Parsed> {
  let got: Record<string, unknown> | null = null;
  await parser(args, () => async (argv) => {
    got = argv;
  }).parseAsync();
  assert.ok(got !== null, `yargs ran no command for ${args.join(' ')}`);
  const a = got as Record<string, unknown>;
  const f = a.file as string | string[] | undefined;
  const out: Parsed = { command: String((a._ as unknown[])[0]) as Parsed['command'], timeout: a.timeout as number, json: a.json as boolean, color: a.color as boolean };
  if (a.node !== undefined) out.node = a.node as string;
  if (f !== undefined) out.file = Array.isArray(f) ? f : [f];
  if (a.host !== undefined) out.host = a.host as string;
  if (a.port !== undefined) out.port = a.port as number;
  return out;
}

const ACCEPTED = [
  ['status'],
  ['status', 'n2'],
  ['local'],
  ['tree'],
  ['failures'],
  ['-f', '/etc/koi/koi.conf', 'status'],
  ['status', '--json'],
  ['--json', 'status', 'n1'],
  ['status', '--no-color'],
  ['status', '--color'],
  ['--file=/tmp/a.conf', 'local', '--json'],
  ['-H', '10.0.0.2', '-p', '42012', 'status'],
  ['--host', 'db1', '--port=7000', '-t', '2', 'tree'],
  ['--timeout', '15', 'failures', '--json', '--no-color'],
  ['status', 'n3', '-f', 'x.conf', '-H', '::1'],
];

test('the fast parser agrees with yargs on every form it accepts', async () => {
  for (const args of ACCEPTED) {
    const fast = parseFast(args);
    assert.ok(fast !== null, `fast path declined ${args.join(' ')}`);
    const { command, ...rest } = fast;
    assert.deepEqual({ command, ...rest }, await viaYargs(args), args.join(' '));
  }
});

test('the fast parser leaves everything unusual to yargs', () => {
  const declined = [
    [],
    ['--help'],
    ['-h'],
    ['--version'],
    ['status', '--help'],
    ['promote', 'n1'],
    ['maintenance', 'on'],
    ['watch'],
    ['local', 'n1'],
    ['status', 'a', 'b'],
    ['-fx.conf', 'status'],
    ['status', '--json=false'],
    ['status', '--json', 'true'],
    ['status', '--no-json'],
    ['status', '-t', '1.5'],
    ['status', '--port=abc'],
    ['status', '-f'],
    ['status', '-f', '--json'],
    ['-f', 'a', '-f', 'b', 'status'],
    ['status', '--'],
    ['status', '-x'],
    ['stat'],
  ];
  for (const args of declined) assert.equal(parseFast(args), null, args.join(' '));
});
