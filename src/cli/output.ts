// The CLI's output: aligned tables and colour for people, one JSON document
// for programs. The only place that writes to stdout.
export interface Out {
  json: boolean;
  color: boolean;
}

const CODES: Record<string, string> = { red: '31', green: '32', yellow: '33', blue: '34', magenta: '35', cyan: '36', gray: '90', bold: '1' };

export function paint(o: Out, color: keyof typeof CODES | string, text: string): string {
  const code = CODES[color];
  return o.color && code !== undefined ? `\x1b[${code}m${text}\x1b[0m` : text;
}

/** Colour of a node or service state word. */
export function stateColor(state: string): string {
  switch (state) {
    case 'master':
    case 'promoted':
      return 'green';
    case 'slave':
    case 'started':
    case 'live':
      return 'cyan';
    case 'failed':
    case 'failing':
    case 'disconnected':
      return 'red';
    case 'stopped':
    case 'elector':
    case 'other':
      return 'gray';
    default:
      return 'yellow';
  }
}

// eslint-disable-next-line no-control-regex
const visible = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, '').length;

/** Columns aligned; a row of one cell in a wider table is a note spanning it and sets no width. */
export function table(rows: string[][]): string {
  const widths: number[] = [];
  const wide = rows.some((r) => r.length > 1);
  for (const r of rows) if (!wide || r.length > 1) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, visible(c))));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c + ' '.repeat(widths[i]! - visible(c)))).join('  ')).join('\n');
}

export function print(text: string): void {
  process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

export function printJsonLine(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

export function ago(ms: number | null): string {
  if (ms === null) return 'never';
  if (ms < 1000) return `${ms}ms`;
  if (ms < 120_000) return `${Math.round(ms / 100) / 10}s`;
  return `${Math.round(ms / 60_000)}m`;
}

/** The note under a failed node in `koi status`: when it is tried next and why. */
export function recoveryNote(o: Out, n: { nextRecoveryInMs?: number | null; recoveryWaitReason?: string | null }): string | null {
  const reason = n.recoveryWaitReason ?? null;
  if (reason === null) return null;
  const when = n.nextRecoveryInMs === undefined || n.nextRecoveryInMs === null ? 'no try scheduled' : `next try in ${ago(n.nextRecoveryInMs)}`;
  return paint(o, 'yellow', `  └ ${when}: ${reason}`);
}
