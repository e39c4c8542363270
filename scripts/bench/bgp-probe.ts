/**
 * The client of bgp-outage.ts, run inside the client netns: N TCP connections to HOST:PORT, each
 * asking every 10 ms (one question in flight per connection, no timeout: TCP retransmits), for
 * SECONDS; prints {"gaps":[...]} with each connection's largest gap between two replies in ms
 * (or -1 for a connection that was reset or never connected).
 */
import { connect, type Socket } from 'node:net';

const [host = '', portText = '', nText = '', secondsText = ''] = process.argv.slice(2);
const port = Number(portText), n = Math.min(Number(nText), 256), seconds = Math.min(Number(secondsText), 120);

function probe(): Promise<number> {
  return new Promise((resolve) => {
    const s: Socket = connect({ host, port });
    let last = 0, gap = 0, done = false;
    const end = setTimeout(() => { done = true; s.destroy(); resolve(gap); }, seconds * 1000);
    s.on('connect', () => { last = performance.now(); s.write('hi\n'); });
    s.on('data', () => {
      const now = performance.now();
      gap = Math.max(gap, now - last);
      last = now;
      if (!done) setTimeout(() => s.write('hi\n'), 10);
    });
    s.on('error', () => { if (!done) { done = true; clearTimeout(end); resolve(-1); } });
  });
}

void Promise.all(Array.from({ length: n }, probe)).then((gaps) => console.log(JSON.stringify({ gaps: gaps.map((g) => Math.round(g)) })));
