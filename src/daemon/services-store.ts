// Every service koinode knows (those of the folder, and those that left it
// and are still being taken down), with their paths: kept in
// state_dir/services.json, so that a successor finds the services that left
// the folder while no koinode ran, or while one was taking them down, and
// takes them down with the scripts known of them.
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { DiscoveredService } from '../scripts/discovery';

const FILE = 'services.json';

export class ServicesStore {
  private readonly file: string;
  private last = '';

  constructor(dir: string) {
    this.file = join(dir, FILE);
  }

  /** What an earlier koinode left; a damaged file counts as empty (with the reason). */
  load(): { services: DiscoveredService[]; problem: string | null } {
    let text: string;
    try {
      text = readFileSync(this.file, 'utf8');
    } catch {
      return { services: [], problem: null };
    }
    try {
      const list = JSON.parse(text) as unknown;
      if (!Array.isArray(list)) throw new Error('not a list');
      const services = list.filter(
        (x): x is DiscoveredService => typeof x === 'object' && x !== null && typeof (x as DiscoveredService).path === 'string' && typeof (x as DiscoveredService).def?.name === 'string',
      );
      this.last = JSON.stringify(services);
      return { services, problem: null };
    } catch (e) {
      return { services: [], problem: `${this.file} is damaged (${(e as Error).message}): services removed from the folder before this start are not taken down — check them by hand` };
    }
  }

  /** Written (atomically) only when it changes; removed when empty. */
  save(services: DiscoveredService[]): void {
    const text = JSON.stringify(services);
    if (text === this.last) return;
    this.last = text;
    if (services.length === 0) {
      rmSync(this.file, { force: true });
      return;
    }
    const tmp = `${this.file}.tmp`;
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeSync(fd, text);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.file);
  }
}
