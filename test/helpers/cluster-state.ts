// Desired states for the cluster tests and bench: state k carries k in a port, so a watcher's
// deliveries can be checked against the writes (every k once, in order) without trusting revisions.
import { parseDesiredState, type DesiredState } from '../../src/model/index.js';

export function counterState(k: number, services = 1): DesiredState {
  return parseDesiredState({
    services: Array.from({ length: services }, (_, i) => ({
      name: `svc-${i}`, protocol: 'tcp', address: `10.${(i >> 8) & 255}.${i & 255}.1`, port: 1 + (k % 60000), dataplane: 'xdp',
      backends: [{ address: '10.200.0.1' }, { address: '10.200.0.2', weight: 2 }],
      ...(i % 2 === 0 ? { health: { check: { kind: 'tcp' }, interval: 2 } } : {}),
    })),
  });
}

export function counterOf(state: DesiredState): number {
  return (state.services[0]?.port ?? 0) - 1;
}
