/**
 * Traffic endpoints for the health end-to-end tests, run inside a netns. Bounded in time and count.
 *   server ID PORT                 HTTP server answering every request with "ID" (until killed; 10 min max)
 *   client HOST PORT MS EVERY      one HTTP GET on a fresh connection every EVERY ms for MS ms (at most
 *                                  3,000 requests); prints one JSON line per request: {"t":epoch ms,"id":"b1"} or {"t":..,"error":"ECONNREFUSED"}
 *   hold HOST PORT N               N keep-alive connections, one request each; prints {"ids":[...]}; then on
 *                                  each stdin line "again" one more request on each same connection; "quit" ends (2 min max)
 */
import { createServer, request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { createInterface } from 'node:readline';

const [mode, a1 = '', a2 = '', a3 = '', a4 = ''] = process.argv.slice(2);

if (mode === 'server') {
  const id = a1;
  const server = createServer((_req, res) => { res.end(id); });
  server.keepAliveTimeout = 120_000; // held client connections stay open between rounds
  server.listen(Number(a2), '0.0.0.0', () => console.log('listening'));
  setTimeout(() => process.exit(0), 600_000).unref();
} else if (mode === 'client') {
  const host = a1, port = Number(a2), duration = Math.min(Number(a3), 300_000), every = Math.max(Number(a4), 10);
  const end = Date.now() + duration;
  let sent = 0;
  const one = () => {
    if (Date.now() >= end || sent >= 3000) { setTimeout(() => process.exit(0), 1500); return; }
    sent++;
    const t = Date.now();
    const req = request({ host, port, path: '/', agent: false, timeout: 1000 }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => { body += c.toString(); });
      res.on('end', () => console.log(JSON.stringify({ t, id: body.trim() })));
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })));
    req.on('error', (e: NodeJS.ErrnoException) => console.log(JSON.stringify({ t, error: e.code ?? e.message })));
    req.end();
    setTimeout(one, every);
  };
  one();
} else if (mode === 'hold') {
  const host = a1, port = Number(a2), n = Math.min(Number(a3), 64);
  /** One request on a kept-alive connection; the body (Content-Length framed) is the server's id. */
  const ask = (s: Socket) => new Promise<string>((resolve) => {
    let buf = '';
    const t = setTimeout(() => { cleanup(); resolve('error:timeout'); }, 2000);
    const onData = (d: Buffer) => {
      buf += d.toString('latin1');
      const head = buf.indexOf('\r\n\r\n');
      const len = /content-length: (\d+)/i.exec(buf);
      if (head >= 0 && len && buf.length >= head + 4 + Number(len[1])) { cleanup(); resolve(buf.slice(head + 4, head + 4 + Number(len[1]))); }
    };
    const onEnd = () => { cleanup(); resolve('error:closed'); };
    const onError = (e: NodeJS.ErrnoException) => { cleanup(); resolve(`error:${e.code ?? e.message}`); };
    const cleanup = () => { clearTimeout(t); s.off('data', onData); s.off('end', onEnd); s.off('error', onError); };
    s.on('data', onData); s.once('end', onEnd); s.once('error', onError);
    s.write(`GET / HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
  });
  const socks: Socket[] = [];
  const round = async () => console.log(JSON.stringify({ ids: await Promise.all(socks.map(ask)) }));
  void (async () => {
    for (let i = 0; i < n; i++) {
      const s = connect({ host, port });
      s.on('error', () => undefined);
      await new Promise<void>((r) => { s.once('connect', () => r()); s.once('error', () => r()); });
      socks.push(s);
    }
    await round();
    const stop = setTimeout(() => process.exit(2), 120_000);
    for await (const line of createInterface({ input: process.stdin })) {
      if (line.trim() !== 'again') break;
      await round();
    }
    clearTimeout(stop);
    process.exit(0);
  })();
} else {
  console.error(`unknown mode ${mode}`);
  process.exit(2);
}
