// The `koi` commands. Each talks to one node (any node answers; commands that
// only the leader can carry out are forwarded by that node).
import type { AdminCommand } from '../core/types';
import type { AdminRequest, AdminResponse, FailuresJson, LocalJson, StatusJson, WatchEvent } from '../admin-types';
import { loadConfig } from '../config/load';
import type { KoiConfig } from '../config/config';
import { formatHostPort, parseHostPort } from '../config/values';
import { RefusedError, UnreachableError, UsageError } from '../errors';
import { ago, paint, print, printJson, printJsonLine, recoveryNote, stateColor, table, type Out } from './output';
import { connect, newSecret } from './lazy';

export interface GlobalArgs {
  file?: string[];
  host?: string;
  port?: number;
  timeout: number;
  json: boolean;
  color: boolean;
}

export class Ctx {
  readonly out: Out;
  readonly timeoutMs: number;
  private cfg: KoiConfig | null = null;

  constructor(readonly args: GlobalArgs) {
    this.out = { json: args.json, color: args.color && process.stdout.isTTY === true && process.env.NO_COLOR === undefined };
    if (!Number.isFinite(args.timeout) || args.timeout <= 0) throw new UsageError(`--timeout ${args.timeout} must be a positive number of seconds`);
    this.timeoutMs = args.timeout * 1000;
  }

  config(): KoiConfig {
    this.cfg ??= loadConfig(this.args.file, { client: true }).config;
    return this.cfg;
  }

  address(): string {
    const c = this.config();
    if (this.args.host !== undefined) {
      const hp = parseHostPort(this.args.host, this.args.port ?? c.node.port);
      return formatHostPort({ host: hp.host, port: this.args.port ?? hp.port });
    }
    const self = c.cluster.transport.find((p) => p.name === c.node.name)!;
    return formatHostPort({ host: self.host, port: this.args.port ?? self.port });
  }

  async call(req: AdminRequest): Promise<AdminResponse> {
    const client = connect(this.address(), this.config());
    try {
      return await client.call(req, this.timeoutMs);
    } finally {
      client.close();
    }
  }

  /** Call and insist on success: a refusal becomes exit status 1 with the node's words. */
  async ask<T>(req: AdminRequest): Promise<T> {
    const r = await this.call(req);
    if (!r.ok) {
      if (r.code === 'not-leader') throw new RefusedError(r.error ?? 'no leader right now — check that a quorum of electors is up, then retry');
      throw new RefusedError(r.error ?? `the cluster refused (${r.code})`);
    }
    return r.data as T;
  }
}

// ---- read-only commands --------------------------------------------------------------

