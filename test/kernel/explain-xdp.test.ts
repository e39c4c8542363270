import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { stringify } from 'yaml';
import { run } from '../helpers/netns.js';
import { xdpSkipReason, testDirs } from '../helpers/xdp.js';
import { createXdpAgentLab, LAB_XDP, labBackend, type XdpAgentLab } from '../helpers/xdp-agent-lab.js';
import { AgentProcess, fulcrum } from '../helpers/agent-process.js';

/**
 * `fulcrum explain` on XDP, through the real agent (LB netns, native XDP) and real flows from the
 * client netns: for 200 flows not sent yet explain names the Maglev entry and backend; the flows
 * then reach exactly those backends (each echo backend answers its id) and are held open; explain
 * now finds each in the connection table. After a weight change that moves Maglev entries, the
 * held flows are still explained by their connection-table entries (and still reach the same
 * backends), while 200 new flows go where the new table says.
 */

const skip = xdpSkipReason() ?? (existsSync('/usr/sbin/ethtool') || existsSync('/sbin/ethtool') ? undefined : 'needs ethtool (scripts/setup.sh installs it)');
const PROBE = fileURLToPath(new URL('../helpers/flow-probe.js', import.meta.url));
const BATCH = fileURLToPath(new URL('../helpers/explain-batch.js', import.meta.url));
const XDP = { ...LAB_XDP, conntrackSize: 16384 };
const VIP = '10.0.0.1';
const ID = new Map([['b1', labBackend(1)], ['b2', labBackend(2)]]);
const web = (w1: number, w2: number) => ({ name: 'web', dataplane: 'xdp', address: VIP, port: 80, backends: [{ address: labBackend(1), port: 8080, weight: w1 }, { address: labBackend(2), port: 8080, weight: w2 }] });

let lab: XdpAgentLab | undefined;
let dirs: { pinDir: string; stateDir: string };
let agent: AgentProcess | undefined;
let configPath: string, tokenFile: string;
const procs: ChildProcess[] = [];

interface Flow { src: string; sport: number; id: string }
interface Answer { source: string; backend: { address: string; port: number; weight: number; health: string; draining: boolean } | null; reason: string; detail: Record<string, unknown> }

const cli = (words: string[]) => fulcrum(words, agent!.server, tokenFile, lab!.lb.name);

async function explainPorts(ports: number[]): Promise<Answer[]> {
  const qs = ports.map((p) => `client=10.9.0.5:${p}&vip=${VIP}&port=80&proto=tcp`);
  const r = await lab!.lb.exec(process.execPath, [BATCH, agent!.server, tokenFile, JSON.stringify(qs)], { timeoutMs: 120_000 });
  return (JSON.parse(r.stdout) as Array<{ status: number; body: Answer }>).map((x) => {
    assert.equal(x.status, 200, JSON.stringify(x.body));
    return x.body;
  });
}

const range = (first: number, n: number) => Array.from({ length: n }, (_, i) => first + i);

async function apply(w1: number, w2: number): Promise<void> {
  const path = join(dirs.stateDir, `state-${w1}-${w2}.yaml`);
  writeFileSync(path, stringify({ xdp: XDP, services: [web(w1, w2)] }));
  const r = await cli(['apply', '-f', path]);
  assert.equal(r.code, 0, r.stderr);
}

before(async () => {
  if (skip) return;
  dirs = testDirs();
  lab = await createXdpAgentLab('ex');
  configPath = join(dirs.stateDir, 'fulcrum.yaml');
  tokenFile = join(dirs.stateDir, 'state', 'admin.token');
  writeFileSync(configPath, stringify({
    agent: { stateDir: join(dirs.stateDir, 'state'), api: { port: 0, rateLimit: false }, xdp: { pinDir: dirs.pinDir }, reconcileIntervalSeconds: 30 },
    xdp: XDP,
  }));
  agent = await AgentProcess.start(configPath, { netns: lab.lb.name });
  await apply(1, 3);
});

after(async () => {
  if (skip) return;
  for (const p of procs) if (p.exitCode === null) p.kill('SIGKILL');
  if (agent) await agent.kill9().catch(() => undefined);
  if (configPath) await AgentProcess.once(configPath, ['--cleanup'], lab?.lb.name).catch(() => undefined);
  await lab?.delete();
  if (dirs) {
    await run('rm', ['-rf', dirs.pinDir], { allowFail: true });
    rmSync(dirs.stateDir, { recursive: true, force: true });
  }
});

