import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { netnsSkipReason } from '../helpers/netns.js';
import { Lan } from '../helpers/lan.js';
import { holdsVip, keepalivedSkipReason, plug, startKeepalived, unplug, waitFor, type Router, type RouterSpec } from '../helpers/vrrp-peers.js';
import { VrrpAgent } from '../helpers/vrrp-agent.js';
import { timers } from '../../src/vrrp/machine.js';

/**
 * VRRP interop through the real `fulcrum agent` process (its own state dir, API on a free port of
 * its netns) on node A and keepalived on node B, one bridge between them, for VRRPv3 and VRRPv2.
 * Per version: the agent preempts keepalived; the agent stops (SIGTERM) and keepalived takes over;
 * the agent comes back and preempts again; A dies (unplugged, SIGKILL) and keepalived takes over
 * within Master_Down_Interval; the agent restarts while A is still unplugged (FAULT, the dead
 * process's VIP removed), is lowered through the API, follows keepalived as backup once plugged,
 * and takes over when B dies. Each step is read back with `ip addr` in both netns, GET /v1/status, `fulcrum status` and
 * the vrrp-transition events of GET /v1/events.
 */

const skip = netnsSkipReason() ?? keepalivedSkipReason();
const VIP = '10.78.0.100';
const ADDR = { a: '10.78.0.1', b: '10.78.0.2' };

/** Slack for process scheduling, netlink and 20 ms polling on a shared 2-core machine (as vrrp-interop.test.ts). */
const SLACK_MS = 500;

function masterDownMs(spec: RouterSpec): number {
  return timers(spec.version, spec.priority, Math.round(spec.advertInterval * 100)).masterDownMs;
}

interface Scene {
  lan: Lan;
  agent: VrrpAgent;
  keepalived: Router[];
}

async function scene(t: TestContext, spec: RouterSpec): Promise<Scene> {
  const lan = await Lan.create();
  const s: Scene = { lan, agent: undefined as unknown as VrrpAgent, keepalived: [] };
  t.after(async () => {
    await s.agent?.dispose();
    for (const k of s.keepalived) await k.kill().catch(() => undefined);
    await lan.delete();
  });
  await lan.addHost('a', '02:00:5e:78:00:01', [`${ADDR.a}/24`]);
  await lan.addHost('b', '02:00:5e:78:00:02', [`${ADDR.b}/24`]);
  s.agent = new VrrpAgent(lan.host('a'), spec);
  return s;
}

const holds = (s: Scene, label: 'a' | 'b') => holdsVip(s.lan.host(label), VIP);

/** Waits until only `label` holds the VIP; returns the ms from `since`. */
async function onlyHolder(s: Scene, label: 'a' | 'b', since: number, timeoutMs: number): Promise<number> {
  const other = label === 'a' ? 'b' : 'a';
  await waitFor(`${label} alone to hold ${VIP}`, async () => (await holds(s, label)) && !(await holds(s, other)), timeoutMs);
  return Date.now() - since;
}

/** `fulcrum status` (table) has the instance's row in this state with this master. */
async function cliShows(s: Scene, state: string, master: string): Promise<void> {
  const r = await s.agent.cli(['status']);
  assert.equal(r.code, 0, r.stderr);
  const row = r.stdout.split('\n').find((l) => l.startsWith('vi1 '));
  assert.ok(row, `a VRRP row in:\n${r.stdout}`);
  assert.match(row, new RegExp(`^vi1\\s+eth0\\s+\\d+\\s+${state}\\s+.*\\s${master.replaceAll('.', '\\.')}\\s+${VIP.replaceAll('.', '\\.')}/32\\s`), row);
}

