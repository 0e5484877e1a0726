// What must survive a restart (epoch, vote, replicated state), written
// atomically: a temporary file, fsync, then rename.
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { PersistedState } from '../core/types';

export class StateStore {
  readonly file: string;

  /** Left beside the state file on the first start: its absence later means a first start. */
  private readonly marker: string;

  constructor(dir: string) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.file = join(dir, 'state.json');
    this.marker = join(dir, 'ran-before');
  }

  /** koinode ran with this state_dir before (so a missing state file was lost). */
  ranBefore(): boolean {
    return existsSync(this.marker);
  }

  markRan(): void {
    if (!this.ranBefore()) writeFileSync(this.marker, 'koinode has run with this state_dir; see docs/OPERATIONS.md before deleting anything here\n', { mode: 0o600 });
  }

  load(): PersistedState | null {
    let text: string;
    try {
      text = readFileSync(this.file, 'utf8');
    } catch {
      return null;
    }
    try {
      const s = JSON.parse(text) as PersistedState;
      if (typeof s.epoch !== 'number' || typeof s.state !== 'object') throw new Error('bad shape');
      return s;
    } catch (e) {
      throw new Error(`${this.file} is damaged (${(e as Error).message}) — move it away to start this node afresh`);
    }
  }

  save(s: PersistedState): void {
    const tmp = `${this.file}.tmp`;
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeSync(fd, JSON.stringify(s));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.file);
  }
}
