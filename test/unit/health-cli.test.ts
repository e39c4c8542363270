import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatHealth } from '../../src/cli/commands/health.js';
import { HealthManager, type Checker } from '../../src/health/index.js';
import { EventBus } from '../../src/events.js';
import { createMetricsRegistry } from '../../src/metrics.js';
import { silentLogger } from '../../src/log.js';
import { parseDesiredState } from '../../src/model/index.js';
import { ManualClock } from '../helpers/fake-clock.js';

test('fulcrum health: one row per backend with state, since and the last reason; quorum lines', async () => {
  const clock = new ManualClock();
  const refused: Checker = { kind: 'tcp', check: async (t) => (t.port === 80 ? { up: true, reason: 'connected', code: 'ok' } : { up: false, reason: 'connect ECONNREFUSED', code: 'ECONNREFUSED' }) };
  const mgr = new HealthManager({ logger: silentLogger(), clock, events: new EventBus(), metrics: createMetricsRegistry({ defaultMetrics: false }), random: () => 0.5, checkers: { tcp: () => refused } });
  const { services } = parseDesiredState({ services: [{
    name: 'web', address: '10.0.0.1', port: 80,
    backends: [{ address: '10.0.1.1' }, { address: '10.0.1.2', port: 81 }],
    health: { check: { kind: 'tcp' }, interval: 1, timeout: 0.5, rise: 1, fall: 1, quorum: { min: 2 }, sorryServer: { address: '10.0.9.9' } },
  }] });
  mgr.update(services);
  assert.match(formatHealth(mgr.status()), /web +10\.0\.1\.1:80 +tcp +down \(warming up\) +2026-01-01T00:00:00\.000Z +-/);
  await clock.advance(1000);
  const text = formatHealth(mgr.status());
  assert.match(text, /^SERVICE +BACKEND +CHECK +STATE +SINCE +LAST RESULT\n/);
  assert.match(text, /web +10\.0\.1\.1:80 +tcp +up +2026-01-01T00:00:00\.500Z +connected \(0\.0 ms\)\n/);
  assert.match(text, /web +10\.0\.1\.2:81 +tcp +down +2026-01-01T00:00:00\.000Z +connect ECONNREFUSED/);
  assert.match(text, /web: QUORUM LOST \(healthy weight 1, min 2\): the sorry server serves\n$/);
  assert.equal(formatHealth([]), 'no service has health checks\n');
  mgr.close();
});
