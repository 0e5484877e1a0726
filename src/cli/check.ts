// `koi check [folder] [-f koi.conf]`: validation without a running cluster.
import { existsSync } from 'node:fs';
import { CONFIG_SEARCH, type KoiConfig } from '../config/config';
import { loadConfig } from '../config/load';
import { ConfigError, RefusedError, UsageError } from '../errors';
import { checkServices } from '../scripts/check';
import type { Ctx } from './commands';
import { paint, print, printJson } from './output';

export async function runCheck(ctx: Ctx, folder: string | undefined): Promise<void> {
  const problems: string[] = [];
  let config: KoiConfig | null = null;
  // What the loader warns about and explains, so that check tells what koinode would log.
  const warnings: string[] = [];
  const configNotes: string[] = [];
  const explicit = ctx.args.file !== undefined && ctx.args.file.length > 0;
  if (explicit || CONFIG_SEARCH.some((f) => existsSync(f))) {
    try {
      const loaded = loadConfig(ctx.args.file, folder === undefined ? {} : { services: folder });
      config = loaded.config;
      warnings.push(...loaded.warnings);
      configNotes.push(...loaded.notes);
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      problems.push(e.message);
    }
  }
  const dir = folder ?? config?.service.folder;
  if (dir === undefined && problems.length === 0) throw new UsageError('no services folder: name one (koi check FOLDER) or pass -f koi.conf');
  // A configuration that does not load still gets its problem reported.
  const r = dir === undefined ? { services: [], problems: [], warnings: [], notes: ['services not checked: the configuration did not load (or name the folder)'] } : checkServices(dir, config);
  problems.push(...r.problems);
  warnings.push(...r.warnings);
  if (ctx.out.json) {
    printJson({ ok: problems.length === 0, folder: dir, config: config?.file ?? null, services: r.services, problems, warnings, notes: [...r.notes, ...configNotes] });
  } else {
    const o = ctx.out;
    const lines = dir === undefined ? [] : [`services in ${dir}:`];
    for (const s of r.services) lines.push(`  ${s.priority === null ? '--' : String(s.priority).padStart(2, '0')} ${s.name}${s.disabled ? ' (disabled)' : ''}: ${s.scripts.join(' ') || '(no scripts)'}`);
    if (config !== null) lines.push(`configuration ${config.file}: ok`);
    for (const n of [...r.notes, ...configNotes]) lines.push(paint(o, 'gray', `note: ${n}`));
    for (const w of warnings) lines.push(paint(o, 'yellow', `warning: ${w}`));
    for (const p of problems) lines.push(paint(o, 'red', `problem: ${p}`));
    const warned = warnings.length === 0 ? '' : ` (${warnings.length} warning(s))`;
    lines.push(problems.length === 0 ? paint(o, warned === '' ? 'green' : 'yellow', `ok${warned}`) : paint(o, 'red', `${problems.length} problem(s)${warned}`));
    print(lines.join('\n'));
  }
  if (problems.length > 0) {
    const e = new RefusedError(`${problems.length} problem(s) found`);
    process.exitCode = 1;
    throw e;
  }
}
