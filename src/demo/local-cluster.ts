// A cluster of koinodes on 127.0.0.1 in a temporary directory: used by
// `npm run demo`, the integration tests, the fault-injection run and the
// benchmarks. No root, no /etc.
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, cpSync, mkdirSync, openSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';

export const KOINODE = join(__dirname, '..', 'bin', 'koinode.js');
/** The V8 flags of koinode's #! line: interpreter only and a small heap (about 10 MB less resident), without the idle-time full collections of the memory reducer (they cost more CPU than anything koinode does when idle). */
export const DAEMON_NODE_FLAGS = ['--lite-mode', '--no-expose-wasm', '--no-memory-reducer', '--max-semi-space-size=1'];
/** The flags of koi's own `#!` line, for running it with process.execPath. */
export const CLI_NODE_FLAGS = ['--lite-mode', '--no-expose-wasm'];
export const KOI = join(__dirname, '..', 'bin', 'koi.js');
export const REPO = join(__dirname, '..', '..', '..');

export interface NodeSpec {
  name: string;
  priority?: number;
  elector?: boolean;
  runner?: boolean;
}

export interface LocalNode {
  name: string;
  port: number;
  dir: string;
  conf: string;
  services: string;
  log: string;
  proc: ChildProcess | null;
}

export interface ClusterOptions {
  root: string;
  nodes: NodeSpec[];
  secret: string;
  /** Copy this folder into every node's services folder (koi-service.sh comes along). */
  servicesFrom?: string;
  /** Or fill each node's services folder yourself. */
  fillServices?: (dir: string, node: string) => void;
  /** Extra keys: { time: { heartbeat_interval: '100ms' }, ... } */
  extra?: Record<string, Record<string, string>>;
  /** Per node extra keys. */
  extraFor?: (node: string) => Record<string, Record<string, string>>;
  /** The port `self` uses to reach `peer` (e.g. a relay in front of it); default: the peer's own. */
  transportPortFor?: (self: string, peer: string, peerPort: number) => number;
  /** Use these ports for the nodes instead of free ones. */
  ports?: number[];
}