export async function status(ctx: Ctx, node: string | undefined): Promise<void> {
  const st = await ctx.ask<StatusJson>({ op: 'status' });
  if (node !== undefined) {
    if (!st.nodes.some((n) => n.name === node)) throw new RefusedError(`no node named ${node} — known: ${st.nodes.map((n) => n.name).join(', ')}`);
    st.nodes = st.nodes.filter((n) => n.name === node);
  }
  if (ctx.out.json) return printJson(st);
  const o = ctx.out;
  const c = st.cluster;
  const q = c.quorum;
  const head = [
    `cluster ${c.id}`,
    `epoch ${c.epoch}`,
    `leader ${c.leader === null ? paint(o, 'red', 'none') : paint(o, 'bold', c.leader)}`,
    `master ${c.master === null ? paint(o, 'yellow', 'none') : paint(o, 'green', c.master)}`,
    `quorum ${q.reachable}/${q.electors} electors (needs ${q.required})`,
  ];
  const notes: string[] = [];
  if (c.maintenance) notes.push(paint(o, 'yellow', 'MAINTENANCE: no script runs, no role changes (koi maintenance off)'));
  if (c.manualMaster) notes.push(paint(o, 'yellow', 'manual mode: no master until koi elect or koi promote'));
  if (c.target !== null) notes.push(`switching master to ${c.target}`);
  for (const w of c.waitingFor ?? []) notes.push(paint(o, 'yellow', `waiting: ${w.reason}`));
  if (c.network?.warning) notes.push(paint(o, 'yellow', `slow network: ${c.network.warning}`));
  const timings = new Set(st.nodes.filter((n) => n.timings).map((n) => `${n.timings!.masterLeaseMs}/${n.timings!.demoteTimeoutMs}`));
  if (timings.size > 1) {
    const each = st.nodes.filter((n) => n.timings).map((n) => `${n.name} ${n.timings!.masterLeaseMs}/${n.timings!.demoteTimeoutMs}ms`);
    notes.push(paint(o, 'yellow', `master_lease/demote_timeout differ (${each.join(', ')}): a leader waits out the longest, a runner keeps to the shortest — finish the rolling change`));
  }
  const protocols = new Set(st.nodes.filter((n) => n.version !== null).map((n) => n.version!.protocol));
  if (protocols.size > 1) {
    const each = st.nodes.filter((n) => n.version !== null).map((n) => `${n.name} ${n.version!.protocol}`);
    notes.push(paint(o, 'yellow', `mixed protocol versions (${each.join(', ')}): finish the rolling upgrade (docs/OPERATIONS.md)`));
  }
  for (const n of st.nodes) if (n.version !== null && !n.version.compatible) notes.push(paint(o, 'red', `${n.name} speaks protocol ${n.version.protocol}, which this cluster cannot talk to — upgrade it (or the others)`));
  if (st.partial) notes.push(paint(o, 'yellow', `partial view from ${st.answeredBy}: no leader answered`));
  const rows = [['NODE', 'ADDRESS', 'ROLES', 'STATE', 'SEEN', 'FAILS', 'VERSION', 'SERVICES']];
  for (const n of st.nodes) {
    rows.push([
      n.leader ? `${n.name}*` : n.name,
      n.address,
      [n.elector ? 'elector' : '', n.runner ? 'runner' : ''].filter((x) => x !== '').join('+') || '-',
      paint(o, stateColor(n.state), n.state),
      n.reachable ? ago(n.lastSeenMs) : paint(o, 'red', ago(n.lastSeenMs)),
      String(n.failcount),
      versionCell(o, n.version),
      n.services.map((s) => `${s.name}:${paint(o, stateColor(s.state), s.state)}${s.running ? `(${s.running})` : ''}${s.disabled ? '(disabled)' : ''}${s.score !== null && s.score !== undefined ? `@${s.score}` : ''}`).join(' ') || '-',
    ]);
    const recovery = recoveryNote(o, n);
    if (recovery !== null) rows.push([recovery]);
  }
  print([head.join('  '), ...notes, '', table(rows), '', '* leader'].join('\n'));
}

/** Protocol and software version: `1.1 (0.2.0)`; an incompatible one in red; `-` when not heard. */
function versionCell(o: Out, v: StatusJson['nodes'][number]['version']): string {
  if (v === null) return '-';
  const text = `${v.protocol}${v.software !== '' ? ` (${v.software})` : ''}`;
  return v.compatible ? text : paint(o, 'red', `${text} incompatible`);
}

export async function tree(ctx: Ctx): Promise<void> {
  const st = await ctx.ask<StatusJson>({ op: 'status' });
  if (ctx.out.json) return printJson(st.nodes.map((n) => ({ name: n.name, state: n.state, services: n.services })));
  const o = ctx.out;
  const lines = [`cluster ${st.cluster.id} (epoch ${st.cluster.epoch})`];
  st.nodes.forEach((n, i) => {
    const lastNode = i === st.nodes.length - 1;
    const tags = [n.leader ? 'leader' : '', st.cluster.master === n.name ? 'master' : ''].filter((x) => x !== '').join(', ');
    lines.push(`${lastNode ? '└──' : '├──'} ${n.name} ${paint(o, stateColor(n.state), n.state)}${tags ? ` [${tags}]` : ''}`);
    n.services
      .slice()
      .sort((a, b) => (a.priority ?? 100) - (b.priority ?? 100))
      .forEach((s, j) => {
        const lastSvc = j === n.services.length - 1;
        const prio = s.priority === null ? '--' : String(s.priority).padStart(2, '0');
        lines.push(`${lastNode ? '    ' : '│   '}${lastSvc ? '└──' : '├──'} ${prio}-${s.name} ${paint(o, stateColor(s.state), s.state)}${s.running ? ` (running ${s.running})` : ''}${s.disabled ? ' (disabled)' : ''}`);
      });
  });
  print(lines.join('\n'));
}

