import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { spawn, type ChildProcess } from 'node:child_process';
import { waitFor } from '../helpers/vrrp-peers.js';
import { Netns, vethPair, run } from '../helpers/netns.js';
import { xdpSkipReason, testDirs, PASS_OBJECT } from '../helpers/xdp.js';

/**
 * Real traffic on the host kernel: client netns -> LB netns (Fulcrum XDP, native, on every port)
 * -> three backend netns, for nat and dr, TCP and UDP, IPv4 and IPv6. The dataplane runs in a child
 * process inside the LB netns (as the agent would); what it programmed is read back with bpftool and
 * ip. Every traffic loop is bounded; all namespaces, processes and pins are removed in `after`.
 */

const skip = xdpSkipReason() ?? (existsSync('/usr/sbin/ethtool') || existsSync('/sbin/ethtool') ? undefined : 'needs ethtool (scripts/setup.sh installs it)');
const AGENT = fileURLToPath(new URL('../helpers/xdp-agent.js', import.meta.url));
const TRAFFIC = fileURLToPath(new URL('../helpers/xdp-traffic.js', import.meta.url));

let client: Netns, lb: Netns;
const backends: Netns[] = [];
const procs: ChildProcess[] = [];
let dirs: { pinDir: string; stateDir: string };
let agent: Agent | undefined;

const SETTINGS = {
  interfaces: [{ name: 'l0', mode: 'native' }, { name: 'lb1', mode: 'native' }, { name: 'lb2', mode: 'native' }, { name: 'lb3', mode: 'native' }],
  maxVips: 16, maxBackends: 128, maglevTableSize: 1021, conntrackSize: 16384,
};

const b4 = (i: number) => `10.1.${i}.1`;
const b6 = (i: number) => `2001:db8:1:${i}::1`;

function servicesWith(nat4Backends: number[]) {
  const all = [1, 2];
  return [
    { name: 'nat4t', dataplane: 'xdp', address: '10.0.0.1', port: 80, backends: nat4Backends.map((i) => ({ address: b4(i), port: 8080 })) },
    { name: 'nat4u', dataplane: 'xdp', address: '10.0.0.1', port: 53, protocol: 'udp', backends: all.map((i) => ({ address: b4(i), port: 5353 })) },
    { name: 'nat6t', dataplane: 'xdp', address: '2001:db8::1', port: 80, backends: all.map((i) => ({ address: b6(i), port: 8080 })) },
    { name: 'nat6u', dataplane: 'xdp', address: '2001:db8::1', port: 53, protocol: 'udp', backends: all.map((i) => ({ address: b6(i), port: 5353 })) },
    { name: 'dr4t', dataplane: 'xdp', address: '10.0.0.2', port: 80, forwarding: 'dr', backends: all.map((i) => ({ address: b4(i) })) },
    { name: 'dr4u', dataplane: 'xdp', address: '10.0.0.2', port: 53, protocol: 'udp', forwarding: 'dr', backends: all.map((i) => ({ address: b4(i) })) },
    { name: 'dr6t', dataplane: 'xdp', address: '2001:db8::2', port: 80, forwarding: 'dr', backends: all.map((i) => ({ address: b6(i) })) },
    { name: 'dr6u', dataplane: 'xdp', address: '2001:db8::2', port: 53, protocol: 'udp', forwarding: 'dr', backends: all.map((i) => ({ address: b6(i) })) },
  ];
}

class Agent {
  private lines: AsyncIterator<string>;
  constructor(readonly proc: ChildProcess) {
    this.lines = createInterface({ input: proc.stdout! })[Symbol.asyncIterator]();
  }
  async call(cmd: Record<string, unknown>): Promise<Record<string, unknown>> {
    this.proc.stdin!.write(`${JSON.stringify(cmd)}\n`);
    const timer = new Promise<never>((_, rej) => setTimeout(() => rej(new Error(`agent ${String(cmd.op)} timed out`)), 60_000).unref());
    const next = await Promise.race([this.lines.next(), timer]);
    if (next.done) throw new Error('agent exited');
    const r = JSON.parse(next.value) as Record<string, unknown>;
    if (!r.ok) throw new Error(`agent ${String(cmd.op)}: ${String(r.error)}`);
    return r;
  }
  async stop(): Promise<void> {
    this.proc.stdin!.end();
    await new Promise((r) => { if (this.proc.exitCode !== null) r(undefined); else this.proc.once('exit', r); });
  }
}

