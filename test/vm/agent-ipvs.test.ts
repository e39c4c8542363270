import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { ipvsSkipReason, ipvsadm, resetIpvs } from '../helpers/ipvs-vm.js';
import { IpvsLab } from '../helpers/ipvs-lab.js';
import { tempDir } from '../helpers/ipvs-fulcrum.js';
import { AgentProcess, fulcrum } from '../helpers/agent-process.js';

/**
 * The real agent process in the IPVS VM, driven through its CLI and REST API: an apply creates an
 * IPVS service that `ipvsadm -Ln` shows and that carries HTTP; a PATCH re-weights a backend; a
 * kill -9 during a long transfer drops nothing and the restarted agent has nothing to redo; an
 * `ipvsadm -D` behind its back is repaired by the reconcile loop; SIGTERM leaves the table,
 * --cleanup removes it.
 */

const skip = ipvsSkipReason();
let lab: IpvsLab;
let state: ReturnType<typeof tempDir>;
let agent: AgentProcess | undefined;
let configPath: string, statePath: string, tokenFile: string, stateDir: string;

const cli = (...words: string[]) => fulcrum(words, agent!.server, tokenFile);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** ipvsadm -Ln without the connection counters, which traffic changes. */
const table = async () => (await ipvsadm('-Ln')).replace(/ +\d+ +\d+ *\n/g, '\n');

before(async () => {
  if (skip) return;
  await resetIpvs();
  lab = await IpvsLab.create('nat', 2);
  state = tempDir();
  stateDir = join(state.dir, 'state');
  configPath = join(state.dir, 'fulcrum.yaml');
  statePath = join(state.dir, 'state.yaml');
  tokenFile = join(stateDir, 'admin.token');
  writeFileSync(configPath, stringify({ agent: { stateDir, api: { port: 0 }, reconcileIntervalSeconds: 2 } }));
  writeFileSync(statePath, stringify({
    services: [{ name: 'web', address: lab.vip4, port: 80, scheduler: 'rr', backends: lab.backends.map((b) => ({ address: b.v4 })) }],
  }));
});

after(async () => {
  if (skip) return;
  if (agent) await agent.kill9().catch(() => undefined);
  if (configPath) await AgentProcess.once(configPath, ['--cleanup']).catch(() => undefined);
  await lab?.cleanup();
  state?.remove();
  await resetIpvs();
});

test('an apply through the CLI creates the IPVS service; ipvsadm shows it and HTTP is balanced', { skip }, async () => {
  agent = await AgentProcess.start(configPath, { timeoutMs: 300_000 });
  const status = JSON.parse((await cli('status', '-o', 'json')).stdout) as { dataplanes: Array<{ name: string; available: boolean }> };
  assert.equal(status.dataplanes.find((d) => d.name === 'ipvs')?.available, true, JSON.stringify(status.dataplanes));

  const r = await cli('apply', '-f', statePath);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /applied: revision 0 -> 1/);
  const t = await ipvsadm('-Ln');
  assert.match(t, new RegExp(`TCP  ${lab.vip4.replace(/\./g, '\\.')}:80 rr`));
  for (const b of lab.backends) assert.match(t, new RegExp(`-> ${b.v4.replace(/\./g, '\\.')}:80 +Masq +1 `));
  const names = await lab.get(`http://${lab.vip4}/`, 4);
  assert.equal(new Set(names).size, 2, `rr alternates: ${names.join(',')}`);
});

