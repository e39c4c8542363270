import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { Netns, vethPair, run } from '../helpers/netns.js';
import { xdpSkipReason, testDirs, PASS_OBJECT } from '../helpers/xdp.js';
import { AgentProcess, fulcrum } from '../helpers/agent-process.js';

/**
 * The real agent process on the host kernel, driven through its CLI and API: client netns -> LB
 * netns (the agent, XDP native on its ports) -> two backend netns. An `apply` creates an XDP
 * service and real TCP flows through it; a kill -9 of the agent leaves the program forwarding and
 * open connections alive; the restarted agent finds its acknowledged state and plans nothing for
 * the kernel; drain, SIGTERM and --cleanup do what they say. Everything is removed in `after`.
 */

const skip = xdpSkipReason() ?? (existsSync('/usr/sbin/ethtool') || existsSync('/sbin/ethtool') ? undefined : 'needs ethtool (scripts/setup.sh installs it)');
const ECHO = fileURLToPath(new URL('../helpers/xdp-traffic.js', import.meta.url));

let client: Netns, lb: Netns;
const backends: Netns[] = [];
const procs: ChildProcess[] = [];
let dirs: { pinDir: string; stateDir: string };
let agent: AgentProcess | undefined;
let configPath: string, statePath: string, tokenFile: string;

const XDP = {
  interfaces: [{ name: 'l0', mode: 'native' }, { name: 'lb1', mode: 'native' }, { name: 'lb2', mode: 'native' }],
  maxVips: 8, maxBackends: 64, maglevTableSize: 251, conntrackSize: 4096,
};
const b4 = (i: number) => `10.1.${i}.1`;
const WEB = { name: 'web', dataplane: 'xdp', address: '10.0.0.1', port: 80, backends: [1, 2].map((i) => ({ address: b4(i), port: 8080 })) };

const cli = (words: string[]) => fulcrum(words, agent!.server, tokenFile, lb.name);

async function ask(n: number): Promise<string[]> {
  const r = await client.exec(process.execPath, [ECHO, 'tcp', '10.0.0.1', '80', String(n)], { timeoutMs: 60_000 });
  return (JSON.parse(r.stdout) as { ids: string[] }).ids;
}

before(async () => {
  if (skip) return;
  if (!existsSync(PASS_OBJECT)) throw new Error(`${PASS_OBJECT} is not built`);
  dirs = testDirs();
  client = await Netns.create('fac');
  lb = await Netns.create('fal');
  await vethPair(client, 'c0', ['10.9.0.5/24'], lb, 'l0', ['10.9.0.254/24']);
  await client.exec('ip', ['route', 'add', 'default', 'via', '10.9.0.254']);
  // Native XDP on veth transmits only when the peer has an XDP program too.
  await client.exec('ip', ['link', 'set', 'dev', 'c0', 'xdpdrv', 'obj', PASS_OBJECT, 'sec', 'xdp']);
  // A veth hands locally sent packets over with CHECKSUM_PARTIAL, which XDP_TX/redirect loses;
  // real NICs never deliver such packets, so the test hosts checksum in software.
  await client.exec('ethtool', ['-K', 'c0', 'tx', 'off']);
  for (const i of [1, 2]) {
    const b = await Netns.create(`fab${i}`);
    backends.push(b);
    await vethPair(b, 'eth0', [`${b4(i)}/24`], lb, `lb${i}`, [`10.1.${i}.254/24`]);
    await b.exec('ip', ['route', 'add', 'default', 'via', `10.1.${i}.254`]);
    await b.exec('ip', ['link', 'set', 'dev', 'eth0', 'xdpdrv', 'obj', PASS_OBJECT, 'sec', 'xdp']);
    await b.exec('ethtool', ['-K', 'eth0', 'tx', 'off']);
    const srv = b.spawn(process.execPath, [ECHO, 'server', `b${i}`, 'tcp:8080']);
    procs.push(srv);
    await new Promise((r) => srv.stdout!.once('data', r));
  }
  await lb.exec('sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
  for (const i of [1, 2]) await lb.exec('ping', ['-c1', '-W2', b4(i)]);

  configPath = join(dirs.stateDir, 'fulcrum.yaml');
  statePath = join(dirs.stateDir, 'state.yaml');
  tokenFile = join(dirs.stateDir, 'state', 'admin.token');
  writeFileSync(configPath, stringify({
    agent: { stateDir: join(dirs.stateDir, 'state'), api: { port: 0 }, xdp: { pinDir: dirs.pinDir }, reconcileIntervalSeconds: 2 },
    xdp: XDP,
  }));
  writeFileSync(statePath, stringify({ xdp: XDP, services: [WEB] }));
});

after(async () => {
  if (skip) return;
  if (agent) await agent.kill9().catch(() => undefined);
  if (configPath) await AgentProcess.once(configPath, ['--cleanup'], lb?.name).catch(() => undefined);
  for (const p of procs) if (p.exitCode === null) p.kill('SIGKILL');
  for (const ns of [client, lb, ...backends]) await ns?.delete();
  if (dirs) {
    await run('rm', ['-rf', dirs.pinDir], { allowFail: true });
    rmSync(dirs.stateDir, { recursive: true, force: true });
  }
});

test('the agent refuses a config with a bad field, naming it', { skip }, async () => {
  const bad = join(dirs.stateDir, 'bad.yaml');
  writeFileSync(bad, stringify({ agent: { stateDir: join(dirs.stateDir, 'bad-state'), api: { port: 0 } }, services: [{ ...WEB, port: 99999 }] }));
  const r = await AgentProcess.once(bad, [], lb.name);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /INVALID_CONFIG: .*bad\.yaml: invalid config:\nservices\[0\]\.port: Too big/);
});

