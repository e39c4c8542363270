import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { ipvsSkipReason } from '../helpers/ipvs-vm.js';
import { keepalivedSkipReason, waitFor } from '../helpers/vrrp-peers.js';
import type { PairNode } from '../helpers/ipvs-pair.js';
import { IpvsSyncLab, type HeldStreams, type Keepalived } from '../helpers/ipvs-sync-lab.js';
import * as check from '../helpers/ipvs-sync-checks.js';
import type { HeldConnection } from '../helpers/echo-stream.js';

/**
 * Connection sync between keepalived and Fulcrum in one VRRP pair: keepalived 2.2 with
 * `lvs_sync_daemon` (and its own virtual_server, the same NAT service) on lb-a, a real
 * `fulcrum agent` with `ipvs.sync` of the same sync id on lb-b, both VIPs in one VRRP sync group.
 * keepalived's daemon follows VRRP (master daemon while MASTER, backup daemon while BACKUP);
 * Fulcrum runs both. 24 streaming connections open through keepalived, which crashes (links down,
 * every process killed): Fulcrum takes over and every connection goes on. Then the other way:
 * 24 new connections open through Fulcrum, keepalived comes back as a rebooted node (empty IPVS
 * table, backup), learns them from Fulcrum's master daemon, Fulcrum crashes, and they go on
 * through keepalived. The sync-off negative control is in ipvs-sync.test.ts.
 */

const skip = ipvsSkipReason() ?? keepalivedSkipReason() ?? (existsSync('/usr/bin/curl') ? undefined : 'needs curl');
const SYNC_ID = 17;
const CONNECTIONS = 24;
const BOTH = check.BOTH_VIPS;

let lab: IpvsSyncLab;
let ka: Keepalived | undefined;
let held: HeldStreams | undefined;
let firstPorts: number[] = [];
const A = () => lab.a, B = () => lab.b;

const failed = (rs: HeldConnection[]) => rs.filter((r) => !r.ok).map((r) => `${r.localPort}:${r.error}`);
const daemons = (n: PairNode) => lab.pair.ipvsadm(n, '-L', '--daemon');
const kaLog = () => (ka ? `\nkeepalived:\n${ka.log.slice(-4000)}` : '');

async function crashKeepalived(): Promise<void> {
  await lab.pair.setLinks(A(), false);
  await lab.killAll(A());
  ka = undefined;
}

async function stopAndCheck(): Promise<void> {
  const results = await held!.stop();
  held = undefined;
  assert.deepEqual(failed(results), [], 'no connection reset, stalled or corrupted');
  for (const r of results) assert.equal(r.received, r.sent, `${r.localPort}: every byte echoed once`);
}

before(async () => {
  if (skip) return;
  lab = await IpvsSyncLab.create();
  lab.configure(B(), { syncId: SYNC_ID, refreshPeriod: 5 });
  // keepalived first: nopreempt, so the node that is master when the other starts stays master.
  ka = lab.startKeepalived(A(), SYNC_ID);
  await check.expectHolders(lab, BOTH, [], 60_000).catch((e: Error) => { throw new Error(`${e.message}${kaLog()}`); });
  await lab.pair.startAgent(B());
});

after(async () => {
  if (skip) return;
  if (lab) await lab.killAll(A());
  await lab?.cleanup();
});

test('keepalived (MASTER) runs its master sync daemon with the sync id; the agent runs both; keepalived built the same service', { skip }, async () => {
  await waitFor('keepalived: master sync daemon', async () => /master sync daemon \(mcast=eth1, syncid=17/.test(await daemons(A())), 30_000, 500)
    .catch(async (e: Error) => { throw new Error(`${e.message}:\n${await daemons(A())}${kaLog()}`); });
  await waitFor('the agent: both sync daemons', async () => {
    const d = await daemons(B());
    return /master sync daemon \(mcast=eth1, syncid=17/.test(d) && /backup sync daemon \(mcast=eth1, syncid=17/.test(d);
  }, 60_000, 500).catch(async (e: Error) => { throw new Error(`${e.message}:\n${await daemons(B())}`); });
  const table = async (n: PairNode) => (await lab.pair.ipvsadm(n, '-Sn')).split('\n').filter(Boolean).sort().join('\n');
  await waitFor('the same IPVS service on both', async () => (await table(A())) === (await table(B())) && (await table(A())).includes('-a'), 30_000, 500)
    .catch(async (e: Error) => { throw new Error(`${e.message}:\nlb-a\n${await table(A())}\nlb-b\n${await table(B())}`); });
});

test(`keepalived -> Fulcrum: ${CONNECTIONS} connections through keepalived reach the agent's table and survive keepalived's crash`, { skip }, async () => {
  held = await lab.hold(CONNECTIONS, 250);
  firstPorts = held.opened.map((o) => o.localPort);
  assert.equal(new Set(held.opened.map((o) => o.backend)).size, 2, `rr spreads them: ${JSON.stringify(held.opened)}`);
  await check.expectTableHasHeld(lab, held, A(), 10_000);
  // lb-b never carried them: only keepalived's master daemon can have put them there.
  await check.expectTableHasHeld(lab, held, B(), 30_000);
  const before = await held.progress();
  await crashKeepalived();
  await check.expectTakenOver(lab, B(), 15_000);
  await check.expectAllAdvance(held, before, 30_000, 'every held connection to go on through the agent');
  await stopAndCheck();
});

test(`Fulcrum -> keepalived: ${CONNECTIONS} connections through the agent reach the rebooted keepalived's table and survive the agent's crash`, { skip }, async () => {
  held = await lab.hold(CONNECTIONS, 250);
  assert.deepEqual(held.opened.filter((o) => firstPorts.includes(o.localPort)), [], 'new 4-tuples (lb-a still has entries of the first ones)');
  await check.expectTableHasHeld(lab, held, B(), 10_000);
  // lb-a comes back as a rebooted node: no services, no daemons, links up, keepalived BACKUP.
  await A().ns.exec('ipvsadm', ['-C']);
  for (const s of ['master', 'backup']) await A().ns.exec('ipvsadm', ['--stop-daemon', s], { allowFail: true });
  await lab.pair.setLinks(A(), true);
  ka = lab.startKeepalived(A(), SYNC_ID);
  await waitFor('keepalived (BACKUP): backup sync daemon', async () => /backup sync daemon \(mcast=eth1, syncid=17/.test(await daemons(A())), 60_000, 500)
    .catch(async (e: Error) => { throw new Error(`${e.message}:\n${await daemons(A())}${kaLog()}`); });
  await check.expectHolders(lab, [], BOTH, 5_000);
  await check.expectTableHasHeld(lab, held, A(), 30_000).catch((e: Error) => { throw new Error(`${e.message}${kaLog()}`); });
  const before = await held.progress();
  await lab.pair.setLinks(B(), false);
  await B().agent!.kill9();
  B().agent = undefined;
  await check.expectTakenOver(lab, A(), 15_000).catch((e: Error) => { throw new Error(`${e.message}${kaLog()}`); });
  await check.expectAllAdvance(held, before, 30_000, 'every held connection to go on through keepalived');
  await stopAndCheck();
});
