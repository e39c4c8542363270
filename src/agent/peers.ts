import { errorFields } from '../errors.js';
import type { Logger } from '../log.js';
import type { DesiredState } from '../model/index.js';
import type { HealthPort, VrrpPort } from './ports.js';

/** VRRP applies in the background; its failures are logged and published by the manager. */
export function updateVrrp(vrrp: VrrpPort | undefined, state: DesiredState, log: Logger): void {
  if (!vrrp) return;
  try {
    void vrrp.update([...state.vrrp]);
  } catch (e) {
    log.error({ err: errorFields(e) }, 'vrrp instances not applied');
  }
}

/** Tells VRRP which services hold their health quorum (for tracked services). */
export function reportHealthToVrrp(health: HealthPort | undefined, vrrp: VrrpPort | undefined): void {
  if (!vrrp?.setServiceHealth || !health) return;
  const status = health.status() as Array<{ service: string; quorum: { held: boolean } | null; backends: Array<{ state: string }> }>;
  for (const s of status) vrrp.setServiceHealth(s.service, s.quorum ? s.quorum.held : s.backends.some((b) => b.state === 'up'));
}
