// Script shapes that worked with the original koi (or look harmless) but
// break koi's contract: found by reading shell scripts, for `koi check`.
// A heuristic: it only speaks when the shape is plain to see.
import { closeSync, openSync, readSync } from 'node:fs';
import type { ScriptEvent } from '../core/types';
import { assertNever } from '../core/types';

/** How much of a script is read (a service script is small). */
const READ_BYTES = 64 * 1024;

function readHead(p: string): string | null {
  try {
    const fd = openSync(p, 'r');
    try {
      const buf = Buffer.alloc(READ_BYTES);
      const n = readSync(fd, buf, 0, buf.length, 0);
      return buf.subarray(0, n).toString('utf8');
    } finally {
      closeSync(fd);
    }
  } catch {
    return null;
  }
}

const SHELLS = /^#!\s*\S*\/(env\s+)?(sh|bash|dash|ksh|zsh)\b/;

/** The commands of a shell script, one per line, comments and blank lines left out. */
function commandLines(text: string): string[] {
  return text
    .split('\n')
    .slice(1)
    .map((l) => l.replace(/(^|\s)#.*$/, '').trim())
    .filter((l) => l !== '');
}

/** A last command whose status says nothing about the work before it. */
const ALWAYS_ZERO = /^(exit\s+0|true|:|echo\b.*|printf\b.*|logger\b.*)\s*;?$/;

/**
 * Warnings for one script of a directory service; empty when nothing is
 * plain to see (or the script is not a shell script).
 */
export function scriptPatternWarnings(p: string, event: ScriptEvent): string[] {
  const text = readHead(p);
  if (text === null || !SHELLS.test(text)) return [];
  const lines = commandLines(text);
  const last = lines[lines.length - 1] ?? '';
  // Some way out with a failure: an exit code, `|| exit`, `set -e`, koi-service.sh's koi_fail.
  const nonZeroExit = /\bexit\s+(\$|[1-9])|\breturn\s+[1-9]|\bKOI_IS_|\bset\s+-\w*e|\bkoi_fail\b|\|\|\s*exit\b/.test(lines.join('\n'));
  const out: string[] = [];
  switch (event) {
    case 'status':
      if (!nonZeroExit && ALWAYS_ZERO.test(last)) {
        out.push(`${p}: this status always exits 0 — koi then takes the service as running at every start and never runs start, and never sees it die; exit 92 when it is down ($KOI_IS_STOPPED in koi-service.sh)`);
      }
      break;
    case 'start':
      if (/^exec\s/.test(last)) {
        out.push(`${p}: start ends by exec'ing a program, which then runs in the foreground — start must exit: koi kills it (and whatever it runs) at start_timeout; start the daemon in the background (&) or through its own service manager`);
      }
      break;
    case 'promote':
    case 'demote':
    case 'stop':
      if (lines.length > 1 && !nonZeroExit && ALWAYS_ZERO.test(last)) {
        out.push(`${p}: ends with "${last}", so it exits 0 whatever happened before — a failed ${event} goes unnoticed; end with the command that does the work, or add set -e`);
      }
      break;
    case 'failed':
      break;
    default:
      assertNever(event);
  }
  return out;
}
