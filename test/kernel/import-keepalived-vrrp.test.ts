import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { netnsSkipReason } from '../helpers/netns.js';
import { Lan } from '../helpers/lan.js';
import { holdsVip, keepalivedConf, keepalivedSkipReason, startKeepalived, waitFor, type Router, type RouterSpec } from '../helpers/vrrp-peers.js';
import { VrrpAgent } from '../helpers/vrrp-agent.js';
import { importKeepalived } from '../../src/import/keepalived/index.js';

/**
 * `fulcrum import keepalived` on a VRRP pair: node A's keepalived.conf is imported and run by the
 * real agent, node B keeps running keepalived; the two form one virtual router and the VIP moves
 * both ways (the agent preempts with its higher priority, keepalived takes over when the agent
 * stops, the agent takes it back when it returns). VRRPv2 with a password and VRRPv3.
 */

const skip = netnsSkipReason() ?? keepalivedSkipReason();
const VIP = '10.79.0.100';

async function pair(t: TestContext): Promise<{ lan: Lan; keepalived: Router[]; agent?: VrrpAgent }> {
  const lan = await Lan.create();
  const s: { lan: Lan; keepalived: Router[]; agent?: VrrpAgent } = { lan, keepalived: [] };
  t.after(async () => {
    await s.agent?.dispose();
    for (const k of s.keepalived) await k.kill().catch(() => undefined);
    await lan.delete();
  });
  await lan.addHost('a', '02:00:5e:79:00:01', ['10.79.0.1/24']);
  await lan.addHost('b', '02:00:5e:79:00:02', ['10.79.0.2/24']);
  return s;
}

for (const version of [2, 3] as const) {
  test(`VRRPv${version}: the imported keepalived.conf and keepalived form a pair; the VIP moves both ways`, { skip }, async (t) => {
    const spec: RouterSpec = version === 2
      ? { version, vrid: 71, priority: 200, advertInterval: 1, vips: [VIP], password: 'pairpw' }
      : { version, vrid: 72, priority: 200, advertInterval: 0.2, vips: [VIP] };
    const s = await pair(t);
    const holds = (label: 'a' | 'b') => holdsVip(s.lan.host(label), VIP);
    const only = (label: 'a' | 'b') => waitFor(`${label} alone to hold ${VIP}`, async () => (await holds(label)) && !(await holds(label === 'a' ? 'b' : 'a')), 15_000);

    // Node A's keepalived.conf, imported.
    const agent = new VrrpAgent(s.lan.host('a'), spec);
    s.agent = agent;
    const conf = join(agent.dir, 'keepalived.conf');
    writeFileSync(conf, keepalivedConf(spec));
    const imp = importKeepalived(conf);
    assert.equal(imp.config.vrrp.length, 1);
    assert.deepEqual(imp.report.filter((l) => l.kind === 'not translated').map((l) => l.message), ['global_defs router_id: not in the model (a keepalived process setting)']);
    assert.deepEqual(imp.config.vrrp[0]?.garp, { delay: 5, repeat: 5 }); // global_defs vrrp_garp_*
    writeFileSync(agent.configPath, JSON.stringify({ agent: { stateDir: agent.stateDir, api: { port: 0 } }, ...imp.config }, null, 2));

    // keepalived on B alone is master; the agent joins with priority 200 and preempts it.
    s.keepalived.push(startKeepalived(s.lan.host('b'), { ...spec, priority: 100 }));
    await only('b');
    await agent.start();
    await only('a');
    const v = await agent.vrrp();
    assert.equal(v.state, 'master');
    assert.equal(v.version, version);

    // The agent stops: keepalived takes the VIP; it comes back: it takes the VIP back.
    assert.equal(await agent.stop(), 0);
    await only('b');
    await agent.start();
    await only('a');
  });
}