test('explain predicts 200 new XDP flows, finds them in the connection table once sent, and keeps them there across a Maglev change', { skip }, async () => {
  const ports = range(30000, 200);
  const predicted = await explainPorts(ports);
  for (const a of predicted) {
    assert.equal(a.source, 'scheduler', a.reason);
    assert.match(a.reason, /^not in the connection table: a new flow; maglev entry \d+ of 251/);
  }
  const holder = lab!.client.spawn(process.execPath, [PROBE, VIP, '80', '-', '30000', '200', 'hold'], { stdio: ['pipe', 'pipe', 'pipe'] });
  procs.push(holder);
  const lines = createInterface({ input: holder.stdout! })[Symbol.asyncIterator]();
  const held = (JSON.parse(String((await lines.next()).value)) as { flows: Flow[] }).flows;
  held.forEach((f, i) => {
    assert.equal(f.sport, ports[i]);
    assert.equal(predicted[i]!.backend?.address, ID.get(f.id), `flow :${f.sport}: explain said ${predicted[i]!.backend?.address} (${predicted[i]!.reason}), it reached ${f.id}`);
  });
  assert.equal(new Set(held.map((f) => f.id)).size, 2, 'both backends got flows');

  const found = await explainPorts(ports);
  found.forEach((a, i) => {
    assert.equal(a.source, 'connection', a.reason);
    assert.match(a.reason, /^connection-table entry in set \d+ -> backend slot \d+/);
    assert.equal(a.backend?.address, ID.get(held[i]!.id));
  });

  // New weights move Maglev entries: held flows stay on their entries, new ones follow the new table.
  await apply(3, 1);
  const kept = await explainPorts(ports);
  kept.forEach((a, i) => {
    assert.equal(a.source, 'connection', a.reason);
    assert.equal(a.backend?.address, ID.get(held[i]!.id));
  });
  const fresh = range(31000, 200);
  const next = await explainPorts(fresh);
  const moved = next.filter((a) => a.backend?.address === labBackend(1)).length;
  assert.ok(moved > 100, `the new table gives most new flows to the weight-3 backend (${moved} of 200)`);
  const sent = JSON.parse((await lab!.client.exec(process.execPath, [PROBE, VIP, '80', '-', '31000', '200'], { timeoutMs: 120_000 })).stdout) as { flows: Flow[] };
  sent.flows.forEach((f, i) => assert.equal(next[i]!.backend?.address, ID.get(f.id), `new flow :${f.sport}: explain said ${next[i]!.backend?.address}, it reached ${f.id}`));
  holder.stdin!.write('again\n');
  const again = (JSON.parse(String((await lines.next()).value)) as { flows: Flow[] }).flows;
  assert.deepEqual(again.map((f) => f.id), held.map((f) => f.id), 'the held flows stayed where explain said');
  // Without the connection table these flows would have moved: Maglev now sends them elsewhere.
  const movedUnder = kept.filter((a) => a.detail.maglevNow !== `${a.backend?.address}:8080`).length;
  assert.ok(movedUnder > 0, 'some held flows are on a backend the new Maglev table would not pick');
});

test('the CLI states the reason with the backend\'s weight, health and drain state; -o json is the API answer; bad input names the field', { skip }, async () => {
  const human = await cli(['explain', '--client', '10.9.0.5:30000', '--vip', VIP, '--port', '80', '--proto', 'tcp']);
  assert.equal(human.code, 0, human.stderr);
  assert.match(human.stdout, /service: +web \(xdp\)/);
  assert.match(human.stdout, /backend: +10\.1\.[12]\.1:8080 weight [13], health unchecked/);
  assert.match(human.stdout, /because: +an existing connection: connection-table entry in set \d+/);
  const json = JSON.parse((await cli(['explain', '--client', '10.9.0.5:65000', '--vip', VIP, '--port', '80', '-o', 'json'])).stdout) as Answer;
  assert.equal(json.source, 'scheduler');
  assert.equal(json.backend?.draining, false);
  const bad = await cli(['explain', '--client', '10.9.0.5', '--vip', 'nope', '--port', '80']);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /vip/);
  const none = await cli(['explain', '--client', '10.9.0.5:1000', '--vip', VIP, '--port', '81']);
  assert.notEqual(none.code, 0);
  assert.match(none.stderr, /no service for tcp 10\.0\.0\.1:81/);
});
