import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { stringify } from 'yaml';
import { ipvsadm, ipvsSkipReason, resetIpvs } from '../helpers/ipvs-vm.js';
import { IpvsLab } from '../helpers/ipvs-lab.js';
import { tempDir } from '../helpers/ipvs-fulcrum.js';
import { AgentProcess, fulcrum } from '../helpers/agent-process.js';
import { ECHO } from '../helpers/xdp-agent-lab.js';

/**
 * `fulcrum explain` on IPVS, through the real agent in the VM: for sh (hash of the client address)
 * and mh (Maglev over address and source port) services with unequal weights, explain names a new
 * flow's backend BEFORE any packet; 200 real connections per service then land exactly there, and
 * explain, asked again, finds each in the kernel's connection table. An rr service (not
 * predictable) with 60 held connections: explain says so before, and afterwards finds every
 * connection ESTABLISHED on the backend that answered it.
 */

const skip = ipvsSkipReason();
const PROBE = fileURLToPath(new URL('../helpers/flow-probe.js', import.meta.url));
let lab: IpvsLab;
let state: ReturnType<typeof tempDir>;
let agent: AgentProcess | undefined;
let configPath: string, tokenFile: string;
const extra: ChildProcess[] = [];
const CLIENTS = 20;
let sources: string[] = [];

interface Flow { src: string; sport: number; id: string }
interface Answer { source: string; backend: { address: string; port: number; weight: number; health: string; draining: boolean } | null; reason: string; detail: Record<string, unknown> }

async function explain(client: string, vport: number): Promise<Answer> {
  const token = readFileSync(tokenFile, 'utf8').trim();
  const q = new URLSearchParams({ client, vip: lab.vip4, port: String(vport), proto: 'tcp' });
  const res = await fetch(`${agent!.server}/v1/explain?${q}`, { headers: { authorization: `Bearer ${token}` } });
  assert.equal(res.status, 200, await res.clone().text());
  return (await res.json()) as Answer;
}

/** Explains every flow, 10 requests at a time. */
async function explainAll(flows: Array<{ src: string; sport: number }>, vport: number): Promise<Answer[]> {
  const out: Answer[] = [];
  for (let i = 0; i < flows.length; i += 10) out.push(...await Promise.all(flows.slice(i, i + 10).map((f) => explain(`${f.src}:${f.sport}`, vport))));
  return out;
}

const planned = (first: number, n: number) => Array.from({ length: n }, (_, i) => ({ src: sources[i % sources.length]!, sport: first + i }));

/**
 * On any disagreement (else ''): how many flows disagree, the destination order and weights explain
 * read (first and last answer), the kernel's list now, and the agent's IPVS steps since it started,
 * so a failure says whether the list changed under the test.
 */
async function disagreement(sent: Flow[], before: Answer[], vport: number): Promise<string> {
  const bad = sent.filter((f, i) => before[i]!.backend?.address !== f.id);
  if (bad.length === 0) return '';
  const order = (a: Answer) => JSON.stringify((a as unknown as { backends: Array<{ address: string; weight: number }> }).backends?.map((b) => `${b.address}/${b.weight}`));
  const steps = agent!.logs.filter((l) => /step|destination|service/i.test(String(l.msg))).map((l) => `${String(l.time)} ${String(l.msg)}`).slice(-20);
  return `\n${bad.length} of ${sent.length} disagree; explain read ${order(before[0]!)} first, ${order(before.at(-1)!)} last; the kernel now:\n${await ipvsadm('-Ln', '-t', `${lab.vip4}:${vport}`)}\nagent log:\n${steps.join('\n')}`;
}

async function send(vport: number, first: number, n: number): Promise<Flow[]> {
  const r = await lab.client.exec(process.execPath, [PROBE, lab.vip4, String(vport), sources.join(','), String(first), String(n)], { timeoutMs: 120_000 });
  return (JSON.parse(r.stdout) as { flows: Flow[] }).flows;
}

