// The everyday read-only commands (`koi status [node]`, `local`, `tree`,
// `failures`) with plain options are parsed here without loading yargs,
// which costs about 30 ms of a 100 ms command. Anything else (help, version,
// an unknown, repeated or unusual option) gives null and yargs parses as
// always; test/unit/fast-args.test.ts checks that both read every accepted
// form the same way.
import type { GlobalArgs } from './commands';

export type FastCommand = 'status' | 'local' | 'tree' | 'failures';

export interface FastArgs extends GlobalArgs {
  command: FastCommand;
  node?: string;
}

const SHORT: Record<string, string> = { f: 'file', H: 'host', p: 'port', t: 'timeout' };
const COMMANDS: readonly string[] = ['status', 'local', 'tree', 'failures'];

export function parseFast(argv: readonly string[]): FastArgs | null {
  const out: GlobalArgs = { timeout: 6, json: false, color: true };
  const seen = new Set<string>();
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('-')) {
      // yargs would read true/false after a boolean option as its value.
      if (a === '' || a === 'true' || a === 'false') return null;
      positional.push(a);
      continue;
    }
    let name: string;
    let value: string | undefined;
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      name = eq < 0 ? a.slice(2) : a.slice(2, eq);
      value = eq < 0 ? undefined : a.slice(eq + 1);
    } else if (a.length === 2 && SHORT[a[1]!] !== undefined) {
      name = SHORT[a[1]!]!;
    } else {
      return null;
    }
    const key = name === 'no-color' ? 'color' : name;
    if (seen.has(key)) return null;
    seen.add(key);
    switch (name) {
      case 'json':
        if (value !== undefined) return null;
        out.json = true;
        break;
      case 'color':
      case 'no-color':
        if (value !== undefined) return null;
        out.color = name === 'color';
        break;
      case 'file':
      case 'host':
      case 'port':
      case 'timeout': {
        if (value === undefined) {
          value = argv[++i];
          if (value === undefined || value.startsWith('-')) return null;
        }
        if (value === '') return null;
        if (name === 'file') out.file = [value];
        else if (name === 'host') out.host = value;
        else if (!/^\d+$/.test(value)) return null;
        else if (name === 'port') out.port = Number(value);
        else out.timeout = Number(value);
        break;
      }
      default:
        return null;
    }
  }
  const [command, node, ...rest] = positional;
  if (command === undefined || !COMMANDS.includes(command) || rest.length > 0) return null;
  if (node !== undefined && command !== 'status') return null;
  const r: FastArgs = { ...out, command: command as FastCommand };
  if (node !== undefined) r.node = node;
  return r;
}
