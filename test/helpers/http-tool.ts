import { createServer, request } from 'node:http';

/**
 * A tiny HTTP peer for the VM tier, run as a child process inside a netns:
 *   serve NAME PORT          answers every request with NAME; GET /stream?s=SECONDS sends a chunk
 *                            every 100 ms for SECONDS (a long-lived transfer)
 *   get URL COUNT            COUNT sequential requests, each on a new connection; prints a JSON
 *                            array of the answers (or "error: ..."); bounded by a 5 s timeout each
 *   stream URL               one long transfer; prints JSON {name, chunks, bytes, ok, error}
 * Reaches only the address it is given (inside netns the test made).
 */
const [mode, a, b] = process.argv.slice(2);

function get(url: string): Promise<string> {
  return new Promise((resolve) => {
    const req = request(url, { agent: false, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve(body));
      res.on('error', (e) => resolve(`error: ${e.message}`));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e) => resolve(`error: ${e.message}`));
    req.end();
  });
}

if (mode === 'serve') {
  const name = a ?? 'unnamed';
  const server = createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://x');
    if (u.pathname === '/stream') {
      const seconds = Math.min(Number(u.searchParams.get('s') ?? '5'), 120);
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write(`${name}\n`);
      let n = 0;
      const t = setInterval(() => {
        n += 1;
        res.write(`chunk ${n} ${'x'.repeat(1000)}\n`);
        if (n >= seconds * 10) { clearInterval(t); res.end('end\n'); }
      }, 100);
      req.on('close', () => clearInterval(t));
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain', connection: 'close' });
    res.end(name);
  });
  server.listen(Number(b ?? 80), '::', () => process.stdout.write('listening\n'));
} else if (mode === 'get') {
  const out: string[] = [];
  const count = Math.min(Number(b ?? 1), 1000);
  for (let i = 0; i < count; i++) out.push(await get(a!));
  process.stdout.write(JSON.stringify(out) + '\n');
} else if (mode === 'stream') {
  const result = { name: '', chunks: 0, bytes: 0, ok: false, error: '' };
  await new Promise<void>((resolve) => {
    const req = request(a!, { agent: false }, (res) => {
      let buf = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        result.bytes += c.length;
        buf += c;
        const lines = buf.split('\n');
        buf = lines.pop() ?? '';
        for (const l of lines) {
          if (!result.name) result.name = l;
          else if (l.startsWith('chunk')) result.chunks += 1;
          else if (l === 'end') result.ok = true;
        }
        if (result.chunks === 1) process.stderr.write('streaming\n');
      });
      res.on('end', () => resolve());
      res.on('error', (e) => { result.error = e.message; resolve(); });
    });
    req.setTimeout(10_000, () => req.destroy(new Error('stalled for 10 s')));
    req.on('error', (e) => { result.error = e.message; resolve(); });
    req.end();
  });
  process.stdout.write(JSON.stringify(result) + '\n');
} else {
  process.stderr.write('usage: http-tool serve NAME PORT | get URL COUNT | stream URL\n');
  process.exitCode = 2;
}
