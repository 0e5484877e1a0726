// Finding services on disk: `[NN-]name` directories holding event scripts,
// or single executables called with the event as first argument.
import { accessSync, constants, existsSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { ScriptEvent, ServiceDef } from '../core/types';

export const SCRIPT_EVENTS: readonly ScriptEvent[] = ['start', 'stop', 'status', 'promote', 'demote', 'failed'];

export interface DiscoveredService {
  def: ServiceDef;
  /** The directory, or the single executable. */
  path: string;
  /**
   * Where `path` led when found (symbolic links resolved): a service whose
   * link left the folder is still stopped with the scripts behind it.
   */
  realPath?: string;
  single: boolean;
}

export interface Discovery {
  services: DiscoveredService[];
  /** Ignored entries and other things worth one log line. */
  warnings: string[];
  /** Things that will make scripts fail: not executable, duplicate names. */
  problems: string[];
  /** Names that probably do not mean what they say (a priority without its dash). */
  names: string[];
  /** The folder itself could not be read: the list says nothing about what left it. */
  unreadable: boolean;
}

export function isExecutable(p: string): boolean {
  try {
    accessSync(p, constants.X_OK);
    return statSync(p).isFile();
  } catch {
    return false;
  }
}

/** Entries the original also skipped: editor backups, dotted names, `#name#`. */
export function ignoredName(name: string): boolean {
  return name.includes('.') || name.endsWith('~') || /^#.*#$/.test(name);
}

export function splitName(entry: string): { name: string; priority: number | null } {
  const m = /^(\d{1,2})-(.+)$/.exec(entry);
  return m === null ? { name: entry, priority: null } : { name: m[2]!, priority: Number(m[1]) };
}

export function discoverServices(folder: string): Discovery {
  const out: Discovery = { services: [], warnings: [], problems: [], names: [], unreadable: false };
  let entries: string[];
  try {
    entries = readdirSync(folder).sort();
  } catch (e) {
    out.problems.push(`cannot read services folder ${folder}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    out.unreadable = true;
    return out;
  }
  const byName = new Map<string, string>();
  for (const entry of entries) {
    const p = join(folder, entry);
    if (ignoredName(entry)) {
      out.warnings.push(`ignoring ${p} (names with ".", ending in "~" or like #name# are skipped)`);
      continue;
    }
    let st;
    try {
      st = statSync(p);
    } catch {
      out.warnings.push(`ignoring ${p}: it vanished or is a broken link`);
      continue;
    }
    const { name, priority } = splitName(entry);
    const looksNumbered = /^(\d{1,2})([^\d-].*)$/.exec(entry);
    if (priority === null && looksNumbered !== null) {
      // The original's layout is NN-name too, but an operator may mean 10vip as priority 10.
      out.names.push(`${p}: "${entry}" has no priority (a priority is two digits and a dash) — rename it ${looksNumbered[1]}-${looksNumbered[2]} if ${looksNumbered[1]} is meant as its priority`);
    }
    if (byName.has(name)) {
      out.problems.push(`${p} and ${byName.get(name)} are both service "${name}" — rename one; only the first is used`);
      continue;
    }
    if (st.isDirectory()) {
      const scripts: ScriptEvent[] = [];
      for (const ev of SCRIPT_EVENTS) {
        const s = join(p, ev);
        if (!existsSync(s)) continue;
        if (!isExecutable(s)) out.problems.push(`${s} is not an executable file — chmod +x it (it fails every time it runs)`);
        scripts.push(ev);
      }
      byName.set(name, p);
      out.services.push({ def: { name, priority, scripts, disabled: existsSync(join(p, 'disabled')) }, path: p, single: false, realPath: realPath(p) });
    } else if (st.isFile()) {
      if (!isExecutable(p)) {
        out.warnings.push(`ignoring ${p}: a file service must be executable — chmod +x it`);
        continue;
      }
      byName.set(name, p);
      out.services.push({ def: { name, priority }, path: p, single: true, realPath: realPath(p) });
    } else {
      out.warnings.push(`ignoring ${p}: neither a directory nor a file`);
    }
  }
  return out;
}

function realPath(p: string): string | undefined {
  try {
    return realpathSync(p);
  } catch {
    return undefined;
  }
}

/** Whether `disabled` is present now (checked again at every status interval). */
export function isDisabled(s: DiscoveredService): boolean {
  return !s.single && existsSync(join(s.path, 'disabled'));
}
