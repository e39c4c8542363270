import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { stringify } from 'yaml';
import { run, type Netns } from '../helpers/netns.js';
import { xdpSkipReason, testDirs } from '../helpers/xdp.js';
import { createXdpAgentLab, ECHO, LAB_XDP, labBackend, type XdpAgentLab } from '../helpers/xdp-agent-lab.js';
import { AgentProcess, fulcrum } from '../helpers/agent-process.js';

/**
 * The real agent process on the host kernel, driven through its CLI and API: client netns -> LB
 * netns (the agent, XDP native on its ports) -> two backend netns. An `apply` creates an XDP
 * service and real TCP flows through it; a kill -9 of the agent leaves the program forwarding and
 * open connections alive; the restarted agent finds its acknowledged state and plans nothing for
 * the kernel; drain, SIGTERM and --cleanup do what they say. Everything is removed in `after`.
 */

const skip = xdpSkipReason() ?? (existsSync('/usr/sbin/ethtool') || existsSync('/sbin/ethtool') ? undefined : 'needs ethtool (scripts/setup.sh installs it)');

let lab: XdpAgentLab | undefined;
let client: Netns, lb: Netns;
const procs: ChildProcess[] = [];
let dirs: { pinDir: string; stateDir: string };
let agent: AgentProcess | undefined;
let configPath: string, statePath: string, tokenFile: string;

const XDP = LAB_XDP;
const b4 = labBackend;
const WEB = { name: 'web', dataplane: 'xdp', address: '10.0.0.1', port: 80, backends: [1, 2].map((i) => ({ address: b4(i), port: 8080 })) };

const cli = (words: string[]) => fulcrum(words, agent!.server, tokenFile, lb.name);

async function ask(n: number): Promise<string[]> {
  const r = await client.exec(process.execPath, [ECHO, 'tcp', '10.0.0.1', '80', String(n)], { timeoutMs: 60_000 });
  return (JSON.parse(r.stdout) as { ids: string[] }).ids;
}

before(async () => {
  if (skip) return;
  dirs = testDirs();
  lab = await createXdpAgentLab('fa');
  ({ client, lb } = lab);

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
  await lab?.delete();
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
