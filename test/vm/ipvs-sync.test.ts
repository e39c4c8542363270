import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { ipvsSkipReason } from '../helpers/ipvs-vm.js';
import { waitFor } from '../helpers/vrrp-peers.js';
import type { PairNode } from '../helpers/ipvs-pair.js';
import * as check from '../helpers/ipvs-sync-checks.js';
import { DR_ECHO_PORT, IpvsSyncLab, SYNC_INTERFACE, type HeldStreams } from '../helpers/ipvs-sync-lab.js';
import type { HeldConnection } from '../helpers/echo-stream.js';

/**
 * Established connections survive an IPVS failover and the failback through the agent's
 * connection sync (`ipvs.sync`): two real `fulcrum agent` processes, one per LB netns, each with
 * a master and a backup sync daemon of one sync id. 24 client connections stream through the
 * VIP (NAT, the backends route via the gateway VIP) and every byte is echoed and checked; the
 * master crashes (links down, SIGKILL), the backup takes both VIPs and every connection goes on
 * to the same backend; the old master comes back, preempts, and they still go on. The same
 * crash without `ipvs.sync` loses them (the negative control). 24 more go through a DR service
 * (the backends answer the client directly, through the master as their gateway) the same way.
 *
 * A slow talker (one 64-byte segment every 30 s) goes through the same crash. The TCP timeout is
 * lowered to 40 s on both LBs (`ipvsadm --set`, what the agent never touches) so that an entry the
 * peers do not refresh expires within the test: with the agent's sync_threshold "3 0" every
 * segment after refreshPeriod resyncs it; with the kernel's "3 50" (refreshPeriod 0) it is synced
 * at its 3rd packet only and is gone from the backup's table 40 s later (its negative control;
 * a missing entry loses the connection, as the sync-off control shows).
 */

const skip = ipvsSkipReason() ?? (existsSync('/usr/bin/curl') ? undefined : 'needs curl (GET /v1/status inside the LB netns)');
const SYNC_ID = 17;
const REFRESH = 5;
const CONNECTIONS = 24;
const BOTH = check.BOTH_VIPS;
const TCP_TIMEOUT = 40;
const SLOW_MS = 30_000;

let lab: IpvsSyncLab;
let held: HeldStreams | undefined;
let dr: HeldStreams | undefined;
let slow: HeldStreams | undefined;
let slowOpenedAt = 0;
const A = () => lab.a, B = () => lab.b;

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
  for (const n of [A(), B()]) await n.ns.exec('ipvsadm', ['--set', String(TCP_TIMEOUT), '0', '0']);
  await Promise.all([lab.pair.startAgent(A()), lab.pair.startAgent(B())]);
});

const sysctl = async (n: PairNode, k: string) => (await n.ns.exec('sysctl', ['-n', `net.ipv4.vs.${k}`])).stdout.trim().split(/\s+/).join(' ');

/** Waits until the slow talker has been open for longer than the TCP timeout (plus the sync flush). */
async function pastTcpTimeout(): Promise<void> {
  const wait = slowOpenedAt + (TCP_TIMEOUT + 10) * 1000 - Date.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
}

async function openSlowTalker(): Promise<HeldStreams> {
  const s = await lab.hold(1, SLOW_MS);
  slowOpenedAt = Date.now();
  return s;
}

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
    assert.deepEqual(await Promise.all(['sync_version', 'sync_refresh_period', 'sync_retries', 'sync_threshold'].map((k) => sysctl(n, k))), ['1', String(REFRESH), '0', '3 0'], n.label);
  }
  const r = await lab.pair.cli(A(), ['status', '-o', 'json']);
  assert.equal(r.code, 0, r.stderr);
  const ipvs = (JSON.parse(r.stdout) as { dataplanes: Array<{ name: string; status?: { sync?: { daemons: Array<{ state: string; interface: string; syncId: number; owned: boolean }>; sysctls: Record<string, string> } } }> })
    .dataplanes.find((d) => d.name === 'ipvs');
  const sync = ipvs?.status?.sync;
  assert.deepEqual(sync?.daemons.map((d) => [d.state, d.interface, d.syncId, d.owned]).sort(), [['backup', SYNC_INTERFACE, SYNC_ID, true], ['master', SYNC_INTERFACE, SYNC_ID, true]], JSON.stringify(ipvs));
  assert.deepEqual(sync?.sysctls, { sync_version: '1', sync_refresh_period: String(REFRESH), sync_retries: '0', sync_threshold: '3 0' });
});

test(`${CONNECTIONS} NAT and ${CONNECTIONS} DR streaming connections through the VIP are in the backup's connection table`, { skip }, async () => {
  await check.expectHolders(lab, BOTH, [], 30_000);
  held = await lab.hold(CONNECTIONS, 250);
  dr = await lab.hold(CONNECTIONS, 250, DR_ECHO_PORT);
  assert.equal(new Set(dr.opened.map((o) => o.backend)).size, 2, `rr spreads them: ${JSON.stringify(dr.opened)}`);
  slow = await openSlowTalker();
  assert.equal(new Set(held.opened.map((o) => o.backend)).size, 2, `rr spreads them: ${JSON.stringify(held.opened)}`);
  await check.expectTableHasHeld(lab, held!, A(), 10_000);
  await check.expectTableHasHeld(lab, held!, B(), 20_000);
  await check.expectTableHasHeld(lab, slow, B(), 20_000);
  await check.expectTableHasHeld(lab, dr, A(), 10_000);
  await check.expectTableHasHeld(lab, dr, B(), 20_000);
});

