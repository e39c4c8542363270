import { connect } from 'node:net';
import { FulcrumError } from '../errors.js';

/**
 * BIRD 2's control socket (the protocol birdc speaks): one command per line; every reply line is
 * "NNNN-text" (more follows), "NNNN text" (the last) or " text" (same code as the line before).
 * Codes 0xxx: done, 1xxx/2xxx: table rows and headers, 8xxx: runtime error, 9xxx: parse error.
 * No shell, no birdc binary: the socket path is the only input.
 */

export interface BirdReply {
  code: number;
  lines: Array<{ code: number; text: string }>;
}

export interface BirdProtocol {
  name: string;
  proto: string;
  table: string;
  state: string;
  since: string;
  info: string;
}

export interface BirdBfdSession {
  address: string;
  interface: string;
  state: string;
  since: string;
}

/** What the BGP controller needs of the speaker (tests pass a fake). */
export interface BirdControl {
  readonly socketPath: string;
  /** `configure check`: throws BIRD_CONFIG with BIRD's message when the config (with the include) is refused. */
  configureCheck(): Promise<string>;
  /** `configure`: applies the config without restarting BIRD (sessions whose settings did not change stay up). */
  configure(): Promise<string>;
  showProtocols(): Promise<BirdProtocol[]>;
  /** Prefixes a protocol exports now (`show route export P`); none while its channel is down. */
  showRouteExport(protocol: string): Promise<string[]>;
  showBfdSessions(): Promise<BirdBfdSession[]>;
}

export class BirdSocketClient implements BirdControl {
  constructor(readonly socketPath: string, private readonly timeoutMs = 5000) {}

  /** Sends one command on a fresh connection and collects its reply. */
  command(cmd: string): Promise<BirdReply> {
    if (/[\r\n]/.test(cmd)) return Promise.reject(new TypeError('a BIRD command is one line'));
    return new Promise((resolve, reject) => {
      const sock = connect(this.socketPath);
      let buf = '';
      let greeted = false;
      let lastCode = 0;
      const lines: BirdReply['lines'] = [];
      const fail = (e: Error) => { clearTimeout(timer); sock.destroy(); reject(e); };
      const timer = setTimeout(() => fail(new FulcrumError('SPEAKER_ERROR', `BIRD at ${this.socketPath}: no reply to "${cmd}" within ${this.timeoutMs} ms`)), this.timeoutMs);
      sock.on('error', (e: NodeJS.ErrnoException) => fail(new FulcrumError('SPEAKER_ERROR', `BIRD control socket ${this.socketPath}: ${e.code ?? e.message}`, { cause: e })));
      sock.on('data', (chunk: Buffer) => {
        buf += chunk.toString('utf8');
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          const m = /^(\d{4})([ -])(.*)$/.exec(line);
          if (!greeted) {
            greeted = true;
            if (!m || m[1] !== '0001') return fail(new FulcrumError('SPEAKER_ERROR', `${this.socketPath} is not a BIRD control socket (greeting ${JSON.stringify(line)})`));
            sock.write(`${cmd}\n`);
            continue;
          }
          if (m) {
            lastCode = Number(m[1]);
            lines.push({ code: lastCode, text: m[3]! });
            if (m[2] === ' ') {
              clearTimeout(timer);
              sock.end();
              return resolve({ code: lastCode, lines });
            }
          } else lines.push({ code: lastCode, text: line.startsWith(' ') ? line.slice(1) : line });
        }
      });
      sock.on('close', () => fail(new FulcrumError('SPEAKER_ERROR', `BIRD at ${this.socketPath} closed the connection during "${cmd}"`)));
    });
  }

  private async ok(cmd: string): Promise<BirdReply> {
    const r = await this.command(cmd);
    if (r.code >= 8000) throw new FulcrumError('SPEAKER_ERROR', `BIRD refused "${cmd}": ${r.lines.map((l) => l.text).join('; ')}`);
    return r;
  }

  async configureCheck(): Promise<string> {
    return textOf(await this.ok('configure check'));
  }

  async configure(): Promise<string> {
    return textOf(await this.ok('configure'));
  }

  async showProtocols(): Promise<BirdProtocol[]> {
    return parseProtocols(await this.ok('show protocols'));
  }

  async showRouteExport(protocol: string): Promise<string[]> {
    if (!/^[A-Za-z][A-Za-z0-9_]*$/.test(protocol)) throw new TypeError(`not a BIRD protocol name: ${protocol}`);
    const r = await this.command(`show route export ${protocol}`);
    if (r.code === 9001 && r.lines.some((l) => /No valid tables/.test(l.text))) return [];
    if (r.code >= 8000) throw new FulcrumError('SPEAKER_ERROR', `BIRD: show route export ${protocol}: ${textOf(r)}`);
    return parseRoutes(r);
  }

  async showBfdSessions(): Promise<BirdBfdSession[]> {
    const r = await this.command('show bfd sessions');
    if (r.code >= 8000) return []; // no BFD protocol configured
    return parseBfd(r);
  }
}

function textOf(r: BirdReply): string {
  return r.lines.map((l) => l.text).filter((t) => t.trim() !== '').join('\n');
}

/** Rows of `show protocols` (code 1002 and its continuation lines). */
export function parseProtocols(r: BirdReply): BirdProtocol[] {
  const out: BirdProtocol[] = [];
  for (const l of r.lines) {
    if (l.code !== 1002) continue;
    const t = l.text.trim().split(/\s+/);
    if (t.length < 5) continue;
    const [name, proto, table, state] = t as [string, string, string, string];
    let i = 4;
    let since = t[i++]!;
    if (/^\d{4}-\d\d-\d\d$/.test(since) && t[i] !== undefined) since += ` ${t[i++]}`;
    out.push({ name, proto, table, state, since, info: t.slice(i).join(' ') });
  }
  return out;
}

/** The prefixes of a `show route` reply (code 1007 rows; "Table X:" headers skipped). */
export function parseRoutes(r: BirdReply): string[] {
  const out: string[] = [];
  for (const l of r.lines) {
    if (l.code !== 1007) continue;
    const first = l.text.trim().split(/\s+/)[0] ?? '';
    if (first.includes('/') && !out.includes(first)) out.push(first);
  }
  return out;
}

/** Rows of `show bfd sessions` (code 1020, after its header). */
export function parseBfd(r: BirdReply): BirdBfdSession[] {
  const out: BirdBfdSession[] = [];
  for (const l of r.lines) {
    if (l.code !== 1020) continue;
    const t = l.text.trim().split(/\s+/);
    if (t.length < 4 || t[0] === 'IP' || t[0]!.endsWith(':')) continue;
    out.push({ address: t[0]!, interface: t[1]!, state: t[2]!, since: t[3]! });
  }
  return out;
}