export async function local(ctx: Ctx): Promise<void> {
  const l = await ctx.ask<LocalJson>({ op: 'local' });
  if (ctx.out.json) return printJson(l);
  const o = ctx.out;
  const rows = [
    ['node', `${l.name} (${[l.elector ? 'elector' : '', l.runner ? 'runner' : ''].filter((x) => x).join('+')}) at ${l.address}`],
    ['role', `${l.role}, epoch ${l.epoch}`],
    ['leader', l.leader ?? paint(o, 'red', 'none')],
    ['master', l.master ?? paint(o, 'yellow', 'none')],
    ['state', paint(o, stateColor(l.state), l.state)],
    ['services', l.services.map((s) => `${s.name}:${paint(o, stateColor(s.state), s.state)}`).join(' ') || '-'],
    ['maintenance', l.maintenance ? paint(o, 'yellow', 'on') : 'off'],
    ['config', l.config ?? '-'],
    ['folder', l.servicesFolder],
    ['koinode', `pid ${l.pid}, up ${ago(l.uptimeMs)}, version ${l.version}`],
  ];
  print(table(rows));
}

export async function failures(ctx: Ctx): Promise<void> {
  const fs = await ctx.ask<FailuresJson>({ op: 'failures' });
  if (ctx.out.json) return printJson(fs);
  if (fs.length === 0) return print('no failures recorded');
  const rows = [['TIME', 'NODE', 'SERVICE', 'EVENT', 'RESULT', 'LAST OUTPUT']];
  for (const f of fs) {
    rows.push([
      new Date(f.wallMs).toISOString().replace('T', ' ').slice(0, 19),
      f.node,
      f.service,
      f.event,
      f.signal !== null ? `killed by ${f.signal}` : `exit ${f.exitCode}`,
      (f.output[f.output.length - 1] ?? '').slice(0, 60),
    ]);
  }
  print(table(rows));
}

// ---- commands that change the cluster ------------------------------------------------

export async function command(ctx: Ctx, cmd: AdminCommand, done: string): Promise<void> {
  const data = await ctx.ask<{ note?: string } | undefined>({ op: 'command', command: cmd });
  const note = typeof data?.note === 'string' ? data.note : null;
  if (ctx.out.json) return printJson({ ok: true, command: cmd, ...(note !== null ? { note } : {}) });
  print(note === null ? done : `${done} — accepted, but it cannot take effect yet: ${note}`);
}

export function localName(ctx: Ctx, node: string | undefined): string {
  return node ?? ctx.config().node.name;
}

export async function reconfigure(ctx: Ctx, node: string | undefined): Promise<void> {
  const r = await ctx.ask<{ reloaded: string; needRestart: string[] }>({ op: 'reconfigure', node: node ?? null });
  if (ctx.out.json) return printJson({ ok: true, ...r });
  print(`reloaded ${r.reloaded}${r.needRestart.length > 0 ? `; restart koinode to apply ${r.needRestart.join(', ')}` : ''}`);
}

export async function watch(ctx: Ctx): Promise<void> {
  const address = ctx.address();
  const client = connect(address, ctx.config());
  const o = ctx.out;
  try {
    await new Promise<void>((resolve, reject) => {
      let seen = false;
      let interrupted = false;
      // The node sends the current view at once: no event within the timeout means no answer.
      const timer = setTimeout(() => {
        if (!seen) {
          h.stop();
          reject(new UnreachableError(`no node answered at ${address} within ${ctx.timeoutMs / 1000}s — is koinode running?`));
        }
      }, ctx.timeoutMs);
      const onSigint = () => {
        interrupted = true;
        h.stop();
        clearTimeout(timer);
        resolve();
      };
      const h = client.watch(
        (p: unknown) => {
          seen = true;
          const ev = p as WatchEvent;
          if (o.json) return printJsonLine(ev);
          const { seq, time, node, kind, ...rest } = ev;
          const detail = Object.entries(rest)
            .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
            .join(' ');
          print(`#${seq} ${time.slice(11, 23)} ${node} ${paint(o, 'bold', kind)} ${detail}`);
        },
        (err: Error | null) => {
          clearTimeout(timer);
          process.removeListener('SIGINT', onSigint);
          if (interrupted) return;
          // The stream runs until Ctrl-C: its end is never success.
          reject(err ?? new UnreachableError(`${address} ended the event stream — koinode stopped or restarted; run koi watch again`));
        },
      );
      process.once('SIGINT', onSigint);
    });
  } finally {
    client.close();
  }
}

export async function keygen(ctx: Ctx): Promise<void> {
  const s = newSecret();
  if (ctx.out.json) return printJson({ secret: s });
  print(s);
}
