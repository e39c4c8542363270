/**
 * Traffic endpoints for the XDP kernel tests (netns and agent), run as `ip netns exec NS node xdp-traffic.js MODE ...`.
 * Every mode is bounded in count and time.
 *   server ID tcp:P,udp:P,...      answer every TCP chunk / UDP datagram with "ID\n" (until killed)
 *   tcp HOST PORT N                N fresh TCP connections in turn; prints {"ids":[...]}
 *   udp HOST PORT N                N UDP sockets (N source ports), one datagram each; prints {"ids":[...]}
 *   hold HOST PORT N               N TCP connections kept open; prints {"ids":[...]}, then on each stdin
 *                                  line "again" asks on the same connections and prints {"ids":[...]};
 *                                  "quit" ends
 */
import { createServer, connect, type Socket } from 'node:net';
import { createSocket } from 'node:dgram';
import { createInterface } from 'node:readline';
import { isIPv6 } from 'node:net';

const [mode, a1 = '', a2 = '', a3 = ''] = process.argv.slice(2);
const TIMEOUT = 3000;

function ask(sock: Socket): Promise<string> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('tcp reply timeout')), TIMEOUT);
    sock.once('data', (d) => { clearTimeout(t); resolve(d.toString().trim()); });
    sock.once('error', (e) => { clearTimeout(t); reject(e); });
    sock.write('hi\n');
  });
}

function open(host: string, port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host, port });
    const t = setTimeout(() => { s.destroy(); reject(new Error(`connect ${host}:${port} timeout`)); }, TIMEOUT);
    s.once('connect', () => { clearTimeout(t); resolve(s); });
    s.once('error', (e) => { clearTimeout(t); reject(e); });
  });
}

async function udpAsk(host: string, port: number): Promise<string> {
  const s = createSocket(isIPv6(host) ? 'udp6' : 'udp4');
  try {
    for (let attempt = 0; attempt < 3; attempt++) {
      const reply = await new Promise<string | undefined>((resolve) => {
        const t = setTimeout(() => resolve(undefined), 1000);
        s.once('message', (m) => { clearTimeout(t); resolve(m.toString().trim()); });
        s.send('hi\n', port, host);
      });
      if (reply !== undefined) return reply;
    }
    return 'timeout';
  } finally {
    s.close();
  }
}

async function main(): Promise<void> {
  if (mode === 'server') {
    const id = a1;
    await Promise.all(a2.split(',').map((spec) => new Promise<void>((ready) => {
      const [proto, p] = spec.split(':');
      const port = Number(p);
      if (proto === 'tcp') {
        createServer((c) => { c.on('data', () => c.write(`${id}\n`)); c.on('error', () => undefined); }).listen({ port, host: '::', ipv6Only: false }, ready);
      } else {
        const s = createSocket({ type: 'udp6', ipv6Only: false });
        s.on('message', (_m, r) => s.send(`${id}\n`, r.port, r.address));
        s.bind(port, '::', ready);
      }
    })));
    console.log('listening');
    // Killed by the test; never outlives 10 minutes.
    setTimeout(() => process.exit(0), 600_000);
    return;
  }
  const host = a1, port = Number(a2), n = Math.min(Number(a3), 500);
  if (mode === 'tcp') {
    const ids: string[] = [];
    for (let i = 0; i < n; i++) {
      try {
        const s = await open(host, port);
        ids.push(await ask(s));
        s.destroy();
      } catch (e) { ids.push(`error:${(e as Error).message}`); }
    }
    console.log(JSON.stringify({ ids }));
  } else if (mode === 'udp') {
    const ids: string[] = [];
    for (let i = 0; i < n; i++) ids.push(await udpAsk(host, port));
    console.log(JSON.stringify({ ids }));
  } else if (mode === 'hold') {
    const socks: Socket[] = [];
    for (let i = 0; i < n; i++) socks.push(await open(host, port));
    const round = async () => {
      const ids: string[] = [];
      for (const s of socks) ids.push(await ask(s).catch((e: Error) => `error:${e.message}`));
      console.log(JSON.stringify({ ids }));
    };
    await round();
    const rl = createInterface({ input: process.stdin });
    const stop = setTimeout(() => process.exit(2), 120_000);
    for await (const line of rl) {
      if (line.trim() === 'again') await round();
      else break;
    }
    clearTimeout(stop);
    for (const s of socks) s.destroy();
    process.exit(0);
  } else {
    throw new Error(`unknown mode ${mode}`);
  }
}

main().catch((e) => { console.error(e); process.exit(1); });