async function startAgent(): Promise<{ agent: Agent; reopened: boolean; progId: number }> {
  // nsenter --net, not `ip netns exec`: the latter remounts /sys, which hides /sys/fs/bpf.
  const proc = spawn('nsenter', [`--net=/run/netns/${lb.name}`, process.execPath, AGENT], { stdio: ['pipe', 'pipe', 'inherit'] });
  procs.push(proc);
  const a = new Agent(proc);
  const r = await a.call({ op: 'create', settings: SETTINGS, ...dirs });
  return { agent: a, reopened: r.reopened as boolean, progId: r.progId as number };
}

async function traffic(mode: 'tcp' | 'udp', host: string, port: number, n: number): Promise<string[]> {
  const r = await client.exec(process.execPath, [TRAFFIC, mode, host, String(port), String(n)], { timeoutMs: 60_000 });
  return (JSON.parse(r.stdout) as { ids: string[] }).ids;
}

function hold(host: string, port: number, n: number) {
  const proc = client.spawn(process.execPath, [TRAFFIC, 'hold', host, String(port), String(n)], { stdio: ['pipe', 'pipe', 'inherit'] });
  procs.push(proc);
  const lines = createInterface({ input: proc.stdout! })[Symbol.asyncIterator]();
  const read = async () => {
    const t = new Promise<never>((_, rej) => setTimeout(() => rej(new Error('hold client timed out')), 30_000).unref());
    const next = await Promise.race([lines.next(), t]);
    if (next.done) throw new Error('hold client exited');
    return (JSON.parse(next.value) as { ids: string[] }).ids;
  };
  return {
    first: read(),
    again: async () => { proc.stdin!.write('again\n'); return read(); },
    quit: () => { proc.stdin!.end('quit\n'); },
  };
}

async function attachPass(ns: Netns, dev: string) {
  await ns.exec('ip', ['link', 'set', 'dev', dev, 'xdpdrv', 'obj', PASS_OBJECT, 'sec', 'xdp']);
}

/**
 * A veth hands locally sent packets over with CHECKSUM_PARTIAL (the L4 checksum field holds only the
 * pseudo-header sum); XDP_TX/redirect drops that state and the receiver then sees a bad checksum.
 * Real NICs never deliver such packets, so the test hosts compute checksums in software.
 */
async function softwareChecksums(ns: Netns, dev: string) {
  await ns.exec('ethtool', ['-K', dev, 'tx', 'off']);
}

async function xdpProgId(dev: string): Promise<{ id: number; mode: number }> {
  const r = await lb.exec('ip', ['-j', '-d', 'link', 'show', 'dev', dev]);
  const link = (JSON.parse(r.stdout) as Array<{ xdp?: { mode: number; prog?: { id: number } } }>)[0];
  return { id: link?.xdp?.prog?.id ?? 0, mode: link?.xdp?.mode ?? 0 };
}

