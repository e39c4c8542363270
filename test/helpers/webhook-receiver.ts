import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A webhook receiver to run inside a network namespace (an agent there reaches only the netns's
 * own loopback): `node webhook-receiver.js` listens on 127.0.0.1, prints {"port"} once, then one
 * JSON line per request ({path, headers, body}). Requests to /hang are never answered (a stuck
 * receiver); every other path gets 200.
 */
const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    process.stdout.write(`${JSON.stringify({ path: req.url, headers: req.headers, body: Buffer.concat(chunks).toString('utf8') })}\n`);
    if (req.url !== '/hang') res.end('ok');
  });
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: (server.address() as AddressInfo).port })}\n`);
});
