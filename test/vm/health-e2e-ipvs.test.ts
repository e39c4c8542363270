import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { stringify } from 'yaml';
import { ipvsSkipReason, ipvsadm, resetIpvs } from '../helpers/ipvs-vm.js';
import { IpvsLab } from '../helpers/ipvs-lab.js';
import { tempDir } from '../helpers/ipvs-fulcrum.js';
import { captureSyns, kill, startAgent, startClient, startServer, type LogLine, type Lines } from '../helpers/health-e2e.js';

/**
 * End to end on the IPVS dataplane (inside the VM): `fulcrum agent` runs HTTP health checks on two
 * NAT backends while a client keeps sending requests to the VIP. One backend's server is killed:
 * the agent must set its IPVS weight to 0 (read back with ipvsadm) after `fall` failed checks, and
 * no new client connection may reach it from then on (tcpdump in its netns); restarted, it gets no
 * client connection before `rise` checks passed, then its weight and its share come back.
 */

const skip = ipvsSkipReason() ?? undefined;
// TCG runs about 10x slower than the host: wider intervals than the XDP test.
const INTERVAL = 1, TIMEOUT = 0.8, RISE = 2, FALL = 3, JITTER = 0.1;

let lab: IpvsLab;
let state: ReturnType<typeof tempDir>;
let agent: { proc: ChildProcess; logs: Lines<LogLine> } | undefined;
const procs: ChildProcess[] = [];

before(async () => {
  if (skip) return;
  await resetIpvs();
  lab = await IpvsLab.create('nat', 2);
  state = tempDir();
  const config = join(state.dir, 'fulcrum.yaml');
  writeFileSync(config, stringify({
    agent: { stateDir: join(state.dir, 'state'), api: { host: '127.0.0.1', port: 0 }, reconcileIntervalSeconds: 300 },
    services: [{
      name: 'web', address: lab.vip4, port: 80, scheduler: 'rr',
      backends: lab.backends.map((b) => ({ address: b.v4 })),
      health: { check: { kind: 'http', path: '/' }, interval: INTERVAL, timeout: TIMEOUT, jitter: JITTER, rise: RISE, fall: FALL },
    }],
  }));
  agent = startAgent(undefined, config);
  procs.push(agent.proc);
  await agent.logs.waitFor('agent started', (l) => l.msg === 'agent started', 120_000);
});

after(async () => {
  if (skip) return;
  if (agent) await new Promise<void>((r) => { if (agent!.proc.exitCode !== null) r(); else { agent!.proc.once('exit', () => r()); agent!.proc.kill('SIGTERM'); setTimeout(r, 10_000).unref(); } });
  for (const p of procs) await kill(p);
  await lab?.cleanup();
  state?.remove();
  await resetIpvs();
});

/** The weight ipvsadm reports for `rs` (address:port) under the VIP. */
async function weightOf(rs: string): Promise<number | undefined> {
  const out = await ipvsadm('-Ln', '-t', `${lab.vip4}:80`);
  const m = out.match(new RegExp(`-> ${rs.replace(/\./g, '\\.')}\\s+\\S+\\s+(\\d+)`));
  return m ? Number(m[1]) : undefined;
}

test('ipvs: a killed backend goes to weight 0 after fall checks, gets no new client connection, and returns after rise', { skip }, async () => {
  const logs = agent!.logs;
  const [b1, b2] = lab.backends as [typeof lab.backends[0], typeof lab.backends[0]];
  const rs2 = `${b2.v4}:80`;
  await logs.waitFor('backend1 up', (l) => l.msg.startsWith(`backend ${b1.v4}:80 up`), 60_000);
  await logs.waitFor('backend2 up', (l) => l.msg.startsWith(`backend ${rs2} up`), 60_000);
  await logs.waitFor('backend2 applied', (l) => l.msg.startsWith('applied a health change') && l.msg.includes(rs2), 30_000);
  assert.equal(await weightOf(rs2), 1, 'ipvsadm: backend2 in with its weight after warm-up');

  const clientAddr = `10.${lab.vip4.split('.')[1]}.1.10`;
  const syns = await captureSyns(b2.ns, 'eth0', clientAddr, 80);
  procs.push(syns.proc);
  const c = startClient(lab.client, lab.vip4, 80, 90_000, 100);
  procs.push(c.proc);
  await c.results.waitFor('backend2 serving', (r) => r.id === 'backend2', 60_000);
  await c.results.waitFor('backend1 serving', (r) => r.id === 'backend1', 60_000);

  const killedAt = Date.now();
  await kill(b2.server);
  const down = await logs.waitFor('backend2 down', (l) => l.time >= killedAt && l.msg.startsWith(`backend ${rs2} down`), 60_000);
  const applied = await logs.waitFor('backend2 weight 0', (l) => l.time >= down.time && l.msg.startsWith('applied a health change') && l.msg.includes(rs2), 60_000);
  assert.equal(down.failures, FALL, 'taken out after exactly fall failed checks');
  assert.ok(syns.times.some((t) => t < killedAt), 'the capture saw client SYNs reach backend2 while it served');
  assert.equal(await weightOf(rs2), 0, 'ipvsadm: inhibited (weight 0), not removed');

  await new Promise((r) => setTimeout(r, 4000));
  const settle = 100;
  assert.deepEqual(syns.times.filter((t) => t > applied.time + settle), [], 'no client SYN reached backend2 after weight 0');
  const later = c.results.items.filter((r) => r.t > applied.time + settle && r.t < Date.now() - 3000);
  assert.ok(later.length > 5, `requests after the take-out: ${later.length}`);
  assert.deepEqual([...new Set(later.map((r) => r.id ?? `error:${r.error}`))], ['backend1'], 'all answered by backend1');
  const failedWhileDetecting = c.results.items.filter((r) => r.t >= killedAt && r.t <= applied.time && r.error).length;

  const restartedAt = Date.now();
  procs.push(await startServer(b2.ns, 'backend2', 80, 60_000));
  const up = await logs.waitFor('backend2 up again', (l) => l.time >= restartedAt && l.msg.startsWith(`backend ${rs2} up`), 60_000);
  const back = await logs.waitFor('backend2 weight back', (l) => l.time >= up.time && l.msg.startsWith('applied a health change') && l.msg.includes(rs2), 60_000);
  assert.equal(up.successes, RISE, 'back after exactly rise passed checks');
  assert.deepEqual(syns.times.filter((t) => t > applied.time + settle && t < up.time), [], 'no client connection before rise checks passed');
  assert.equal(await weightOf(rs2), 1, 'ipvsadm: configured weight again');
  await c.results.waitFor('backend2 serving again', (r) => r.t > back.time && r.id === 'backend2', 60_000);
  console.log(`# ipvs (TCG VM): detection (kill -> weight 0) ${applied.time - killedAt} ms, bound fall x interval + timeout = ${(FALL * INTERVAL + TIMEOUT) * 1000} ms ` +
    `(+ up to ${Math.round(FALL * JITTER * 1000)} ms jitter); ${failedWhileDetecting} client requests failed meanwhile; return after restart ${back.time - restartedAt} ms`);
  await kill(c.proc);
});
