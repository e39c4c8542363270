/**
 * Traffic endpoints for the health end-to-end tests, run inside a netns. Bounded in time and count.
 *   server ID PORT                 HTTP server answering every request with "ID" (until killed; 10 min max)
 *   client HOST PORT MS EVERY      one HTTP GET on a fresh connection every EVERY ms for MS ms (at most
 *                                  3,000 requests); prints one JSON line per request: {"t":epoch ms,"id":"b1"} or {"t":..,"error":"ECONNREFUSED"}
 */
import { createServer, request } from 'node:http';

const [mode, a1 = '', a2 = '', a3 = '', a4 = ''] = process.argv.slice(2);

if (mode === 'server') {
  const id = a1;
  createServer((_req, res) => { res.setHeader('connection', 'close'); res.end(id); }).listen(Number(a2), '0.0.0.0', () => console.log('listening'));
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
} else {
  console.error(`unknown mode ${mode}`);
  process.exit(2);
}
