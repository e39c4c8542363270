/**
 * Real TCP flows with chosen source addresses and ports, for the explain tests; run inside the
 * client netns as `node flow-probe.js HOST PORT SOURCES FIRST_PORT COUNT [hold]`:
 * flow i comes from SOURCES[i % n] (comma-separated addresses, "-" for the default) port
 * FIRST_PORT + i, sends one line and reads the backend's id (the echo servers of xdp-traffic.ts).
 * Prints {"flows":[{"src","sport","id"}]}. With `hold` the connections stay open until a line
 * (or EOF) on stdin, then the answers are asked again on the same connections and printed.
 * Bounded: at most 500 flows, 3 s per step, 120 s held.
 */
import { connect, type Socket } from 'node:net';
import { createInterface } from 'node:readline';

const [host = '', portText = '', sourcesText = '-', firstText = '', countText = '', mode = ''] = process.argv.slice(2);
const TIMEOUT = 3000;
const sources = sourcesText === '-' ? [undefined] : sourcesText.split(',');
const count = Math.min(Number(countText), 500);

interface Flow { src: string; sport: number; id: string; sock?: Socket | undefined }

function ask(sock: Socket): Promise<string> {
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve('error:reply timeout'), TIMEOUT);
    sock.once('data', (d) => { clearTimeout(t); resolve(d.toString().trim()); });
    sock.once('error', (e) => { clearTimeout(t); resolve(`error:${e.message}`); });
    sock.write('hi\n');
  });
}

function open(localAddress: string | undefined, localPort: number): Promise<Socket | string> {
  return new Promise((resolve) => {
    const s = connect({ host, port: Number(portText), localPort, ...(localAddress ? { localAddress } : {}) });
    const t = setTimeout(() => { s.destroy(); resolve('error:connect timeout'); }, TIMEOUT);
    s.once('connect', () => { clearTimeout(t); resolve(s); });
    s.once('error', (e) => { clearTimeout(t); resolve(`error:${e.message}`); });
  });
}

async function one(i: number): Promise<Flow> {
  const src = sources[i % sources.length];
  const sport = Number(firstText) + i;
  const s = await open(src, sport);
  if (typeof s === 'string') return { src: src ?? '', sport, id: s };
  const id = await ask(s);
  if (mode !== 'hold') s.destroy();
  return { src: src ?? s.localAddress ?? '', sport, id, sock: mode === 'hold' ? s : undefined };
}

const flows: Flow[] = [];
for (let i = 0; i < count; i += 25) flows.push(...await Promise.all(Array.from({ length: Math.min(25, count - i) }, (_, j) => one(i + j))));
const show = () => console.log(JSON.stringify({ flows: flows.map(({ src, sport, id }) => ({ src, sport, id })) }));
show();
if (mode === 'hold') {
  const stop = setTimeout(() => process.exit(2), 120_000);
  const rl = createInterface({ input: process.stdin });
  await new Promise<void>((r) => { rl.once('line', () => r()); rl.once('close', () => r()); });
  for (const f of flows) if (f.sock) f.id = await ask(f.sock);
  show();
  clearTimeout(stop);
  for (const f of flows) f.sock?.destroy();
}
process.exit(0);