for (const version of [3, 2] as const) {
  test(`agent VRRPv${version} with keepalived: preemption, stop, node death and restart both ways, read back by ip addr, status, CLI and events`, { skip }, async (t) => {
    const spec: RouterSpec = version === 3
      ? { version, vrid: 61, priority: 200, advertInterval: 0.2, vips: [VIP] }
      : { version, vrid: 62, priority: 200, advertInterval: 1, vips: [VIP], password: 'secret12' };
    const kaSpec: RouterSpec = { ...spec, priority: 100 };
    const s = await scene(t, spec);
    const a = s.agent;

    // keepalived alone becomes master; the agent (200) joins and preempts it.
    s.keepalived.push(startKeepalived(s.lan.host('b'), kaSpec));
    await onlyHolder(s, 'b', Date.now(), 10_000);
    await a.start();
    const events = a.events();
    await onlyHolder(s, 'a', Date.now(), 10_000);
    await waitFor('keepalived to yield to priority 200', () => /higher priority 200/.test(s.keepalived[0]!.output()), 5000);
    let v = await a.vrrp();
    assert.deepEqual(
      { state: v.state, priority: v.priority, configuredPriority: v.configuredPriority, masterAddress: v.masterAddress, vips: v.vips, fault: v.fault, version: v.version, vrid: v.vrid },
      { state: 'master', priority: 200, configuredPriority: 200, masterAddress: ADDR.a, vips: [`${VIP}/32`], fault: undefined, version, vrid: spec.vrid },
    );
    assert.deepEqual({ from: v.lastTransition?.from, to: v.lastTransition?.to, reason: v.lastTransition?.reason }, { from: 'backup', to: 'master', reason: 'master down timer expired' });
    assert.ok(Math.abs(Date.parse(v.lastTransition!.time) - Date.now()) < 60_000, `lastTransition.time ${v.lastTransition!.time}`);
    await cliShows(s, 'master', ADDR.a);
    await waitFor('the start-up transitions on the event stream', () => events.transitions().join(',') === 'init->backup,backup->master', 5000);
    const toMaster = events.events.find((e) => e.type === 'vrrp-transition' && (e.data as { to: string }).to === 'master')!;
    assert.equal(toMaster.component, 'vrrp');
    assert.deepEqual(toMaster.data, { instance: 'vi1', vrid: spec.vrid, interface: 'eth0', from: 'backup', to: 'master', reason: 'master down timer expired', priority: 200, master: ADDR.a });

    // Planned stop: priority 0, keepalived takes over after its Skew_Time; the agent leaves no VIP.
    let t0 = Date.now();
    assert.equal(await a.stop(), 0);
    const stopTook = await onlyHolder(s, 'b', t0, 10_000);
    t.diagnostic(`v${version} agent SIGTERM -> keepalived master in ${stopTook} ms (Skew_Time ${timers(version, 100, spec.advertInterval * 100).skewMs.toFixed(0)} ms)`);
    assert.ok(stopTook <= masterDownMs(kaSpec) + SLACK_MS, `keepalived took ${stopTook} ms after the agent's stop`);
    // VRRP stops before the API closes: the shutdown transition reaches the event stream and the log.
    assert.ok(a.process!.logs.some((l) => l.msg === 'VRRP vi1: master -> init' && l.reason === 'shutdown'), 'the agent logged its shutdown');
    assert.equal(events.transitions().join(','), 'init->backup,backup->master,master->init');

    // The agent comes back with the same config: the stored state loads, it preempts again.
    await a.start();
    assert.ok(a.process!.logs.some((l) => l.msg === 'loaded the stored desired state' && l.revision === 1));
    await onlyHolder(s, 'a', Date.now(), 10_000);
    assert.equal((await a.status()).revision, 1);

    // Node A dies: off the segment, the agent SIGKILLed (its VIP stays on the down interface).
    t0 = Date.now();
    await unplug(s.lan.host('a'));
    await a.kill9();
    await waitFor('keepalived to take over', () => holds(s, 'b'), 10_000);
    const crashTook = Date.now() - t0;
    t.diagnostic(`v${version} node A dies -> keepalived master in ${crashTook} ms (bound ${masterDownMs(kaSpec).toFixed(0)} ms + ${SLACK_MS} ms slack)`);
    assert.ok(crashTook <= masterDownMs(kaSpec) + SLACK_MS, `keepalived took ${crashTook} ms after A died`);
    assert.equal(await holds(s, 'a'), true, 'the dead agent\'s VIP is still on A\'s (down) interface');

    // The agent restarts while A is still unplugged: FAULT, and as a starting instance that is not
    // master it removes the dead process's VIP.
    await a.start();
    const events2 = a.events();
    await waitFor('the agent in fault with its link down', async () => (await a.vrrp()).state === 'fault', 5000);
    v = await a.vrrp();
    assert.match(v.fault ?? '', /interface eth0 is down/);
    await waitFor('the dead process\'s VIP to be removed', async () => !(await holds(s, 'a')), 5000);
    assert.equal((await a.status()).revision, 1);
    // Lowered to 50 through the API (fulcrum apply) while still in fault.
    const lowSpec = { ...spec, priority: 50 };
    a.configure(lowSpec);
    const applied = await a.cli(['apply', '-f', a.configPath]);
    assert.equal(applied.code, 0, applied.stderr);
    assert.match(applied.stdout, /applied: revision 1 -> 2/);
    await waitFor('the lowered instance', async () => (await a.vrrp()).configuredPriority === 50, 5000);
    // Plugged back: it follows keepalived as backup and leaves the VIP to it.
    await plug(s.lan.host('a'));
    await waitFor('the agent to follow keepalived', async () => {
      const x = await a.vrrp();
      return x.state === 'backup' && x.masterAddress === ADDR.b;
    }, 10_000);
    v = await a.vrrp();
    assert.equal(v.priority, 50);
    assert.equal(v.configuredPriority, 50);
    assert.deepEqual({ from: v.lastTransition?.from, to: v.lastTransition?.to }, { from: 'fault', to: 'backup' });
    await cliShows(s, 'backup', ADDR.b);
    await onlyHolder(s, 'b', Date.now(), 1000);

    // Node B dies: the agent takes over within its Master_Down_Interval.
    t0 = Date.now();
    await unplug(s.lan.host('b'));
    await s.keepalived[0]!.kill();
    // (keepalived may or may not see its link go down before the SIGKILL: B's VIP may stay on its
    // down interface, off the segment.)
    await waitFor('the agent to take over', () => holds(s, 'a'), 10_000);
    const upTook = Date.now() - t0;
    t.diagnostic(`v${version} node B dies -> agent master in ${upTook} ms (bound ${masterDownMs(lowSpec).toFixed(0)} ms + ${SLACK_MS} ms slack)`);
    assert.ok(upTook <= masterDownMs(lowSpec) + SLACK_MS, `the agent took ${upTook} ms after B died`);
    await waitFor('status master', async () => (await a.vrrp()).state === 'master', 3000);
    v = await a.vrrp();
    assert.equal(v.masterAddress, ADDR.a);
    assert.deepEqual({ from: v.lastTransition?.from, to: v.lastTransition?.to, reason: v.lastTransition?.reason }, { from: 'backup', to: 'master', reason: 'master down timer expired' });
    await cliShows(s, 'master', ADDR.a);
    await waitFor('the takeover on the event stream', () => events2.transitions().at(-1) === 'backup->master', 5000).catch(() => undefined);
    // The restarted instance (200) in fault, stopped by the apply; the lowered one (50) recovers.
    assert.deepEqual(events2.transitions(), ['init->fault', 'fault->init', 'init->fault', 'fault->backup', 'backup->master']);
    const priorities = events2.events.filter((e) => e.type === 'vrrp-transition').map((e) => (e.data as { priority: number }).priority);
    assert.deepEqual(priorities, [200, 200, 50, 50, 50]);
  });
}