before(async () => {
  if (skip) return;
  await resetIpvs();
  lab = await IpvsLab.create('nat', 3);
  const net = lab.vip4.split('.')[1];
  sources = Array.from({ length: CLIENTS }, (_, i) => `10.${net}.1.${10 + i}`);
  for (const a of sources.slice(1)) await lab.client.exec('ip', ['addr', 'add', `${a}/24`, 'dev', 'eth0']);
  for (const b of lab.backends) {
    const srv = b.ns.spawn(process.execPath, [ECHO, 'server', b.v4, 'tcp:8080']);
    extra.push(srv);
    await new Promise((r) => srv.stdout!.once('data', r));
  }
  state = tempDir();
  const stateDir = join(state.dir, 'state');
  configPath = join(state.dir, 'fulcrum.yaml');
  tokenFile = join(stateDir, 'admin.token');
  writeFileSync(configPath, stringify({ agent: { stateDir, api: { port: 0, rateLimit: false }, reconcileIntervalSeconds: 30 } }));
  const backends = lab.backends.map((b, i) => ({ address: b.v4, port: 8080, weight: i + 1 }));
  const statePath = join(state.dir, 'state.yaml');
  writeFileSync(statePath, stringify({
    services: [
      { name: 'by-source', address: lab.vip4, port: 8081, scheduler: 'sh', backends },
      { name: 'by-flow', address: lab.vip4, port: 8082, scheduler: 'mh', schedulerFlags: { port: true }, backends },
      { name: 'rotating', address: lab.vip4, port: 8083, scheduler: 'rr', backends },
      { name: 'by-vip', address: lab.vip4, port: 8085, scheduler: 'dh', backends },
      { name: 'by-flow-fallback', address: lab.vip4, port: 8084, scheduler: 'sh', schedulerFlags: { port: true, fallback: true }, backends },
    ],
  }));
  agent = await AgentProcess.start(configPath, { timeoutMs: 300_000 });
  const r = await fulcrum(['apply', '-f', statePath], agent.server, tokenFile);
  assert.equal(r.code, 0, r.stderr);
});

after(async () => {
  if (skip) return;
  for (const p of extra) if (p.exitCode === null) p.kill('SIGKILL');
  if (agent) await agent.kill9().catch(() => undefined);
  if (configPath) await AgentProcess.once(configPath, ['--cleanup']).catch(() => undefined);
  await lab?.cleanup();
  state?.remove();
  await resetIpvs();
});

for (const [name, vport, first, scheduler] of [['sh', 8081, 20000, 'sh'], ['mh with the port flag', 8082, 30000, 'mh']] as const) {
  test(`${name}: explain predicts each of 200 new flows' backend; the real connections go there and are then found in the table`, { skip }, async () => {
    const flows = planned(first, 200);
    const before = await explainAll(flows, vport);
    for (const a of before) {
      assert.equal(a.source, 'scheduler', a.reason);
      assert.match(a.reason, new RegExp(`the ${scheduler} scheduler maps it to`));
    }
    const sent = await send(vport, first, 200);
    const diag = await disagreement(sent, before, vport);
    let agree = 0;
    const per = new Map<string, number>();
    sent.forEach((f, i) => {
      assert.ok(!f.id.startsWith('error'), `flow ${f.src}:${f.sport}: ${f.id}`);
      assert.equal(before[i]!.backend?.address, f.id, `flow ${f.src}:${f.sport}: explain said ${before[i]!.backend?.address} (${before[i]!.reason}), it reached ${f.id}${diag}`);
      agree += 1;
      per.set(f.id, (per.get(f.id) ?? 0) + 1);
    });
    assert.equal(agree, 200);
    assert.equal(per.size, 3, `all three backends got flows: ${JSON.stringify([...per])}`);
    const afterwards = await explainAll(flows, vport);
    // The probe closed its connections: each is in the table, most in TIME_WAIT, which a new
    // connection of the same 4-tuple would not follow (explain says so and names its backend).
    afterwards.forEach((a, i) => {
      const id = sent[i]!.id;
      if (a.source === 'connection') {
        assert.match(a.reason, /IPVS connection .* in state [A-Z_]+/);
        assert.equal(a.backend?.address, id);
      } else {
        assert.equal(a.source, 'scheduler', a.reason);
        assert.match(String(a.detail.timeWait), new RegExp(`to ${id.replace(/\./g, '\\.')}:8080 is in TIME_WAIT`));
        assert.equal(a.backend?.address, id, 'and the scheduler still picks the same backend');
      }
    });
  });
}

