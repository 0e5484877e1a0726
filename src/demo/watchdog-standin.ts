// A stand-in watchdog device for tests and demonstrations, as Patroni's
// acceptance tests use one: a FIFO at the device path that behaves like
// /dev/watchdog without resetting anything. koinode writes `timeout=<s>`
// when it opens the device (arming it), one byte per keepalive, and `V`
// before a close that disarms. The stand-in writes one line per change to
// its log (and stdout): `<wall ms> armed <s>`, `<wall ms> disarmed
// <keepalives>`, `<wall ms> fired <keepalives>` when no keepalive came for
// the timeout — the moment a real device would have reset the machine.
//
//   node dist/src/demo/watchdog-standin.js DEVICE_PATH LOG_FILE
import { spawnSync } from 'node:child_process';
import { appendFileSync, constants, existsSync, openSync, rmSync } from 'node:fs';
import { Socket } from 'node:net';

export class WatchdogStandIn {
  private timer: NodeJS.Timeout | null = null;
  private timeoutMs = 0;
  private keepalives = 0;
  private line = '';
  private socket: Socket | null = null;

  constructor(
    readonly device: string,
    private readonly onEvent: (line: string) => void,
  ) {}

  start(): void {
    if (existsSync(this.device)) rmSync(this.device);
    const r = spawnSync('mkfifo', ['-m', '600', this.device]);
    if (r.status !== 0) throw new Error(`mkfifo ${this.device} failed: ${r.stderr?.toString().trim()}`);
    // Read and write: never an end of file when koinode closes its side, and
    // koinode's non-blocking open always finds a reader.
    const fd = openSync(this.device, constants.O_RDWR | constants.O_NONBLOCK);
    this.socket = new Socket({ fd, readable: true, writable: false });
    this.socket.setEncoding('latin1');
    this.socket.on('data', (chunk: string) => this.take(chunk));
  }

  /** The machine rebooted: the device is disarmed and silent. */
  reset(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.line = '';
  }

  stop(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.socket?.destroy();
    rmSync(this.device, { force: true });
  }

  private say(what: string): void {
    this.onEvent(`${Date.now()} ${what}`);
  }

  private take(chunk: string): void {
    for (const ch of chunk) {
      if (this.line !== '' || ch === 't') {
        // The announcement line of an open: timeout=<seconds>
        if (ch === '\n') {
          const m = /^timeout=(\d+)$/.exec(this.line);
          this.line = '';
          if (m !== null) {
            this.timeoutMs = Number(m[1]) * 1000;
            this.keepalives = 0;
            this.say(`armed ${m[1]}`);
            this.restart();
          }
        } else this.line += ch;
        continue;
      }
      if (ch === 'V') {
        if (this.timer !== null) {
          clearTimeout(this.timer);
          this.timer = null;
          this.say(`disarmed ${this.keepalives}`);
        }
        continue;
      }
      if (this.timer !== null) {
        this.keepalives++;
        this.restart();
      }
    }
  }

  private restart(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      this.say(`fired ${this.keepalives}`);
    }, this.timeoutMs);
  }
}

if (require.main === module) {
  const [device, log] = process.argv.slice(2);
  if (device === undefined || log === undefined) {
    process.stderr.write('usage: watchdog-standin DEVICE_PATH LOG_FILE\n');
    process.exit(2);
  }
  const s = new WatchdogStandIn(device, (l) => {
    appendFileSync(log, `${l}\n`);
    process.stdout.write(`${l}\n`);
  });
  s.start();
  const quit = () => {
    s.stop();
    process.exit(0);
  };
  process.on('SIGTERM', quit);
  process.on('SIGINT', quit);
}
