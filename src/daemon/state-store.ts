// What must survive a restart (epoch, vote, replicated state), written
// atomically: a temporary file, fsync, then rename.
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { PersistedState } from '../core/types';

export class StateStore {
  readonly file: string;

  constructor(dir: string) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.file = join(dir, 'state.json');
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