test('a PATCH through the REST API re-weights a backend in the kernel; a stale If-Match is refused', { skip }, async () => {
  const token = readFileSync(tokenFile, 'utf8').trim();
  const b = lab.backends[0]!;
  const url = `${agent!.server}/v1/services/web/backends/${b.v4}:80`;
  const res = await fetch(url, { method: 'PATCH', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'if-match': '"1"' }, body: JSON.stringify({ weight: 3 }) });
  assert.equal(res.status, 200, await res.clone().text());
  assert.equal(res.headers.get('etag'), '"2"');
  assert.match(await ipvsadm('-Ln'), new RegExp(`-> ${b.v4.replace(/\./g, '\\.')}:80 +Masq +3 `));
  const stale = await fetch(url, { method: 'PATCH', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'if-match': '"1"' }, body: JSON.stringify({ weight: 5 }) });
  assert.equal(stale.status, 412);
  assert.match(await ipvsadm('-Ln'), new RegExp(`-> ${b.v4.replace(/\./g, '\\.')}:80 +Masq +3 `));
});

test('kill -9 during a long transfer: nothing dropped, the restart loses nothing and plans no kernel step', { skip }, async () => {
  const before = await table();
  const services = (await cli('get', 'services', '-o', 'json')).stdout;
  const stream = await lab.startStream(`http://${lab.vip4}/stream?s=6`);
  assert.equal(await agent!.kill9(), null);
  agent = undefined;
  assert.equal(await table(), before, 'the kernel table stays while the agent is down');
  agent = await AgentProcess.start(configPath, { timeoutMs: 300_000 });
  const result = await stream.done;
  assert.deepEqual([result.ok, result.error, result.chunks], [true, '', 60], JSON.stringify(result));
  assert.equal(await table(), before);
  assert.equal((await cli('get', 'services', '-o', 'json')).stdout, services);
  const status = JSON.parse((await cli('status', '-o', 'json')).stdout) as { revision: number };
  assert.equal(status.revision, 2, 'both acknowledged changes survived');
  assert.deepEqual(agent.logs.filter((l) => /^(reconciled at start|repaired drift)/.test(String(l.msg))), [], 'nothing re-programmed');
});

test('an ipvsadm -D behind the agent\'s back is repaired by the reconcile loop and logged', { skip }, async () => {
  const before = await table();
  await ipvsadm('-D', '-t', `${lab.vip4}:80`);
  assert.doesNotMatch(await ipvsadm('-Ln'), /TCP/);
  let repaired = false;
  for (let i = 0; i < 40 && !repaired; i++) {
    await sleep(500);
    repaired = (await table()) === before;
  }
  assert.ok(repaired, `repaired within 20 s:\n${await ipvsadm('-Ln')}`);
  assert.ok(agent!.logs.some((l) => /^repaired drift: /.test(String(l.msg)) && l.component === 'ipvs' && l.service === 'web'), 'the repair is logged per service');
});

test('an owned destination deleted with ipvsadm -d is put back by the next reconcile', { skip }, async () => {
  const before = await table();
  const gone = `${lab.backends[0]!.v4}:80`;
  await ipvsadm('-d', '-t', `${lab.vip4}:80`, '-r', gone);
  assert.doesNotMatch(await ipvsadm('-Ln'), new RegExp(gone.replace(/\./g, '\\.')));
  const t0 = Date.now();
  let repaired = false;
  for (let i = 0; i < 40 && !repaired; i++) {
    await sleep(250);
    repaired = (await table()) === before;
  }
  assert.ok(repaired, `repaired within 10 s:\n${await ipvsadm('-Ln')}`);
  console.log(`# ipvsadm -d of an owned destination repaired after ${Date.now() - t0} ms (reconcileIntervalSeconds: 2)`);
});

test('SIGTERM leaves the table in place; --cleanup removes what Fulcrum owns', { skip }, async () => {
  const before = await table();
  assert.equal(await agent!.stop(), 0);
  agent = undefined;
  assert.equal(await table(), before);
  const names = await lab.get(`http://${lab.vip4}/`, 2);
  assert.equal(names.length, 2);
  const c = await AgentProcess.once(configPath, ['--cleanup']);
  assert.equal(c.code, 0, c.stderr);
  assert.doesNotMatch(await ipvsadm('-Ln'), /TCP/);
});
