// The watchdog device: armed while this runner holds (or is about to hold)
// the master role, fed from the healthy loop only while a reset would still
// come before any leader could free the role by timing (the core decides:
// Runner.watchdogDemand), closed with the magic character when nothing is
// held. If koinode stops running — SIGSTOP, a paused VM, a starved loop,
// kill -9 — the keepalives stop and the machine resets in time.
//
// Two kinds of device:
// - a character device (/dev/watchdog, softdog or hardware): its timeout is
//   set with util-linux's `wdctl --settimeout` (the kernel answers with the
//   timeout it took): at start when no earlier koinode may have held the
//   role, else just before this koinode first opens it — a device a killed
//   koinode left running must not be stopped early by wdctl's magic close;
// - a FIFO: a stand-in for tests and demonstrations (src/demo/watchdog-
//   standin.ts). koinode writes `timeout=<seconds>` when it opens it (what
//   the ioctl does on a device), then one byte per keepalive, and `V` before
//   a close that disarms.
import { spawnSync } from 'node:child_process';
import { closeSync, constants, openSync, statSync, writeSync } from 'node:fs';
import type { WatchdogState } from '../core/types';

export type WatchdogMode = 'off' | 'auto' | 'required';

export interface WatchdogLog {
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
}

type Kind = 'chardev' | 'fifo';

export class Watchdog {
  private fd: number | null = null;
  private kind: Kind | null = null;
  private problem: string | null = null;
  private magicCloseWarned = false;
  private magicCloseChecked = false;
  /** This process set the device's timeout already. */
  private timeoutSet = false;

  constructor(
    readonly mode: WatchdogMode,
    readonly device: string,
    /** From the timings (watchdogTimeoutMs); null when they leave no room for one. */
    readonly timeoutMs: number | null,
    private readonly log: WatchdogLog,
  ) {}

  get armed(): boolean {
    return this.fd !== null;
  }

  /** What the runner's watchdog is once the device is lost: nothing in auto mode, a bar to promotion in required mode. */
  get lostState(): WatchdogState {
    return this.mode === 'required' ? 'unavailable' : 'off';
  }

  /** Why the device cannot be used (null: it can, or the mode is off). */
  get unusableBecause(): string | null {
    return this.problem;
  }

  /**
   * At start: can the device be used with our timeout? Sets it on a real
   * device. 'off' in mode off, or in mode auto when it cannot be used (said
   * once in the log); 'unavailable' in mode required.
   */
  probe(nothingHeld: boolean): WatchdogState {
    if (this.mode === 'off') return 'off';
    this.problem = this.check();
    // wdctl closes the device with the magic character. When no earlier
    // koinode of this boot may have held the role, no countdown of its can be
    // running: set the timeout now, so that arming is a bare open. Otherwise
    // wait until this koinode arms it (a grant, or a confirmed maintenance).
    if (this.problem === null && this.kind === 'chardev' && nothingHeld) {
      this.problem = this.setTimeout();
      this.timeoutSet = this.problem === null;
    }
    if (this.problem === null) {
      this.log.info(`watchdog ${this.device} (${this.kind}): timeout ${this.timeoutMs! / 1000}s, armed while this runner holds the master role`);
      return 'ready';
    }
    if (this.mode === 'auto') {
      this.log.info(`no watchdog: ${this.problem} ([node] watchdog = auto)`);
      return 'off';
    }
    this.log.error(`watchdog required but unusable: ${this.problem} — this runner will not be promoted`);
    return 'unavailable';
  }

  private check(): string | null {
    if (this.timeoutMs === null) return 'master_lease + demote_timeout is too short for a watchdog timeout of a whole second (half of it, less the safety margin, must be at least 1s)';
    let st;
    try {
      st = statSync(this.device);
    } catch (e) {
      return `${this.device}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message} (load a driver, e.g. modprobe softdog)`;
    }
    if (st.isFIFO()) {
      this.kind = 'fifo';
      return null;
    }
    if (!st.isCharacterDevice()) return `${this.device} is neither a watchdog device nor a FIFO`;
    this.kind = 'chardev';
    // Only whether wdctl is there: it opens the device, and its close with
    // the magic character would stop a device a killed koinode left running
    // (which must fire). The timeout is set when this koinode arms it.
    const r = spawnSync('wdctl', ['--version'], { encoding: 'utf8', timeout: 5000 });
    if (r.error !== undefined || r.status !== 0) return `cannot run wdctl, which sets the device's timeout — install util-linux`;
    return null;
  }

