import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildAgent } from '../../src/agent/agent.js';
import type { BgpPort } from '../../src/agent/bgp.js';
import type { VrrpMaintenanceResult, VrrpPort } from '../../src/agent/ports.js';
import { FileStateStore } from '../../src/agent/store.js';
import { EventBus } from '../../src/events.js';
import { silentLogger } from '../../src/log.js';
import { createMetricsRegistry } from '../../src/metrics.js';
import { AgentSettingsSchema } from '../../src/model/agent.js';
import { FulcrumError } from '../../src/errors.js';
import { ManualClock } from '../helpers/agent-harness.js';
import { FakeDataplane, fakeFactories } from '../helpers/fake-dataplane.js';

/** The BGP port as the agent drives it, recording each call in order. */
class RecordingBgp implements BgpPort {
  readonly calls: string[] = [];
  async start(): Promise<void> { this.calls.push('start'); }
  async sync(): Promise<void> { this.calls.push('sync'); }
  async setMaintenance(enabled: boolean): Promise<void> { this.calls.push(`maintenance ${enabled}`); }
  async stop(): Promise<void> { this.calls.push('stop'); }
  status(): unknown { return {}; }
}

/** A VRRP port whose maintenance was restored from disk (or not), and that can refuse a change. */
function vrrpPort(inMaintenance: boolean, refuse = false): VrrpPort {
  return {
    inMaintenance,
    update: () => undefined,
    setMaintenance: (enabled): VrrpMaintenanceResult => {
      if (refuse) throw new FulcrumError('STORE_ERROR', 'cannot write the maintenance record');
      return { changed: enabled !== inMaintenance, instances: [] };
    },
    status: () => [],
    close: () => undefined,
  };
}

async function withAgent(vrrp: VrrpPort, fn: (agent: ReturnType<typeof buildAgent>, bgp: RecordingBgp) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-agent-bgp-'));
  const bgp = new RecordingBgp();
  const settings = AgentSettingsSchema.parse({
    stateDir: dir, bgp: { asn: 65001, routerId: '10.71.1.2', neighbours: [{ address: '10.71.1.1', asn: 65000 }], includeFile: join(dir, 'fulcrum.conf') },
  });
  const agent = buildAgent({
    settings, factories: fakeFactories({ ipvs: new FakeDataplane('ipvs') }), store: new FileStateStore(dir), clock: new ManualClock(),
    logger: silentLogger(), metrics: createMetricsRegistry({ defaultMetrics: false }), events: new EventBus(), vrrp, bgp,
  });
  try {
    await agent.start();
    await fn(agent, bgp);
  } finally {
    await agent.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

test('a node restarted in maintenance starts BGP in maintenance: nothing is announced before it ends', () =>
  withAgent(vrrpPort(true), async (_agent, bgp) => {
    // (A sync before start is a no-op in the controller: it has no inputs yet.)
    assert.deepEqual(bgp.calls.filter((c) => c !== 'sync').slice(0, 2), ['maintenance true', 'start']);
  }));

test('a node not in maintenance starts BGP as it is', () =>
  withAgent(vrrpPort(false), async (_agent, bgp) => {
    assert.equal(bgp.calls.filter((c) => c !== 'sync')[0], 'start');
    assert.ok(!bgp.calls.includes('maintenance true'));
  }));

test('maintenance through the API reaches BGP only once VRRP took it; a refused change leaves BGP as it was; a dry run touches neither', async () => {
  await withAgent(vrrpPort(false), async (agent, bgp) => {
    agent.setVrrpMaintenance(true, { dryRun: true });
    assert.ok(!bgp.calls.includes('maintenance true'), 'dry run');
    agent.setVrrpMaintenance(true);
    assert.ok(bgp.calls.includes('maintenance true'));
  });
  await withAgent(vrrpPort(false, true), async (agent, bgp) => {
    assert.throws(() => agent.setVrrpMaintenance(true), /cannot write the maintenance record/);
    assert.ok(!bgp.calls.includes('maintenance true'), 'BGP kept announcing: nothing half-applied');
  });
});
