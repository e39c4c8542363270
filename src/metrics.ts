import { Registry, collectDefaultMetrics } from 'prom-client';

/**
 * One prom-client registry per agent (never the global one, so tests and several agents in one
 * process stay apart). Components take it in their options and register their own metrics,
 * all named `fulcrum_*`.
 */
export function createMetricsRegistry(options: { defaultMetrics?: boolean } = {}): Registry {
  const registry = new Registry();
  if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry, prefix: 'fulcrum_process_' });
  return registry;
}

export type { Registry };