before(async () => {
  if (skip) return;
  if (!existsSync(PASS_OBJECT)) throw new Error(`${PASS_OBJECT} is not built`);
  dirs = testDirs();
  client = await Netns.create('flc');
  lb = await Netns.create('fll');
  await vethPair(client, 'c0', ['10.9.0.5/24', '2001:db8:9::5/64'], lb, 'l0', ['10.9.0.254/24', '2001:db8:9::fe/64']);
  await client.exec('ip', ['route', 'add', 'default', 'via', '10.9.0.254']);
  await client.exec('ip', ['-6', 'route', 'add', 'default', 'via', '2001:db8:9::fe']);
  await attachPass(client, 'c0');
  await softwareChecksums(client, 'c0');
  await softwareChecksums(lb, 'l0');
  for (const i of [1, 2, 3]) {
    const b = await Netns.create(`flb${i}`);
    backends.push(b);
    await vethPair(b, 'eth0', [`${b4(i)}/24`, `${b6(i)}/64`], lb, `lb${i}`, [`10.1.${i}.254/24`, `2001:db8:1:${i}::fe/64`]);
    await b.exec('ip', ['route', 'add', 'default', 'via', `10.1.${i}.254`]);
    await b.exec('ip', ['-6', 'route', 'add', 'default', 'via', `2001:db8:1:${i}::fe`]);
    // dr: the backend holds the VIPs on loopback.
    await b.exec('ip', ['addr', 'add', '10.0.0.2/32', 'dev', 'lo']);
    await b.exec('ip', ['addr', 'add', '2001:db8::2/128', 'dev', 'lo', 'nodad']);
    await attachPass(b, 'eth0');
    await softwareChecksums(b, 'eth0');
    await softwareChecksums(lb, `lb${i}`);
    const srv = b.spawn(process.execPath, [TRAFFIC, 'server', `b${i}`, 'tcp:8080,udp:5353,tcp:80,udp:53']);
    procs.push(srv);
    await new Promise((r) => srv.stdout!.once('data', r));
  }
  await lb.exec('sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
  await lb.exec('sysctl', ['-qw', 'net.ipv6.conf.all.forwarding=1']);
  const lbSrv = lb.spawn(process.execPath, [TRAFFIC, 'server', 'lb', 'tcp:2222']);
  procs.push(lbSrv);
  await new Promise((r) => lbSrv.stdout!.once('data', r));
  // No neighbour entries yet: the agent learns the dr backends' MACs itself (next test).
  const started = await startAgent();
  agent = started.agent;
  assert.equal(started.reopened, false);
  await agent.call({ op: 'reconcile', services: servicesWith([1, 2]) });
});

/** The LB's neighbour table: address -> MAC, for entries that have one. */
async function lbNeighbours(): Promise<Map<string, string>> {
  const r = await lb.exec('ip', ['-j', 'neigh', 'show']);
  return new Map((JSON.parse(r.stdout) as Array<{ dst: string; lladdr?: string }>).filter((n) => n.lladdr).map((n) => [n.dst, n.lladdr!]));
}

test('dr backends without a configured MAC: the agent solicits their neighbours and writes the learned MACs into their slots', { skip }, async () => {
  const drAddresses = [1, 2].flatMap((i) => [b4(i), b6(i)]);
  // The first reconcile found no neighbours and solicited them; the kernel resolves them.
  const known = (await waitFor('the LB to resolve the dr backends', async () => {
    const n = await lbNeighbours();
    return drAddresses.every((a) => n.has(a)) ? n : undefined;
  }, 5000, 50))!;
  const r = await agent!.call({ op: 'reconcile', services: servicesWith([1, 2]) });
  const steps = (r.result as { steps: Array<{ kind: string; description: string }> }).steps;
  assert.ok(steps.length > 0 && steps.every((s) => s.kind === 'update-backend' && /mac fib -> /.test(s.description)), JSON.stringify(steps));
  const dump = JSON.parse((await run('bpftool', ['-j', 'map', 'dump', 'pinned', `${dirs.pinDir}/backends`])).stdout) as Array<{ formatted?: { value: { flags: number; port: number; mac: number[]; addr: number[] } } }>;
  const macText = (m: number[]) => m.map((x) => x.toString(16).padStart(2, '0')).join(':');
  // Only dr slots carry a MAC (nat backends are reached through the FIB).
  const dr = dump.filter((e) => e.formatted?.value.flags === 1 && e.formatted.value.mac.some((x) => x !== 0));
  assert.equal(dr.length, 8, '4 dr services x 2 backends, each with a MAC');
  for (const e of dr) {
    const mac = macText(e.formatted!.value.mac);
    assert.ok([...known.values()].includes(mac), `slot MAC ${mac} is a learned neighbour MAC`);
  }
  // Nothing changes: the next reconcile has nothing to do.
  assert.deepEqual((await agent!.call({ op: 'reconcile', services: servicesWith([1, 2]) })).result, { dataplane: 'xdp', steps: [], applied: true });
});

after(async () => {
  if (skip) return;
  try { await agent?.call({ op: 'cleanup' }); } catch { /* the test may have cleaned up already */ }
  await agent?.stop().catch(() => undefined);
  for (const p of procs) if (p.exitCode === null) p.kill('SIGKILL');
  for (const ns of [client, lb, ...backends]) await ns?.delete();
  if (dirs) {
    await run('rm', ['-rf', dirs.pinDir], { allowFail: true });
    rmSync(dirs.stateDir, { recursive: true, force: true });
  }
});

test('the program is attached natively on every LB port, and bpftool reads back what was programmed', { skip }, async () => {
  const ids = await Promise.all(SETTINGS.interfaces.map((i) => xdpProgId(i.name)));
  const progId = ids[0]!.id;
  assert.ok(progId > 0);
  for (const [n, x] of ids.entries()) {
    assert.equal(x.id, progId, `${SETTINGS.interfaces[n]!.name} runs the pinned program`);
    assert.equal(x.mode, 1, 'XDP_ATTACHED_DRV (native)');
  }
  const prog = JSON.parse((await run('bpftool', ['-j', 'prog', 'show', 'pinned', `${dirs.pinDir}/prog`])).stdout) as { id: number; name: string; type: string };
  assert.equal(prog.id, progId);
  assert.equal(prog.name, 'fulcrum_xdp');
  const vips = JSON.parse((await run('bpftool', ['-j', 'map', 'dump', 'pinned', `${dirs.pinDir}/vips`])).stdout) as unknown[];
  assert.equal(vips.length, 8, 'one vips entry per service');
  const backendsDump = JSON.parse((await run('bpftool', ['-j', 'map', 'dump', 'pinned', `${dirs.pinDir}/backends`])).stdout) as Array<{ formatted?: { value: { flags: number; port: number } } }>;
  // With BTF, bpftool decodes struct fl_backend itself ("formatted"): count the active slots.
  const active = backendsDump.filter((e) => e.formatted?.value.flags === 1);
  assert.equal(active.length, 16, '8 services x 2 backends');
});

for (const [name, proto, host, port] of [
  ['nat4t', 'tcp', '10.0.0.1', 80], ['nat4u', 'udp', '10.0.0.1', 53], ['nat6t', 'tcp', '2001:db8::1', 80], ['nat6u', 'udp', '2001:db8::1', 53],
  ['dr4t', 'tcp', '10.0.0.2', 80], ['dr4u', 'udp', '10.0.0.2', 53], ['dr6t', 'tcp', '2001:db8::2', 80], ['dr6u', 'udp', '2001:db8::2', 53],
] as const) {
  test(`${name}: ${proto} to ${host}:${port} reaches the backends through XDP`, { skip }, async () => {
    const before = await serviceStats(name);
    const ids = await traffic(proto, host, port, 12);
    assert.deepEqual(ids.filter((i) => !/^b[12]$/.test(i)), [], `every flow answered by b1 or b2: ${ids.join(',')}`);
    assert.equal(new Set(ids).size, 2, `12 flows spread over both backends: ${ids.join(',')}`);
    const after = await serviceStats(name);
    assert.ok(after.packetsIn - before.packetsIn >= 12n, `XDP counted the packets (${after.packetsIn - before.packetsIn})`);
    assert.ok(after.connections - before.connections >= 12n, 'and the new flows');
    if (name.startsWith('nat')) assert.ok(after.packetsOut - before.packetsOut >= 12n, 'replies were reverse-NATed in XDP');
  });
}

async function serviceStats(name: string): Promise<{ packetsIn: bigint; packetsOut: bigint; connections: bigint }> {
  const r = await agent!.call({ op: 'stats' });
  const s = (r.stats as Array<{ service: string; totals: Record<string, string> }>).find((x) => x.service === name);
  assert.ok(s, `stats for ${name}`);
  return { packetsIn: BigInt(s.totals.packetsIn!), packetsOut: BigInt(s.totals.packetsOut!), connections: BigInt(s.totals.connections!) };
}

test('foreign traffic still works: ping and TCP to the LB itself, ping through it', { skip }, async () => {
  await client.exec('ping', ['-c2', '-i0.2', '-W2', '10.9.0.254']);
  await client.exec('ping', ['-6', '-c2', '-i0.2', '-W2', '2001:db8:9::fe']);
  await client.exec('ping', ['-c2', '-i0.2', '-W2', b4(1)]);
  await client.exec('ping', ['-6', '-c2', '-i0.2', '-W2', b6(2)]);
  assert.deepEqual(await traffic('tcp', '10.9.0.254', 2222, 3), ['lb', 'lb', 'lb']);
  assert.deepEqual(await traffic('tcp', '2001:db8:9::fe', 2222, 2), ['lb', 'lb']);
  // A backend's own service that is no VIP is routed as usual.
  assert.deepEqual(await traffic('tcp', b4(3), 8080, 2), ['b3', 'b3']);
});

test('established TCP connections keep their backend when one is added; new flows reach it', { skip }, async () => {
  const h = hold('10.0.0.1', 80, 16);
  const first = await h.first;
  assert.deepEqual(first.filter((i) => !/^b[12]$/.test(i)), []);
  const r = await agent!.call({ op: 'reconcile', services: servicesWith([1, 2, 3]) });
  const steps = (r.result as { steps: Array<{ kind: string }> }).steps.map((s) => s.kind);
  assert.deepEqual(steps, ['set-filter', 'add-backend', 'set-endpoint', 'publish', 'set-vip-index']);
  const again = await h.again();
  assert.deepEqual(again, first, 'every held connection answered by the same backend');
  h.quit();
  const fresh = await traffic('tcp', '10.0.0.1', 80, 24);
  assert.ok(fresh.includes('b3'), `new flows reach the added backend: ${fresh.join(',')}`);
  assert.deepEqual(fresh.filter((i) => !/^b[123]$/.test(i)), []);
});

test('a removed backend gets no new flows', { skip }, async () => {
  const r = await agent!.call({ op: 'reconcile', services: servicesWith([2, 3]) });
  assert.deepEqual((r.result as { steps: Array<{ kind: string }> }).steps.map((s) => s.kind), ['publish', 'set-vip-index', 'remove-backend', 'remove-endpoint', 'set-filter']);
  const fresh = await traffic('tcp', '10.0.0.1', 80, 24);
  assert.deepEqual(fresh.filter((i) => i !== 'b2' && i !== 'b3'), [], `no flow to b1: ${fresh.join(',')}`);
  assert.equal(new Set(fresh).size, 2);
});

test('an agent restart reopens the pins: nothing detaches, flows keep going, nothing to re-apply', { skip }, async () => {
  const h = hold('10.0.0.1', 80, 8);
  const first = await h.first;
  const progBefore = (await xdpProgId('l0')).id;
  await agent!.call({ op: 'close' });
  await agent!.stop();
  agent = undefined;
  // No agent at all: the program is still attached and forwarding.
  assert.equal((await xdpProgId('l0')).id, progBefore);
  assert.deepEqual(await h.again(), first, 'held connections answered while the agent is down');
  const ids = await traffic('udp', '2001:db8::2', 53, 4);
  assert.deepEqual(ids.filter((i) => !/^b[12]$/.test(i)), []);
  const restarted = await startAgent();
  agent = restarted.agent;
  assert.equal(restarted.reopened, true);
  assert.equal(restarted.progId, progBefore);
  const r = await agent.call({ op: 'reconcile', services: servicesWith([2, 3]) });
  assert.deepEqual((r.result as { steps: unknown[] }).steps, [], 'the pinned state already is the desired state');
  assert.deepEqual(await h.again(), first);
  h.quit();
  const stats = (await agent.call({ op: 'stats' })).stats as Array<{ service: string }>;
  assert.ok(stats.some((s) => s.service === 'nat4t'), 'service names survive the restart (state file)');
});

test('cleanup detaches from every port and removes the pins', { skip }, async () => {
  await agent!.call({ op: 'cleanup' });
  for (const i of SETTINGS.interfaces) assert.equal((await xdpProgId(i.name)).id, 0, `${i.name} detached`);
  assert.equal(existsSync(`${dirs.pinDir}/prog`), false);
  assert.equal(existsSync(`${dirs.pinDir}/vips`), false);
  // Plain routing again: the VIP is no longer balanced, the LB's own address still answers.
  assert.deepEqual(await traffic('tcp', '10.9.0.254', 2222, 1), ['lb']);
});
