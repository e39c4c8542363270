import { waitFor } from './vrrp-peers.js';
import { GATEWAY, VIP, type PairNode } from './ipvs-pair.js';
import type { HeldStreams, IpvsSyncLab } from './ipvs-sync-lab.js';

/** The waits the IPVS sync VM tests share: VIP holders, held connections going on, sync tables. */

const BOTH = [GATEWAY, VIP].sort();

/** Waits until `ip addr` shows both VIPs on `n` (a crashed node keeps its VIPs on its downed links). */
export async function expectTakenOver(lab: IpvsSyncLab, n: PairNode, timeoutMs: number): Promise<void> {
  let last: string[] = [];
  await waitFor(`${n.label} to hold both VIPs`, async () => {
    last = (await lab.pair.held(n)).sort();
    return JSON.stringify(last) === JSON.stringify(BOTH);
  }, timeoutMs, 200).catch((e: Error) => { throw new Error(`${e.message}; last seen ${JSON.stringify(last)}`); });
}

export async function expectHolders(lab: IpvsSyncLab, a: string[], b: string[], timeoutMs: number): Promise<void> {
  const want = JSON.stringify([a, b]);
  let last = '';
  await waitFor(`lb-a to hold [${a}] and lb-b [${b}]`, async () => {
    last = JSON.stringify([(await lab.pair.held(lab.a)).sort(), (await lab.pair.held(lab.b)).sort()]);
    return last === want;
  }, timeoutMs, 200).catch((e: Error) => { throw new Error(`${e.message}; last seen [lb-a, lb-b]: ${last}`); });
}

export const BOTH_VIPS = BOTH;

/** Waits until every held connection has echoed more than it had at `since` (it goes on). */
export async function expectAllAdvance(held: HeldStreams, since: number[], timeoutMs: number, what: string): Promise<number[]> {
  let now: number[] = [];
  await waitFor(what, async () => {
    now = await held.progress();
    return now.every((n, i) => n > since[i]!);
  }, timeoutMs, 1000).catch((e: Error) => { throw new Error(`${e.message}; before ${JSON.stringify(since)}, now ${JSON.stringify(now)}`); });
  return now;
}

const backendAddress = (name: string) => `10.82.0.${10 + Number(name.slice(1))}:`;

/** Waits until the node's IPVS table lists every held connection, established, on the backend it opened on. */
export async function expectTableHasHeld(lab: IpvsSyncLab, held: HeldStreams, n: PairNode, timeoutMs: number): Promise<void> {
  let missing: string[] = [];
  await waitFor(`${n.label}'s connection table to list the ${held.opened.length} connections`, async () => {
    const conns = await lab.connections(n, held.port);
    missing = held.opened
      .filter((o) => { const c = conns.get(o.localPort); return !(c?.state === 'ESTABLISHED' && c.real.startsWith(backendAddress(o.backend))); })
      .map((o) => `${o.localPort}->${o.backend}`);
    return missing.length === 0;
  }, timeoutMs, 500).catch(async (e: Error) => { throw new Error(`${e.message}; missing ${missing.join(' ')}\n${await lab.pair.ipvsadm(n, '-Lnc').catch(() => '')}`); });
}