test('the agent starts, finds XDP (and says IPVS is missing), and an apply creates a service that carries traffic', { skip }, async () => {
  agent = await AgentProcess.start(configPath, { netns: lb.name });
  const found = agent.logs.filter((l) => typeof l.msg === 'string' && /^dataplane (ipvs|xdp) (found|not available)/.test(l.msg as string)).map((l) => l.msg);
  assert.deepEqual(found.sort(), ['dataplane ipvs not available', 'dataplane xdp found']);
  const status = JSON.parse((await cli(['status', '-o', 'json'])).stdout) as { dataplanes: Array<{ name: string; available: boolean }> };
  assert.deepEqual(status.dataplanes.map((d) => [d.name, d.available]), [['ipvs', false], ['xdp', true]]);

  const dry = await cli(['apply', '-f', statePath, '--dry-run']);
  assert.equal(dry.code, 0, dry.stderr);
  assert.match(dry.stdout, /\+ service web tcp 10\.0\.0\.1:80 on xdp \(maglev, nat\)/);
  assert.match(dry.stdout, /dry run: nothing applied/);
  assert.match((await ask(1))[0]!, /^error:/, 'nothing forwards before the apply');

  const applied = await cli(['apply', '-f', statePath]);
  assert.equal(applied.code, 0, applied.stderr);
  assert.match(applied.stdout, /applied: revision \d+ -> \d+/);
  const ids = await ask(12);
  assert.deepEqual(ids.filter((i) => !/^b[12]$/.test(i)), [], ids.join(','));
  assert.equal(new Set(ids).size, 2, `flows spread over both backends: ${ids.join(',')}`);

  // An independent reader: bpftool sees one VIP in the pinned map.
  const vips = JSON.parse((await run('bpftool', ['-j', 'map', 'dump', 'pinned', `${dirs.pinDir}/vips`])).stdout) as unknown[];
  assert.equal(vips.length, 1);
  const table = await cli(['get', 'services']);
  assert.match(table.stdout, /web +xdp +tcp 10\.0\.0\.1:80 +maglev +nat +10\.1\.1\.1:8080\*1,10\.1\.2\.1:8080\*1/);
});

test('kill -9: traffic and open connections keep flowing; the restart loses nothing and plans no kernel step', { skip }, async () => {
  const before = JSON.parse((await cli(['get', 'services', '-o', 'json'])).stdout) as unknown[];
  const stored = JSON.parse(readFileSync(join(dirs.stateDir, 'state', 'desired-state.json'), 'utf8')) as { revision: number };
  const holder = client.spawn(process.execPath, [ECHO, 'hold', '10.0.0.1', '80', '6'], { stdio: ['pipe', 'pipe', 'inherit'] });
  procs.push(holder);
  const lines = createInterface({ input: holder.stdout! })[Symbol.asyncIterator]();
  const round = async () => JSON.parse((await lines.next()).value as string) as { ids: string[] };
  const first = (await round()).ids;
  assert.ok(first.every((i) => /^b[12]$/.test(i)), first.join(','));

  assert.equal(await agent!.kill9(), null);
  agent = undefined;
  const during = await ask(6);
  assert.ok(during.every((i) => /^b[12]$/.test(i)), `new flows while the agent is down: ${during.join(',')}`);

  agent = await AgentProcess.start(configPath, { netns: lb.name });
  holder.stdin!.write('again\n');
  assert.deepEqual((await round()).ids, first, 'the same connections reach the same backends after the restart');
  holder.stdin!.end('quit\n');

  const after = JSON.parse((await cli(['get', 'services', '-o', 'json'])).stdout) as unknown[];
  assert.deepEqual(after, before);
  const status = JSON.parse((await cli(['status', '-o', 'json'])).stdout) as { revision: number; lastReconcile: { trigger: string; steps: number } };
  assert.equal(status.revision, stored.revision);
  assert.equal(status.lastReconcile.steps, 0, 'the kernel already matched: nothing re-programmed');
  const steps = agent!.logs.filter((l) => /^(reconciled at start|repaired drift)/.test(String(l.msg)));
  assert.deepEqual(steps, [], 'no kernel step since the restart');
  assert.ok(agent!.logs.some((l) => l.msg === 'xdp program reopened from pins'), 'the pinned program and maps were reopened');
});

test('drain through the CLI: new flows go to the remaining backend only', { skip }, async () => {
  const r = await cli(['drain', 'web', '10.1.2.1:8080']);
  assert.equal(r.code, 0, r.stderr);
  const ids = await ask(8);
  assert.deepEqual([...new Set(ids)], ['b1'], ids.join(','));
});

test('SIGTERM stops the agent with exit 0 and leaves XDP forwarding; --cleanup removes what Fulcrum owns', { skip }, async () => {
  assert.equal(await agent!.stop(), 0);
  agent = undefined;
  assert.deepEqual([...new Set(await ask(4))], ['b1'], 'still forwarding after a graceful stop');
  const c = await AgentProcess.once(configPath, ['--cleanup'], lb.name);
  assert.equal(c.code, 0, c.stderr);
  assert.match((await ask(1))[0]!, /^error:/, 'nothing forwards after cleanup');
  const link = JSON.parse((await lb.exec('ip', ['-j', '-d', 'link', 'show', 'dev', 'l0'])).stdout) as Array<{ xdp?: unknown }>;
  assert.equal(link[0]?.xdp, undefined, 'the program is detached');
});
