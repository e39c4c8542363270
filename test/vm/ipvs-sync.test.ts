import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { ipvsSkipReason } from '../helpers/ipvs-vm.js';
import { waitFor } from '../helpers/vrrp-peers.js';
import { GATEWAY, VIP, type PairNode } from '../helpers/ipvs-pair.js';
import { IpvsSyncLab, SYNC_INTERFACE, type HeldStreams } from '../helpers/ipvs-sync-lab.js';
import type { HeldConnection } from '../helpers/echo-stream.js';

/**
 * Established connections survive an IPVS failover and the failback through the agent's
 * connection sync (`ipvs.sync`): two real `fulcrum agent` processes, one per LB netns, each with
 * a master and a backup sync daemon of one sync id. 24 client connections stream through the
 * VIP (NAT, the backends route via the gateway VIP) and every byte is echoed and checked; the
 * master crashes (links down, SIGKILL), the backup takes both VIPs and every connection goes on
 * to the same backend; the old master comes back, preempts, and they still go on. The same
 * crash without `ipvs.sync` loses them (the negative control).
 */

const skip = ipvsSkipReason() ?? (existsSync('/usr/bin/curl') ? undefined : 'needs curl (GET /v1/status inside the LB netns)');
const SYNC_ID = 17;
const REFRESH = 5;
const CONNECTIONS = 24;
const BOTH = [GATEWAY, VIP].sort();

let lab: IpvsSyncLab;
let held: HeldStreams | undefined;
const A = () => lab.a, B = () => lab.b;

/** Waits until `ip addr` shows both VIPs on `n` (a crashed node keeps its VIPs on its downed links). */
async function expectTakenOver(n: PairNode, timeoutMs: number): Promise<void> {
  let last: string[] = [];
  await waitFor(`${n.label} to hold both VIPs`, async () => {
    last = (await lab.pair.held(n)).sort();
    return JSON.stringify(last) === JSON.stringify(BOTH);
  }, timeoutMs, 200).catch((e: Error) => { throw new Error(`${e.message}; last seen ${JSON.stringify(last)}`); });
}

async function expectHolders(a: string[], b: string[], timeoutMs: number): Promise<void> {
  const want = JSON.stringify([a, b]);
  let last = '';
  await waitFor(`lb-a to hold [${a}] and lb-b [${b}]`, async () => {
    last = JSON.stringify([(await lab.pair.held(A())).sort(), (await lab.pair.held(B())).sort()]);
    return last === want;
  }, timeoutMs, 200).catch((e: Error) => { throw new Error(`${e.message}; last seen [lb-a, lb-b]: ${last}`); });
}

/** Waits until every held connection has echoed more than it had at `since` (it goes on). */
async function expectAllAdvance(since: number[], timeoutMs: number, what: string): Promise<number[]> {
  let now: number[] = [];
  await waitFor(what, async () => {
    now = await held!.progress();
    return now.every((n, i) => n > since[i]!);
  }, timeoutMs, 1000).catch((e: Error) => { throw new Error(`${e.message}; before ${JSON.stringify(since)}, now ${JSON.stringify(now)}`); });
  return now;
}

/** Waits until the node's IPVS table lists every held connection, established, on the backend it opened on. */
async function expectTableHasHeld(n: PairNode, timeoutMs: number): Promise<void> {
  let missing: string[] = [];
  await waitFor(`${n.label}'s connection table to list the ${CONNECTIONS} connections`, async () => {
    const conns = await lab.connections(n);
    missing = held!.opened
      .filter((o) => { const c = conns.get(o.localPort); return !(c?.state === 'ESTABLISHED' && c.real.startsWith(backendAddress(o.backend))); })
      .map((o) => `${o.localPort}->${o.backend}`);
    return missing.length === 0;
  }, timeoutMs, 500).catch(async (e: Error) => { throw new Error(`${e.message}; missing ${missing.join(' ')}\n${await lab.pair.ipvsadm(n, '-Lnc').catch(() => '')}`); });
}

const backendAddress = (name: string) => `10.82.0.${10 + Number(name.slice(1))}:`;

async function crash(n: PairNode): Promise<void> {
  await lab.pair.setLinks(n, false);
  await n.agent!.kill9();
  n.agent = undefined;
}

const failed = (rs: HeldConnection[]) => rs.filter((r) => !r.ok).map((r) => `${r.localPort}:${r.error}`);

before(async () => {
  if (skip) return;
  lab = await IpvsSyncLab.create();
  for (const n of [A(), B()]) lab.configure(n, { syncId: SYNC_ID, refreshPeriod: REFRESH });
  await Promise.all([lab.pair.startAgent(A()), lab.pair.startAgent(B())]);
});

after(async () => {
  if (skip) return;
  await lab?.cleanup();
});

