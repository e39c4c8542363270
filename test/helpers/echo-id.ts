/**
 * Tiny traffic endpoints for the agent's kernel tests, run inside a netns. Bounded in count and time.
 *   server ID PORT          answers every TCP chunk with "ID\n" (exits after 10 minutes at most)
 *   ask HOST PORT N         N fresh TCP connections in turn; prints {"ids":[...]}
 *   hold HOST PORT N        N connections kept open; prints {"ids":[...]} now and after each stdin
 *                           line "again"; "quit" (or 120 s) ends
 */
import { connect, createServer, type Socket } from 'node:net';
import { createInterface } from 'node:readline';

const [mode, a1 = '', a2 = '', a3 = ''] = process.argv.slice(2);
const TIMEOUT_MS = 3000;

function open(host: string, port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host, port });
    const t = setTimeout(() => { s.destroy(); reject(new Error('connect timeout')); }, TIMEOUT_MS);
    s.once('connect', () => { clearTimeout(t); resolve(s); });
    s.once('error', (e) => { clearTimeout(t); reject(e); });
  });
}

function ask(s: Socket): Promise<string> {
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve('error:timeout'), TIMEOUT_MS);
    s.once('data', (d) => { clearTimeout(t); resolve(d.toString().trim()); });
    s.once('error', (e) => { clearTimeout(t); resolve(`error:${e.message}`); });
    s.write('hi\n');
  });
}

async function main(): Promise<void> {
  if (mode === 'server') {
    createServer((c) => { c.on('data', () => c.write(`${a1}\n`)); c.on('error', () => undefined); }).listen(Number(a2), () => console.log('listening'));
    setTimeout(() => process.exit(0), 600_000).unref();
    return;
  }
  const host = a1, port = Number(a2), n = Math.min(Number(a3), 200);
  if (mode === 'ask') {
    const ids: string[] = [];
    for (let i = 0; i < n; i++) {
      try {
        const s = await open(host, port);
        ids.push(await ask(s));
        s.destroy();
      } catch (e) {
        ids.push(`error:${(e as Error).message}`);
      }
    }
    console.log(JSON.stringify({ ids }));
    return;
  }
  if (mode === 'hold') {
    const socks: Socket[] = [];
    for (let i = 0; i < n; i++) socks.push(await open(host, port));
    const round = async () => console.log(JSON.stringify({ ids: await Promise.all(socks.map(ask)) }));
    await round();
    const stop = setTimeout(() => process.exit(2), 120_000);
    for await (const line of createInterface({ input: process.stdin })) {
      if (line.trim() !== 'again') break;
      await round();
    }
    clearTimeout(stop);
    for (const s of socks) s.destroy();
    process.exit(0);
  }
  throw new Error(`unknown mode ${mode}`);
}

main().catch((e) => { console.error(e); process.exit(1); });
