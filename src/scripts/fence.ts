// Running the fence script: `FENCE NODE ADDRESS` in its own process group,
// its output logged line by line, killed (the whole group) when it does not
// answer in time. Success is exit 0.
import { spawn } from 'node:child_process';

export const FENCE_TIMEOUT_MS = 30_000;

export interface FenceRun {
  /** The fence script (`[cluster] fence`). */
  file: string;
  node: string;
  /** The node's HOST:PORT. */
  address: string;
  /** KOI_MASTER, KOI_LEADER and KOI_EPOCH as this node sees them. */
  master: string | null;
  leader: string | null;
  epoch: number;
}

export type FenceLog = (level: 'info' | 'warn' | 'error', msg: string) => void;

/** Start the fence of `run.node`; `done` is called once, with whether it succeeded. */
export function spawnFence(run: FenceRun, log: FenceLog, done: (ok: boolean) => void, timeoutMs = FENCE_TIMEOUT_MS): void {
  const { file, node, address } = run;
  log('warn', `fencing ${node} (${address}) with ${file}`);
  const child = spawn(file, [node, address], {
    env: { ...process.env, KOI_EVENT: 'fence', KOI_NODE: node, KOI_NODE_ADDRESS: address, KOI_MASTER: run.master ?? '', KOI_LEADER: run.leader ?? '', KOI_EPOCH: String(run.epoch) },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let settled = false;
  const finish = (ok: boolean, why: string) => {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    log(ok ? 'warn' : 'error', `fence of ${node}: ${ok ? 'succeeded' : `failed (${why})`}`);
    done(ok);
  };
  const timer = setTimeout(() => {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // gone
    }
    finish(false, `no answer within ${timeoutMs / 1000}s`);
  }, timeoutMs);
  const lines = (b: Buffer) => {
    for (const l of b.toString('utf8').split('\n')) if (l.trim() !== '') log('info', l.slice(0, 2000));
  };
  child.stdout?.on('data', lines);
  child.stderr?.on('data', lines);
  child.on('error', (e) => finish(false, e.message));
  child.on('exit', (code, sig) => finish(code === 0 && sig === null, sig !== null ? `killed by ${sig}` : `exit ${code}`));
}