test('each LB runs a master and a backup sync daemon with the configured sync id; the sysctls are set; status shows them', { skip }, async () => {
  for (const n of [A(), B()]) {
    await waitFor(`${n.label}: both sync daemons`, async () => {
      const d = await lab.pair.ipvsadm(n, '-L', '--daemon');
      return /master sync daemon \(mcast=eth1, syncid=17/.test(d) && /backup sync daemon \(mcast=eth1, syncid=17/.test(d);
    }, 60_000, 500).catch(async (e: Error) => { throw new Error(`${e.message}:\n${await lab.pair.ipvsadm(n, '-L', '--daemon')}`); });
    const sysctl = async (k: string) => (await n.ns.exec('sysctl', ['-n', `net.ipv4.vs.${k}`])).stdout.trim();
    assert.deepEqual([await sysctl('sync_version'), await sysctl('sync_refresh_period'), await sysctl('sync_retries')], ['1', String(REFRESH), '0'], n.label);
  }
  const r = await lab.pair.cli(A(), ['status', '-o', 'json']);
  assert.equal(r.code, 0, r.stderr);
  const ipvs = (JSON.parse(r.stdout) as { dataplanes: Array<{ name: string; status?: { sync?: { daemons: Array<{ state: string; interface: string; syncId: number; owned: boolean }>; sysctls: Record<string, string> } } }> })
    .dataplanes.find((d) => d.name === 'ipvs');
  const sync = ipvs?.status?.sync;
  assert.deepEqual(sync?.daemons.map((d) => [d.state, d.interface, d.syncId, d.owned]).sort(), [['backup', SYNC_INTERFACE, SYNC_ID, true], ['master', SYNC_INTERFACE, SYNC_ID, true]], JSON.stringify(ipvs));
  assert.deepEqual(sync?.sysctls, { sync_version: '1', sync_refresh_period: String(REFRESH), sync_retries: '0' });
});

test(`${CONNECTIONS} streaming connections through the VIP are in the backup's connection table`, { skip }, async () => {
  await expectHolders(BOTH, [], 30_000);
  held = await lab.hold(CONNECTIONS, 250);
  assert.equal(new Set(held.opened.map((o) => o.backend)).size, 2, `rr spreads them: ${JSON.stringify(held.opened)}`);
  await expectTableHasHeld(A(), 10_000);
  await expectTableHasHeld(B(), 20_000);
});

test('the master crashes: the backup takes both VIPs, every connection goes on, new connections work', { skip }, async () => {
  const before = await held!.progress();
  const probing = lab.probe(15_000, 500);
  await crash(A());
  await expectTakenOver(B(), 15_000);
  await expectAllAdvance(before, 30_000, 'every held connection to go on through lb-b');
  await expectTableHasHeld(B(), 5_000);
  const probes = await probing;
  assert.deepEqual(probes.filter((p) => !p.ok), [], `new connections during the failover (${probes.length})`);
  assert.ok(probes.length >= 10, `${probes.length} probes`);
});

test('the old master comes back and preempts: the connections still go on; nothing lost or duplicated', { skip }, async () => {
  await lab.pair.setLinks(A(), true);
  await lab.pair.startAgent(A());
  // Its backup daemon learns the connections from lb-b's master daemon before it preempts.
  await expectHolders(BOTH, [], 60_000);
  const before = await held!.progress();
  await expectAllAdvance(before, 30_000, 'every held connection to go on through lb-a again');
  const results = await held!.stop();
  held = undefined;
  assert.deepEqual(failed(results), [], 'no connection reset, stalled or corrupted');
  for (const r of results) {
    assert.equal(r.received, r.sent, `${r.localPort}: every byte echoed once`);
    assert.ok(r.sent > 64 * 40, `${r.localPort} streamed through both moves (${r.sent} bytes)`);
  }
});

test('negative control: the same crash without ipvs.sync loses the connections', { skip }, async () => {
  for (const n of [A(), B()]) await lab.putState(n, undefined);
  for (const n of [A(), B()]) {
    await waitFor(`${n.label}: its sync daemons stopped`, async () => !/sync daemon/.test(await lab.pair.ipvsadm(n, '-L', '--daemon')), 30_000, 500);
  }
  await expectHolders(BOTH, [], 30_000);
  held = await lab.hold(CONNECTIONS, 250);
  await expectTableHasHeld(A(), 10_000);
  const onB = await lab.connections(B());
  assert.deepEqual(held.opened.filter((o) => onB.has(o.localPort)), [], 'lb-b knows none of them');
  await crash(A());
  await expectTakenOver(B(), 15_000);
  // lb-b has no entry for them: their next segments reach its own TCP stack (the VIP is local), which resets them.
  await new Promise((r) => setTimeout(r, 5_000));
  const results = await held.stop();
  held = undefined;
  assert.equal(failed(results).length, CONNECTIONS, `every connection lost: ${JSON.stringify(failed(results))}`);
});
