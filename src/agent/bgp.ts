import type { BgpInputs, BgpServiceInput } from '../bgp/controller.js';
import type { BgpSettings } from '../model/bgp.js';
import type { AgentContext } from './context.js';

/** The BGP controller (src/bgp BgpController), as the agent drives it. */
export interface BgpPort {
  start(inputs: BgpInputs): Promise<void>;
  /** Decide and apply again (after a reconcile or a change). */
  sync(): Promise<void>;
  setMaintenance(enabled: boolean): Promise<void>;
  /** A clean stop (withdraws unless keepOnRestart). */
  stop(): Promise<void>;
  status(): unknown;
}

interface HealthRow { service: string; quorum: { held: boolean } | null }

/**
 * What BGP needs of the agent, per service with an address: does it want to be announced, is it
 * in the kernel now (the dataplane's read-back, `stats()`), has it a healthy backend (its quorum
 * held and a backend left with weight > 0 once health is applied); and whether the node runs the
 * cluster's current revision (with agent.store kind etcd: its watch is connected).
 */
export function bgpInputs(ctx: AgentContext, settings: BgpSettings): BgpInputs {
  return async () => {
    const services = ctx.stored.state.services.filter((s) => s.address !== undefined);
    const programmed = new Set<string>();
    for (const dp of ctx.dataplanes.values()) for (const s of await dp.stats()) programmed.add(s.service);
    const health = ctx.deps.health;
    const rows = (health?.status() ?? []) as HealthRow[];
    const effective = health ? health.effectiveServices([...services]) : services;
    const caughtUp = !(ctx.deps.cluster?.stale ?? false);
    return { caughtUp, services: services.map((s): BgpServiceInput => {
      const quorum = rows.find((r) => r.service === s.name)?.quorum;
      const eff = effective.find((e) => e.name === s.name);
      const healthy = (quorum ? quorum.held : true) && !!eff && eff.backends.some((b) => b.weight > 0);
      return {
        name: s.name, address: s.address!, family: s.family,
        wanted: s.bgp?.announce ?? settings.announce === 'all',
        programmed: programmed.has(s.name),
        healthy,
        communities: s.bgp?.communities ?? [],
      };
    }) };
  };
}
