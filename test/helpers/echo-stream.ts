import { createConnection, createServer, type Socket } from 'node:net';
import { createInterface } from 'node:readline';

/**
 * A traffic tool for connection-survival tests (run as its own process inside a netns):
 *
 *   serve NAME PORT                  greets each connection with "NAME\n", then echoes every byte
 *   hold HOST PORT COUNT INTERVAL_MS opens COUNT connections; every INTERVAL_MS each sends 64 bytes
 *                                    of a stream that is a pure function of (connection, offset)
 *                                    and checks the echo byte for byte. Commands on stdin:
 *                                    "progress" prints `progress [received bytes per connection]`;
 *                                    "stop" stops sending, waits (10 s at most) for every echo,
 *                                    closes and prints `result [...]` (one entry per connection).
 *   probe HOST PORT MS EVERY_MS      a new connection every EVERY_MS for MS: greeting, one 64-byte
 *                                    echo, close (10 s each at most); prints `result [...]` (with
 *                                    each one's start time and duration).
 */

const CHUNK = 64;
const byteAt = (conn: number, offset: number) => (conn * 131 + offset * 7 + (offset >> 8)) & 0xff;
const chunk = (conn: number, offset: number) => Buffer.from(Array.from({ length: CHUNK }, (_, i) => byteAt(conn, offset + i)));

export interface HeldConnection {
  localPort: number;
  backend: string;
  sent: number;
  received: number;
  /** Set when the connection closed or reset before `stop`, or an echoed byte was wrong. */
  error: string;
  ok: boolean;
}

function serve(name: string, port: number): void {
  createServer((s) => {
    s.on('error', () => undefined);
    s.write(`${name}\n`);
    s.on('data', (d) => s.write(d));
    s.on('end', () => s.end());
  }).listen(port, () => console.log('listening'));
}

/** One client connection: greeting, then the checked echo stream. */
class Held {
  readonly r: HeldConnection = { localPort: 0, backend: '', sent: 0, received: 0, error: '', ok: false };
  private greeting = '';
  private stopped = false;
  readonly greeted: Promise<void>;
  private onCaughtUp: (() => void) | undefined;

  constructor(readonly index: number, readonly socket: Socket) {
    this.greeted = new Promise((resolve, reject) => {
      socket.once('connect', () => { this.r.localPort = socket.localPort ?? 0; });
      socket.on('data', (d: Buffer) => {
        if (!this.r.backend) {
          this.greeting += d.toString('latin1');
          const nl = this.greeting.indexOf('\n');
          if (nl < 0) return;
          this.r.backend = this.greeting.slice(0, nl);
          d = Buffer.from(this.greeting.slice(nl + 1), 'latin1');
          resolve();
        }
        this.check(d);
      });
      socket.on('error', (e) => { this.fail(e.message); reject(e); });
      socket.on('close', () => { this.fail('closed'); reject(new Error('closed before the greeting')); });
    });
    this.greeted.catch(() => undefined);
  }

  private check(d: Buffer): void {
    for (let i = 0; i < d.length; i++) {
      if (this.r.received >= this.r.sent) return this.fail(`duplicated byte at ${this.r.received}`);
      if (d[i] !== byteAt(this.index, this.r.received)) return this.fail(`wrong byte at ${this.r.received}`);
      this.r.received++;
    }
    if (this.r.received === this.r.sent) this.onCaughtUp?.();
  }

  private fail(why: string): void {
    if (!this.stopped && !this.r.error) this.r.error = why;
    this.onCaughtUp?.();
  }

  send(): void {
    if (this.r.error || this.stopped) return;
    this.socket.write(chunk(this.index, this.r.sent));
    this.r.sent += CHUNK;
  }

  async stop(): Promise<void> {
    if (!this.r.error && this.r.received < this.r.sent) {
      await new Promise<void>((resolve) => {
        this.onCaughtUp = resolve;
        setTimeout(resolve, 10_000).unref();
      });
    }
    if (!this.r.error && this.r.received < this.r.sent) this.r.error = `stalled: ${this.r.sent - this.r.received} bytes not echoed`;
    this.stopped = true;
    this.r.ok = !this.r.error;
    this.socket.destroy();
  }
}

async function hold(host: string, port: number, count: number, intervalMs: number): Promise<void> {
  const conns = Array.from({ length: count }, (_, i) => new Held(i, createConnection({ host, port })));
  await Promise.all(conns.map((c) => c.greeted));
  const ticker = setInterval(() => { for (const c of conns) c.send(); }, intervalMs);
  for (const c of conns) c.send();
  console.log(`ready ${JSON.stringify(conns.map((c) => ({ localPort: c.r.localPort, backend: c.r.backend })))}`);
  for await (const line of createInterface({ input: process.stdin })) {
    if (line === 'progress') console.log(`progress ${JSON.stringify(conns.map((c) => (c.r.error ? -1 : c.r.received)))}`);
    if (line === 'stop') break;
  }
  clearInterval(ticker);
  await Promise.all(conns.map((c) => c.stop()));
  console.log(`result ${JSON.stringify(conns.map((c) => c.r))}`);
  process.exit(0);
}

/** One probe connection: `at` is when it was opened (wall clock, ms), `ms` how long it took. */
export interface ProbeResult { backend: string; ok: boolean; error: string; at: number; ms: number }

async function probe(host: string, port: number, ms: number, everyMs: number): Promise<void> {
  const one = (i: number) => new Promise<ProbeResult>((resolve) => {
    const at = Date.now();
    const s = createConnection({ host, port });
    let buf = Buffer.alloc(0);
    const done = (ok: boolean, error: string) => { clearTimeout(t); s.destroy(); resolve({ backend: buf.toString('latin1').split('\n')[0] ?? '', ok, error, at, ms: Date.now() - at }); };
    const t = setTimeout(() => done(false, 'timeout'), 10_000);
    const want = chunk(i, 0);
    s.once('connect', () => s.write(want));
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      const nl = buf.indexOf(10);
      if (nl >= 0 && buf.length >= nl + 1 + CHUNK) done(buf.subarray(nl + 1, nl + 1 + CHUNK).equals(want), '');
    });
    s.on('error', (e) => done(false, e.message));
  });
  const pending: Array<Promise<ProbeResult>> = [];
  const end = Date.now() + ms;
  for (let i = 0; Date.now() < end && i < 10_000; i++) {
    pending.push(one(i));
    await new Promise((r) => setTimeout(r, everyMs));
  }
  console.log(`result ${JSON.stringify(await Promise.all(pending))}`);
  process.exit(0);
}

const [mode, ...args] = process.argv.slice(2);
if (mode === 'serve') serve(args[0]!, Number(args[1]));
else if (mode === 'hold') void hold(args[0]!, Number(args[1]), Number(args[2]), Number(args[3]));
else if (mode === 'probe') void probe(args[0]!, Number(args[1]), Number(args[2]), Number(args[3]));
else { console.error('usage: echo-stream serve NAME PORT | hold HOST PORT COUNT INTERVAL_MS | probe HOST PORT MS EVERY_MS'); process.exit(2); }