test(`a slow talker (a segment every ${SLOW_MS / 1000} s) is still in the backup's table after the TCP timeout (${TCP_TIMEOUT} s): every segment resyncs it`, { skip }, async () => {
  await pastTcpTimeout();
  await check.expectTableHasHeld(lab, slow!, A(), 1_000);
  await check.expectTableHasHeld(lab, slow!, B(), 1_000);
});

test('the master crashes: the backup takes both VIPs, every connection goes on, new connections work', { skip }, async () => {
  const before = await held!.progress();
  const slowBefore = await slow!.progress();
  const drBefore = await dr!.progress();
  const probing = lab.probe(15_000, 500);
  await crash(A());
  await check.expectTakenOver(lab, B(), 15_000);
  await check.expectAllAdvance(held!, before, 30_000, 'every held connection to go on through lb-b');
  await check.expectTableHasHeld(lab, held!, B(), 5_000);
  await check.expectAllAdvance(dr!, drBefore, 30_000, 'every held DR connection to go on through lb-b');
  const probes = await probing;
  assert.deepEqual(probes.filter((p) => !p.ok), [], `new connections during the failover (${probes.length})`);
  assert.ok(probes.length >= 10, `${probes.length} probes`);
  await check.expectAllAdvance(slow!, slowBefore, SLOW_MS + 15_000, 'the slow talker to go on through lb-b');
  const slowResult = await slow!.stop();
  slow = undefined;
  assert.deepEqual(failed(slowResult), [], 'the slow talker');
  assert.equal(slowResult[0]!.received, slowResult[0]!.sent);
});

test('the old master comes back and preempts: the connections still go on; nothing lost or duplicated', { skip }, async () => {
  await lab.pair.setLinks(A(), true);
  await lab.pair.startAgent(A());
  // Its backup daemon learns the connections from lb-b's master daemon before it preempts.
  await check.expectHolders(lab, BOTH, [], 60_000);
  const before = await held!.progress();
  const drBefore = await dr!.progress();
  await check.expectAllAdvance(held!, before, 30_000, 'every held connection to go on through lb-a again');
  await check.expectAllAdvance(dr!, drBefore, 30_000, 'every held DR connection to go on through lb-a again');
  const results = [...await held!.stop(), ...await dr!.stop()];
  held = undefined;
  dr = undefined;
  assert.deepEqual(failed(results), [], 'no connection reset, stalled or corrupted');
  for (const r of results) {
    assert.equal(r.received, r.sent, `${r.localPort}: every byte echoed once`);
    assert.ok(r.sent > 64 * 40, `${r.localPort} streamed through both moves (${r.sent} bytes)`);
  }
});

test('negative control: with the kernel\'s sync_threshold "3 50" (refreshPeriod 0) the slow talker expires from the backup\'s table', { skip }, async () => {
  for (const n of [A(), B()]) await lab.putState(n, { syncId: SYNC_ID, refreshPeriod: 0 });
  for (const n of [A(), B()]) {
    await waitFor(`${n.label}: sync_threshold 3 50, no refresh`, async () => (await sysctl(n, 'sync_threshold')) === '3 50' && (await sysctl(n, 'sync_refresh_period')) === '0', 30_000, 500);
  }
  slow = await openSlowTalker();
  await check.expectTableHasHeld(lab, slow, A(), 10_000);
  await check.expectTableHasHeld(lab, slow, B(), 20_000);
  await pastTcpTimeout();
  await check.expectTableHasHeld(lab, slow, A(), 1_000);
  const onB = await lab.connections(B());
  assert.equal(onB.get(slow.opened[0]!.localPort), undefined, `lb-b no longer has it:\n${await lab.pair.ipvsadm(B(), '-Lnc')}`);
  const r = await slow.stop();
  slow = undefined;
  assert.deepEqual(failed(r), [], 'it lives on through lb-a');
});

test('negative control: the same crash without ipvs.sync loses the connections', { skip }, async () => {
  for (const n of [A(), B()]) await lab.putState(n, undefined);
  for (const n of [A(), B()]) {
    await waitFor(`${n.label}: its sync daemons stopped`, async () => !/sync daemon/.test(await lab.pair.ipvsadm(n, '-L', '--daemon')), 30_000, 500);
  }
  await check.expectHolders(lab, BOTH, [], 30_000);
  held = await lab.hold(CONNECTIONS, 250);
  dr = await lab.hold(CONNECTIONS, 250, DR_ECHO_PORT);
  await check.expectTableHasHeld(lab, held!, A(), 10_000);
  await check.expectTableHasHeld(lab, dr, A(), 10_000);
  const onB = await lab.connections(B());
  assert.deepEqual(held.opened.filter((o) => onB.has(o.localPort)), [], 'lb-b knows none of them');
  const drOnB = await lab.connections(B(), DR_ECHO_PORT);
  assert.deepEqual(dr.opened.filter((o) => drOnB.has(o.localPort)), [], 'lb-b knows none of the DR ones');
  await crash(A());
  await check.expectTakenOver(lab, B(), 15_000);
  // lb-b has no entry for them: their next segments reach its own TCP stack (the VIP is local), which resets them.
  await new Promise((r) => setTimeout(r, 5_000));
  const results = await held.stop();
  const drResults = await dr.stop();
  held = undefined;
  dr = undefined;
  assert.equal(failed(results).length, CONNECTIONS, `every connection lost: ${JSON.stringify(failed(results))}`);
  assert.equal(failed(drResults).length, CONNECTIONS, `every DR connection lost: ${JSON.stringify(failed(drResults))}`);
});
