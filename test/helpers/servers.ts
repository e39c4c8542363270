import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Real servers on loopback for health-check tests: each can be stopped and started again on the
 * same port, so a test sees a backend fall and rise.
 */
export interface RestartableServer {
  port: number;
  start(): Promise<void>;
  stop(): Promise<void>;
}

function trackSockets(server: NetServer): Set<Socket> {
  const sockets = new Set<Socket>();
  server.on('connection', (s: Socket) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  return sockets;
}

async function listenOn(server: NetServer, port: number, host = '127.0.0.1'): Promise<number> {
  await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(port, host, () => { server.off('error', reject); resolve(); }); });
  return (server.address() as { port: number }).port;
}

function restartable(make: () => NetServer): RestartableServer {
  let server: NetServer | undefined;
  let sockets = new Set<Socket>();
  const self: RestartableServer = {
    port: 0,
    async start() {
      server = make();
      sockets = trackSockets(server);
      self.port = await listenOn(server, self.port);
    },
    async stop() {
      const s = server;
      server = undefined;
      if (!s) return;
      for (const sock of sockets) sock.destroy();
      await new Promise<void>((r) => s.close(() => r()));
    },
  };
  return self;
}

export const tcpServer = () => restartable(() => createNetServer((s) => s.end()));

export function httpServer(handler: (req: IncomingMessage, res: ServerResponse) => void): RestartableServer {
  return restartable(() => createHttpServer(handler));
}

export function httpsServer(pki: Pki, handler: (req: IncomingMessage, res: ServerResponse) => void): RestartableServer {
  return restartable(() => createHttpsServer({ key: pki.serverKey, cert: pki.serverCert }, handler));
}

export function udpEchoServer(): RestartableServer {
  let sock: UdpSocket | undefined;
  const self: RestartableServer = {
    port: 0,
    async start() {
      sock = createSocket('udp4');
      sock.on('message', (msg, rinfo) => sock?.send(Buffer.concat([Buffer.from('echo:'), msg]), rinfo.port, rinfo.address));
      await new Promise<void>((r) => sock!.bind(self.port, '127.0.0.1', () => r()));
      self.port = sock.address().port;
    },
    async stop() {
      const s = sock; sock = undefined;
      if (s) await new Promise<void>((r) => s.close(() => r()));
    },
  };
  return self;
}

/** A free UDP port on loopback (bound, read, released). */
export async function freeUdpPort(): Promise<number> {
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  const port = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

export const DNSMASQ = '/usr/sbin/dnsmasq';

/** dnsmasq (Debian dnsmasq-base) answering A records on 127.0.0.1:port; nothing is forwarded. */
export function dnsmasqServer(records: Record<string, string>, port: number): RestartableServer & { process(): ChildProcess | undefined } {
  let child: ChildProcess | undefined;
  const self = {
    port,
    process: () => child,
    async start() {
      const args = ['--keep-in-foreground', '--conf-file=/dev/null', '--no-resolv', '--no-hosts', '--no-poll', '--bind-interfaces',
        '--listen-address=127.0.0.1', `--port=${port}`, '--pid-file=', '--log-facility=-',
        ...Object.entries(records).map(([name, addr]) => `--address=/${name}/${addr}`)];
      child = spawn(DNSMASQ, args, { stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      child.stderr!.on('data', (c: Buffer) => { err += c.toString(); });
      // Ready when it answers: probe the port until a reply comes (bounded).
      const probe = createSocket('udp4');
      try {
        for (let i = 0; i < 50; i++) {
          if (child.exitCode !== null) throw new Error(`dnsmasq exited ${child.exitCode}: ${err}`);
          const ok = await new Promise<boolean>((resolve) => {
            const t = setTimeout(() => resolve(false), 100);
            probe.once('message', () => { clearTimeout(t); resolve(true); });
            probe.send(Buffer.from('abcd01000001000000000000047465737400000f0001', 'hex'), port, '127.0.0.1');
          });
          if (ok) return;
        }
        throw new Error(`dnsmasq did not answer on ${port}: ${err}`);
      } finally { probe.close(); }
    },
    async stop() {
      const c = child; child = undefined;
      if (!c || c.exitCode !== null) return;
      await new Promise<void>((r) => { c.once('exit', () => r()); c.kill('SIGTERM'); });
    },
  };
  return self;
}

export interface Pki {
  dir: string;
  caFile: string;
  serverKey: Buffer;
  serverCert: Buffer;
  cleanup(): void;
}

/**
 * A throw-away CA and a server certificate for `name` and 127.0.0.1, made with the openssl CLI
 * (node:crypto cannot issue X.509 certificates).
 */
export function makePki(name: string): Pki {
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-pki-'));
  const p = (f: string) => join(dir, f);
  const ossl = (args: string[]) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  ossl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', p('ca.key'), '-out', p('ca.pem'), '-days', '2', '-subj', '/CN=Fulcrum test CA']);
  ossl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', p('server.key'), '-out', p('server.csr'), '-subj', `/CN=${name}`]);
  writeFileSync(p('ext.cnf'), `subjectAltName=DNS:${name},IP:127.0.0.1\nbasicConstraints=CA:FALSE\n`);
  ossl(['x509', '-req', '-in', p('server.csr'), '-CA', p('ca.pem'), '-CAkey', p('ca.key'), '-CAcreateserial', '-out', p('server.pem'), '-days', '2', '-extfile', p('ext.cnf')]);
  return {
    dir, caFile: p('ca.pem'), serverKey: readFileSync(p('server.key')), serverCert: readFileSync(p('server.pem')),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

export const haveOpenssl = () => existsSync('/usr/bin/openssl');
