// A real etcd on loopback for the cluster tier and the bench: own data dir under /tmp, random
// free ports, stopped and removed by close(). restart() keeps the data dir and ports.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function etcdMissing(): string | undefined {
  const r = spawnSync('etcd', ['--version'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) return 'etcd is not installed (Debian etcd-server; scripts/setup.sh installs it)';
  return undefined;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** PEM files for a TLS etcd: server cert and key, the CA that signed them and the client's. */
export interface EtcdTlsFiles { ca: string; cert: string; key: string; clientCert: string; clientKey: string }

export class EtcdProcess {
  private child: ChildProcess | undefined;
  private log = '';
  private constructor(
    readonly dataDir: string, readonly clientPort: number, readonly peerPort: number, readonly tls: EtcdTlsFiles | undefined,
    readonly hosts: readonly string[],
  ) {}

  get url(): string {
    return this.urlOn('127.0.0.1');
  }

  /** The client URL on one of the addresses it listens on (127.0.0.1, or one of `hosts`). */
  urlOn(host: string): string {
    return `${this.tls ? 'https' : 'http'}://${host}:${this.clientPort}`;
  }

  /**
   * With tls: https only, and client certificates required (--client-cert-auth). hosts: addresses
   * it listens on besides 127.0.0.1 (they must exist; e.g. the host end of a link to a netns).
   */
  static async start(options: { tls?: EtcdTlsFiles; hosts?: string[] } = {}): Promise<EtcdProcess> {
    const dir = mkdtempSync(join(tmpdir(), 'fulcrum-etcd-'));
    const e = new EtcdProcess(dir, await freePort(), await freePort(), options.tls, options.hosts ?? []);
    await e.run();
    return e;
  }

  /** etcdctl arguments that reach this etcd. */
  ctlArgs(): string[] {
    const t = this.tls;
    return ['--endpoints', this.url, ...(t ? ['--cacert', t.ca, '--cert', t.clientCert, '--key', t.clientKey] : [])];
  }

  get running(): boolean {
    return this.child !== undefined;
  }

  private async run(): Promise<void> {
    const peer = `http://127.0.0.1:${this.peerPort}`;
    this.log = '';
    const child = spawn('etcd', [
      '--name', 'fl', '--data-dir', join(this.dataDir, 'data'),
      '--listen-client-urls', [this.url, ...this.hosts.map((h) => this.urlOn(h))].join(','), '--advertise-client-urls', this.url,
      '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer, '--initial-cluster', `fl=${peer}`,
      '--log-level', 'error', '--logger', 'zap',
      ...(this.tls ? ['--cert-file', this.tls.cert, '--key-file', this.tls.key, '--trusted-ca-file', this.tls.ca, '--client-cert-auth'] : []),
    ], { stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (c: string) => { this.log = (this.log + c).slice(-4000); });
    this.child = child;
    const exited = new Promise<never>((_, reject) => child.once('exit', (code) => reject(new Error(`etcd exited (${code}) at start: ${this.log}`))));
    exited.catch(() => undefined); // a later crash shows as unreachability, not as an unhandled rejection
    const deadline = Date.now() + 15_000;
    for (;;) {
      const ok = await Promise.race([this.healthy(), exited]);
      if (ok) return;
      if (Date.now() > deadline) throw new Error(`etcd did not become healthy in 15 s: ${this.log}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  private async healthy(): Promise<boolean> {
    const t = this.tls;
    if (!t) {
      try {
        const r = await fetch(`${this.url}/health`, { signal: AbortSignal.timeout(1000) });
        return r.ok && ((await r.json()) as { health?: string }).health === 'true';
      } catch {
        return false;
      }
    }
    return new Promise((resolve) => {
      const req = https.get(`${this.url}/health`, { ca: readFileSync(t.ca), cert: readFileSync(t.clientCert), key: readFileSync(t.clientKey), timeout: 1000 }, (res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve(res.statusCode === 200 && body.includes('"health":"true"')));
      });
      req.on('error', () => resolve(false));
      req.on('timeout', () => { req.destroy(); resolve(false); });
    });
  }

  /** SIGTERM and wait; SIGKILL after 10 s. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.child = undefined;
    child.removeAllListeners('exit');
    if (child.exitCode !== null || child.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
      child.once('exit', () => { clearTimeout(t); resolve(); });
      child.kill('SIGTERM');
    });
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.run();
  }

  async close(): Promise<void> {
    await this.stop();
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}

/**
 * A throw-away CA, a server certificate for 127.0.0.1 and a client certificate (openssl). The
 * client certificate has no CommonName: with auth enabled, etcd's JSON gateway refuses one that
 * has (its CN would otherwise stand for the user; etcd issue 8262).
 */
export function makeEtcdTls(dir: string): EtcdTlsFiles {
  const f = (n: string) => join(dir, n);
  const run = (...args: string[]) => {
    const r = spawnSync('openssl', args, { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`openssl ${args[0]}: ${r.stderr}`);
  };
  run('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', '/CN=fulcrum test etcd CA', '-keyout', f('ca.key'), '-out', f('ca.pem'));
  for (const [name, cn, ext] of [['server', '127.0.0.1', 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth'], ['client', '', 'extendedKeyUsage=clientAuth']] as const) {
    run('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', cn ? `/CN=${cn}` : '/O=fulcrum test client', '-keyout', f(`${name}.key`), '-out', f(`${name}.csr`));
    writeFileSync(f(`${name}.ext`), ext + '\n');
    run('x509', '-req', '-in', f(`${name}.csr`), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-days', '2', '-extfile', f(`${name}.ext`), '-out', f(`${name}.pem`));
  }
  return { ca: f('ca.pem'), cert: f('server.pem'), key: f('server.key'), clientCert: f('client.pem'), clientKey: f('client.key') };
}

/**
 * Polls `fn` every 100 ms until it returns a value (not undefined) and returns it; throws after
 * `ms` naming `what` and the last error `fn` threw.
 */
export async function until<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