  /**
   * Set the timeout of a character device (it must not be open), and check
   * that the kernel took it. Null when it did, else why not.
   */
  private setTimeout(): string | null {
    const seconds = this.timeoutMs! / 1000;
    const env = { ...process.env, LC_ALL: 'C' };
    const r = spawnSync('wdctl', ['--settimeout', String(seconds), this.device], { encoding: 'utf8', env, timeout: 5000 });
    if (r.error !== undefined) return `cannot run wdctl (${(r.error as NodeJS.ErrnoException).code ?? r.error.message})`;
    const out = `${r.stdout}${r.stderr}`.trim();
    if (r.status !== 0) return `wdctl could not set the timeout to ${seconds}s: ${out.split('\n')[0]}`;
    const m = /set to (\d+) second/.exec(out);
    if (m === null) return `wdctl did not say which timeout it set: ${out.split('\n')[0]}`;
    const took = Number(m[1]);
    // A device that rounds up would reset the machine too late.
    if (took > seconds) return `${this.device} takes no timeout below ${took}s, and these timings need at most ${seconds}s`;
    if (!this.magicCloseChecked) {
      this.magicCloseChecked = true;
      const flags = spawnSync('wdctl', ['--flags-only', '--noheadings', '--raw', '--output', 'FLAG', this.device], { encoding: 'utf8', env, timeout: 5000 });
      if (flags.status === 0 && !/\bMAGICCLOSE\b/.test(flags.stdout)) {
        this.log.warn(`${this.device} does not support the magic close: closing it may not stop it, and the machine could reset after a switchover — use another driver (softdog has it)`);
      }
    }
    return null;
  }

  /** Open (arm) the device. False when it cannot be opened now. */
  arm(): boolean {
    if (this.fd !== null) return true;
    if (this.kind === null || this.timeoutMs === null) return false;
    try {
      if (this.kind === 'fifo') {
        // Non-blocking: without a reader this fails (ENXIO) instead of waiting.
        this.fd = openSync(this.device, constants.O_WRONLY | constants.O_NONBLOCK);
        writeSync(this.fd, `timeout=${this.timeoutMs / 1000}\n`);
      } else {
        const why = this.timeoutSet ? null : this.setTimeout();
        this.timeoutSet = why === null;
        if (why !== null) {
          // Not tried again: a device that refused once will refuse again.
          this.problem = why;
          this.log.error(`cannot arm watchdog: ${why}${this.mode === 'required' ? ' — this runner will not be promoted' : ' — going on without one ([node] watchdog = auto)'}`);
          return false;
        }
        this.fd = openSync(this.device, 'w');
      }
    } catch (e) {
      this.closeQuietly();
      this.problem = `cannot open ${this.device}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`;
      this.log.error(`cannot arm watchdog: ${this.problem}${this.mode === 'required' ? ' — this runner will not be promoted' : ' — going on without one ([node] watchdog = auto)'}`);
      return false;
    }
    this.log.info(`watchdog ${this.device} armed (${this.timeoutMs / 1000}s)`);
    return true;
  }

  /** A keepalive. False if the device is gone (then it is closed). */
  feed(): boolean {
    if (this.fd === null) return false;
    try {
      writeSync(this.fd, 'k');
      return true;
    } catch (e) {
      // Not armed again: that would run wdctl, whose magic close stops the
      // countdown that is still running (the close below pings it once).
      this.problem = `keepalive failed: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`;
      this.log.error(`watchdog ${this.device} ${this.problem}${this.mode === 'required' ? ' — this runner will not be promoted again' : ' — going on without one ([node] watchdog = auto)'}`);
      this.closeQuietly();
      return false;
    }
  }

  /** Magic close: the device stops without resetting the machine. */
  disarm(): void {
    if (this.fd === null) return;
    try {
      writeSync(this.fd, 'V');
    } catch {
      if (!this.magicCloseWarned) this.log.warn(`watchdog ${this.device} did not take the magic close: it may reset the machine although nothing is held`);
      this.magicCloseWarned = true;
    }
    this.closeQuietly();
    this.log.info(`watchdog ${this.device} disarmed`);
  }

  private closeQuietly(): void {
    if (this.fd === null) return;
    try {
      closeSync(this.fd);
    } catch {
      // already closed
    }
    this.fd = null;
  }
}
