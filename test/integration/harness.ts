// Real koinode processes on loopback for integration tests: each cluster in
// its own temporary directory, with the recording service, free ports, and
// polling with deadlines (never a bare sleep to wait for a condition).
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, copyFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { StatusJson } from '../../src/admin-types';
import { KOI, killWithScripts, processesWith, REPO, startNode, stopAll, writeCluster, type LocalNode, type NodeSpec } from '../../src/demo/local-cluster';

export const FAST = {
  time: { heartbeat_interval: '100ms', leader_timeout: '500ms', master_lease: '1s', status_interval: '1s' },
  service: { demote_timeout: '1s', promote_timeout: '3s', start_timeout: '3s', stop_timeout: '3s', status_timeout: '2s', failed_timeout: '2s', auto_recover: '0' },
};
export const SECRET = 'integration-secret-0123456789abcdef';

export interface KoiResult {
  code: number;
  stdout: string;
  stderr: string;
}

export class TestCluster {
  readonly journal: string;

  constructor(
    readonly root: string,
    readonly nodes: LocalNode[],
  ) {
    this.journal = join(root, 'journal');
  }

  static async start(
    specs: NodeSpec[] = [{ name: 'n1', priority: 3 }, { name: 'n2', priority: 2 }, { name: 'n3', priority: 1 }],
    opts: { services?: string[]; extra?: Record<string, Record<string, string>>; extraFor?: (node: string, root: string) => Record<string, Record<string, string>>; start?: boolean } = {},
  ): Promise<TestCluster> {
    const root = mkdtempSync(join(tmpdir(), 'koi-it-'));
    const services = opts.services ?? ['10-db'];
    const nodes = await writeCluster({
      root,
      nodes: specs,
      secret: SECRET,
      fillServices: (dir) => {
        for (const s of services) {
          if (s.endsWith('/')) {
            // A directory service: every event script is the recorder.
            mkdirSync(join(dir, s));
            for (const ev of ['start', 'stop', 'status', 'promote', 'demote', 'failed']) {
              copyFileSync(join(REPO, 'services', 'testing', 'record'), join(dir, s, ev));
              chmodSync(join(dir, s, ev), 0o755);
            }
          } else if (s.endsWith('+')) {
            mkdirSync(join(dir, s.slice(0, -1))); // an empty directory: a null service
          } else {
            copyFileSync(join(REPO, 'services', 'testing', 'record'), join(dir, s));
            chmodSync(join(dir, s), 0o755);
          }
        }
      },
      extra: { ...FAST, ...opts.extra, time: { ...FAST.time, ...opts.extra?.time }, service: { ...FAST.service, ...opts.extra?.service } },
      extraFor: opts.extraFor === undefined ? undefined : (node) => opts.extraFor!(node, root),
    });
    const c = new TestCluster(root, nodes);
    writeFileSync(c.journal, '');
    if (opts.start !== false) for (const n of nodes) c.startNode(n.name);
    return c;
  }

  node(name: string): LocalNode {
    return this.nodes.find((n) => n.name === name)!;
  }

  startNode(name: string, env: NodeJS.ProcessEnv = {}): void {
    startNode(this.node(name), { KOI_JOURNAL: this.journal, KOI_JOURNAL_DIR: this.root, ...env });
  }

  /** kill -9 of koinode and of every script it started (they run in their own process groups). */
  kill9(name: string): void {
    killWithScripts(this.node(name));
  }

  /** Steer the recording service: fail-<node>-<service>-<event>, sleep-<event>, ... */
  setFlag(flag: string, content = ''): void {
    writeFileSync(join(this.root, flag), content);
  }

  clearFlag(flag: string): void {
    rmSync(join(this.root, flag), { force: true });
  }

  /**
   * Run koi through a node. Commands are retried, like an operator would,
   * when the answer was transient: a leader change (e.g. the Bully takeover
   * of a late n1) or a runner still starting. Every command is idempotent.
   */
  async koi(args: string[], via = 'n1', timeoutMs = 15_000): Promise<KoiResult> {
    const transient = /stepped down|did not reach a quorum|no leader|not promotable yet|no answer from the core|did not answer/;
    const command = ['maintenance', 'promote', 'demote', 'elect', 'start', 'stop', 'recover'].includes(args[0] ?? '');
    for (let attempt = 0; ; attempt++) {
      const r = await koi(['-f', this.node(via).conf, '--no-color', ...args], timeoutMs);
      if (r.code === 0 || !command || attempt >= 4 || !transient.test(r.stderr)) return r;
      await new Promise((res) => setTimeout(res, 700));
    }
  }

  async status(via?: string): Promise<StatusJson | null> {
    for (const n of via !== undefined ? [this.node(via)] : this.nodes.filter((x) => x.proc !== null)) {
      const r = await this.koi(['status', '--json', '-t', '2'], n.name);
      if (r.code === 0) return JSON.parse(r.stdout) as StatusJson;
    }
    return null;
  }

  /** Poll `koi status` until `pred` holds; returns the status that satisfied it. */
  async waitFor(what: string, pred: (s: StatusJson) => boolean, timeoutMs = 10_000): Promise<StatusJson> {
    const end = Date.now() + timeoutMs;
    let last: StatusJson | null = null;
    while (Date.now() < end) {
      last = await this.status();
      if (last !== null && !last.partial && pred(last)) return last;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}; last status: ${JSON.stringify(last?.cluster)} ${JSON.stringify(last?.nodes.map((n) => [n.name, n.state]))}`);
  }

  /** One leader and a master whose services are all promoted. */
  settled(s: StatusJson): boolean {
    const m = s.nodes.find((n) => n.name === s.cluster.master);
    return s.cluster.leader !== null && m !== undefined && m.state === 'master' && m.services.every((x) => x.state === 'promoted');
  }

  journalLines(): string[][] {
    return readFileSync(this.journal, 'utf8')
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => l.split(' '));
  }

  log(name: string): string {
    return readFileSync(this.node(name).log, 'utf8');
  }

  /**
   * Kill everything this cluster started: koinodes, the scripts they were
   * running (an orphaned recorder would re-create the journal while the
   * directory is being removed) and daemons the scripts started, then remove
   * the directory.
   */
  async stop(): Promise<void> {
    for (const n of this.nodes) killWithScripts(n);
    await stopAll(this.nodes, 'SIGKILL', 5000);
    for (const pid of processesWith(`KOI_JOURNAL=${this.journal}`)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // exited meanwhile
      }
    }
    rmSync(this.root, { recursive: true, force: true, maxRetries: 10, retryDelay: 50 });
  }
}

export function koi(args: string[], timeoutMs = 15_000): Promise<KoiResult> {
  return new Promise((resolve) => {
    execFile(process.execPath, [KOI, ...args], { timeout: timeoutMs }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1;
      resolve({ code, stdout, stderr });
    });
  });
}

export function tempDir(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  mkdirSync(d, { recursive: true });
  return d;
}