test('rr: explain says a new flow is unpredictable and why; 60 held connections are each found ESTABLISHED on the backend that answered', { skip }, async () => {
  const first = 40000;
  const flows = planned(first, 60);
  const [ahead] = await explainAll(flows.slice(0, 1), 8083);
  assert.equal(ahead!.source, 'unpredictable');
  assert.equal(ahead!.backend, null);
  assert.match(ahead!.reason, /round-robin cursor/);
  const p = lab.client.spawn(process.execPath, [PROBE, lab.vip4, '8083', sources.join(','), String(first), '60', 'hold'], { stdio: ['pipe', 'pipe', 'pipe'] });
  extra.push(p);
  const lines = createInterface({ input: p.stdout! })[Symbol.asyncIterator]();
  const held = (JSON.parse(String((await lines.next()).value)) as { flows: Flow[] }).flows;
  for (const f of held) assert.ok(!f.id.startsWith('error'), `flow ${f.src}:${f.sport}: ${f.id}`);
  assert.equal(new Set(held.map((f) => f.id)).size, 3, 'rr spreads over the three backends');
  const found = await explainAll(held, 8083);
  found.forEach((a, i) => {
    assert.equal(a.source, 'connection', a.reason);
    assert.match(a.reason, /in state ESTABLISHED/);
    assert.equal(a.backend?.address, held[i]!.id, `flow ${held[i]!.src}:${held[i]!.sport}`);
  });
  // The CLI's human form states the reason and the backend's weight, health and drain state.
  const f = held[0]!;
  const human = await fulcrum(['explain', '--client', `${f.src}:${f.sport}`, '--vip', lab.vip4, '--port', '8083'], agent!.server, tokenFile);
  assert.equal(human.code, 0, human.stderr);
  assert.match(human.stdout, /service: +rotating \(ipvs\)/);
  assert.match(human.stdout, new RegExp(`backend: +${f.id.replace(/\./g, '\\.')}:8080 weight \\d, health unchecked`));
  assert.match(human.stdout, /because: +an existing connection: IPVS connection .* in state ESTABLISHED/);
  p.stdin!.write('again\n');
  const again = (JSON.parse(String((await lines.next()).value)) as { flows: Flow[] }).flows;
  assert.deepEqual(again.map((x) => x.id), held.map((x) => x.id), 'the held connections stayed on their backends');
});

test('sh with port and fallback flags, one backend at weight 0: explain names the fallback bucket; 200 real connections agree', { skip }, async () => {
  const token = readFileSync(tokenFile, 'utf8').trim();
  const zero = lab.backends[0]!.v4;
  const res = await fetch(`${agent!.server}/v1/services/by-flow-fallback/backends/${zero}:8080`, {
    method: 'PATCH', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ weight: 0 }),
  });
  assert.equal(res.status, 200, await res.text());
  const first = 50000;
  const flows = planned(first, 200);
  const before = await explainAll(flows, 8084);
  const fellBack = before.filter((a) => a.detail.fallbackBucket !== undefined).length;
  assert.ok(fellBack > 0, 'some flows hash to the weight-0 backend\'s bucket and fall back');
  for (const a of before) {
    assert.equal(a.source, 'scheduler', a.reason);
    assert.notEqual(a.backend?.address, zero);
  }
  const sent = await send(8084, first, 200);
  const diag = await disagreement(sent, before, 8084);
  sent.forEach((f, i) => assert.equal(before[i]!.backend?.address, f.id, `flow ${f.src}:${f.sport}: explain said ${before[i]!.backend?.address} (${before[i]!.reason}), it reached ${f.id}${diag}`));
});

// dh: every flow of a dh VIP goes to one backend. The VIP is 10.N.0.1 with N chosen per run, so
// over runs this covers many buckets; ip_vs_dh_hashkey is hash_32 (an earlier explain used the old
// multiplicative hash and was right only when both hashes fell on the same destination). On
// failure the message prints the kernel's destinations and explain's answer.
test('dh: explain names the one backend every new flow to the VIP gets; real connections agree', { skip }, async () => {
  const flows = planned(55000, 20);
  const before = await explainAll(flows, 8085);
  for (const a of before) assert.match(a.reason, /the dh scheduler maps it to destination hash bucket \d+ of 256/);
  assert.equal(new Set(before.map((a) => a.backend?.address)).size, 1);
  const sent = await send(8085, 55000, 20);
  // On failure: the kernel's destination list (ipvsadm lists it in the kernel's order) and the one explain read.
  const table = sent.some((f, i) => before[i]!.backend?.address !== f.id) ? await ipvsadm('-Ln', '-t', `${lab.vip4}:8085`) : '';
  sent.forEach((f, i) => assert.equal(before[i]!.backend?.address, f.id,
    `flow ${f.src}:${f.sport}: explain said ${before[i]!.backend?.address} (${JSON.stringify(before[i])}), it reached ${f.id}\n${table}`));
});

test('bad input is a 400 naming the field', { skip }, async () => {
  const token = readFileSync(tokenFile, 'utf8').trim();
  const res = await fetch(`${agent!.server}/v1/explain?client=10.0.0.1&vip=${lab.vip4}&port=99999`, { headers: { authorization: `Bearer ${token}` } });
  assert.equal(res.status, 400);
  assert.match(((await res.json()) as { message: string }).message, /port/);
});
