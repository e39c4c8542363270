import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildAgent } from '../../src/agent/agent.js';
import { FileStateStore } from '../../src/agent/store.js';
import { EventBus } from '../../src/events.js';
import { silentLogger } from '../../src/log.js';
import { createMetricsRegistry } from '../../src/metrics.js';
import { AgentSettingsSchema } from '../../src/model/agent.js';
import { parseDesiredState } from '../../src/model/index.js';
import { FakeDataplane, fakeFactories } from '../helpers/fake-dataplane.js';
import { ManualClock } from '../helpers/agent-harness.js';

// A config file with services on a dataplane the node lacks (IPVS on a kernel without ip_vs)
// still starts the agent: the state is stored, those services are not programmed, the others are;
// a later API change to such a service is refused with FEATURE_MISSING.
test('a config seed with a service on a missing dataplane is stored, and the agent starts', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-seed-'));
  try {
    const xdp = new FakeDataplane('xdp');
    const seed = parseDesiredState({
      xdp: { interfaces: [{ name: 'eth0' }] },
      services: [
        { name: 'web', address: '192.0.2.10', port: 80, backends: [{ address: '10.0.1.1' }] },
        { name: 'fast', dataplane: 'xdp', address: '192.0.2.11', port: 80, backends: [{ address: '10.0.1.2' }] },
      ],
    });
    const agent = buildAgent({
      settings: AgentSettingsSchema.parse({ stateDir: dir }),
      factories: fakeFactories({ xdp }),
      store: new FileStateStore(dir),
      clock: new ManualClock(), logger: silentLogger(), metrics: createMetricsRegistry({ defaultMetrics: false }), events: new EventBus(),
      seed,
    });
    await agent.start();
    assert.equal(agent.ready, true);
    assert.equal(agent.revision, 1);
    assert.deepEqual(agent.state.services.map((s) => s.name), ['web', 'fast']);
    assert.deepEqual(agent.dataplaneInfo().map((d) => [d.name, d.available]), [['ipvs', false], ['xdp', true]]);
    assert.deepEqual([...xdp.kernel.keys()], ['fast'], 'only the xdp service is programmed');
    await assert.rejects(
      agent.change((cur) => ({ ...cur, services: cur.services.map((s) => (s.name === 'web' ? { ...s, port: 81 } : s)) }), { actor: 't', action: 't' }),
      (e: Error & { code?: string }) => e.code === 'FEATURE_MISSING' && /service web: the ipvs dataplane is not available/.test(e.message),
    );
    await agent.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