/** Below this the kernel never picks a source port for an outgoing connection. */
function ephemeralFloor(): number {
  try {
    return Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || 32768;
  } catch {
    return 32768;
  }
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/**
 * Ports nobody listens on right now, chosen below the kernel's ephemeral
 * range: a node that restarts must find its port free again, and an
 * ephemeral port may meanwhile serve as the source port of any outgoing
 * connection (which is how a restarted node once failed to bind).
 */
export async function freePorts(n: number): Promise<number[]> {
  const hi = Math.min(ephemeralFloor(), 65536) - 1;
  const lo = Math.max(1024, hi - 20_000);
  const out: number[] = [];
  for (let tries = 0; out.length < n && tries < 10_000; tries++) {
    const p = lo + Math.floor(Math.random() * (hi - lo));
    if (!out.includes(p) && (await canListen(p))) out.push(p);
  }
  if (out.length < n) throw new Error(`no ${n} free ports between ${lo} and ${hi}`);
  return out;
}

function iniText(sections: Record<string, Record<string, string>>): string {
  return Object.entries(sections)
    .map(([s, kv]) => `[${s}]\n${Object.entries(kv).map(([k, v]) => `${k} = ${v}`).join('\n')}\n`)
    .join('\n');
}

function merge(a: Record<string, Record<string, string>>, b: Record<string, Record<string, string>> | undefined): Record<string, Record<string, string>> {
  const out: Record<string, Record<string, string>> = {};
  for (const [s, kv] of Object.entries(a)) out[s] = { ...kv };
  for (const [s, kv] of Object.entries(b ?? {})) out[s] = { ...(out[s] ?? {}), ...kv };
  return out;
}

/** Write every node's directory and koi.conf; start nothing. */
export async function writeCluster(o: ClusterOptions): Promise<LocalNode[]> {
  const ports = o.ports ?? (await freePorts(o.nodes.length));
  const nodes: LocalNode[] = o.nodes.map((n, i) => {
    const dir = join(o.root, n.name);
    return { name: n.name, port: ports[i]!, dir, conf: join(dir, 'koi.conf'), services: join(dir, 'services'), log: join(dir, 'koinode.log'), proc: null };
  });
  for (const [i, n] of nodes.entries()) {
    const transport = nodes.map((p) => `${p.name}=127.0.0.1:${p.name === n.name ? p.port : (o.transportPortFor?.(n.name, p.name, p.port) ?? p.port)}`).join(', ');
    const spec = o.nodes[i]!;
    mkdirSync(n.services, { recursive: true });
    if (o.servicesFrom !== undefined) cpSync(o.servicesFrom, n.services, { recursive: true });
    o.fillServices?.(n.services, n.name);
    const base: Record<string, Record<string, string>> = {
      node: {
        name: n.name,
        port: String(n.port),
        bind: '127.0.0.1',
        state_dir: join(n.dir, 'state'),
        priority: String(spec.priority ?? 0),
        elector: String(spec.elector ?? true),
        runner: String(spec.runner ?? true),
        // Many koinodes on one machine: never the machine's own watchdog
        // (a test that kills koinode would reset it). Tests give a stand-in.
        watchdog: 'off',
      },
      cluster: { secret: o.secret, transport, handlers: join(n.dir, 'handlers') },
      service: { folder: n.services },
    };
    writeFileSync(n.conf, iniText(merge(merge(base, o.extra), o.extraFor?.(n.name))));
    chmodSync(n.conf, 0o600);
  }
  return nodes;
}

/** Start koinode for one node, its output appended to the node's log file. */
export function startNode(n: LocalNode, env: NodeJS.ProcessEnv = {}, args: string[] = []): ChildProcess {
  const fd = openSync(n.log, 'a');
  const proc = spawn(process.execPath, [...DAEMON_NODE_FLAGS, KOINODE, '-f', n.conf, '--no-color', ...args], {
    stdio: ['ignore', fd, fd],
    env: { ...process.env, ...env },
  });
  n.proc = proc;
  proc.once('exit', () => {
    if (n.proc === proc) n.proc = null;
  });
  return proc;
}

/**
 * The machine dies, as far as koi can tell: SIGKILL to every script koinode
 * started (each runs in its own process group) and to koinode itself.
 */
export function killWithScripts(n: LocalNode): void {
  const p = n.proc;
  if (p === null || p.pid === undefined) return;
  let children: string[] = [];
  try {
    children = readFileSync(`/proc/${p.pid}/task/${p.pid}/children`, 'utf8').trim().split(/\s+/).filter((x) => x !== '');
  } catch {
    // no children, or already gone
  }
  for (const c of children) {
    try {
      process.kill(-Number(c), 'SIGKILL');
    } catch {
      // gone already
    }
  }
  p.kill('SIGKILL');
}

/**
 * Pids of the processes whose environment contains `marker` (Linux /proc).
 * Scripts inherit koinode's environment, and so do daemons they start in a
 * session of their own, which killing process groups cannot reach.
 */
export function processesWith(marker: string): number[] {
  const out: number[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      if (readFileSync(`/proc/${p}/environ`, 'utf8').includes(marker)) out.push(Number(p));
    } catch {
      // gone, or not ours to read
    }
  }
  return out;
}

/** SIGTERM (graceful) every running koinode and wait for them to exit. */
export async function stopAll(nodes: LocalNode[], signal: NodeJS.Signals = 'SIGTERM', waitMs = 15_000): Promise<void> {
  await Promise.all(
    nodes.map(
      (n) =>
        new Promise<void>((resolve) => {
          const p = n.proc;
          // Exited already, on its own or by a signal (a killed one has no exit code).
          if (p === null || p.exitCode !== null || p.signalCode !== null) return resolve();
          const t = setTimeout(() => {
            p.kill('SIGKILL');
            resolve();
          }, waitMs);
          p.once('exit', () => {
            clearTimeout(t);
            resolve();
          });
          p.kill(signal);
        }),
    ),
  );
}
