import { Counter, Gauge, type Registry } from 'prom-client';
import type { VrrpState } from './machine.js';

export const STATE_VALUE: Record<VrrpState, number> = { init: 0, backup: 1, master: 2, fault: 3 };

/** The VRRP metrics, registered once per manager. */
export class VrrpMetrics {
  readonly state: Gauge<'instance'>;
  readonly transitions: Counter<'instance' | 'to'>;
  readonly sent: Counter<'instance'>;
  readonly received: Counter<'instance'>;
  readonly drops: Counter<'interface' | 'reason'>;
  readonly splitBrain: Counter<'instance'>;

  constructor(registry: Registry) {
    const registers = [registry];
    this.state = new Gauge({ name: 'fulcrum_vrrp_state', help: 'VRRP instance state: 0 init, 1 backup, 2 master, 3 fault', labelNames: ['instance'], registers });
    this.transitions = new Counter({ name: 'fulcrum_vrrp_transitions_total', help: 'VRRP state transitions by target state', labelNames: ['instance', 'to'], registers });
    this.sent = new Counter({ name: 'fulcrum_vrrp_adverts_sent_total', help: 'VRRP advertisements sent', labelNames: ['instance'], registers });
    this.received = new Counter({ name: 'fulcrum_vrrp_adverts_received_total', help: 'VRRP advertisements accepted', labelNames: ['instance'], registers });
    this.drops = new Counter({ name: 'fulcrum_vrrp_drops_total', help: 'VRRP packets dropped, by reason', labelNames: ['interface', 'reason'], registers });
    this.splitBrain = new Counter({ name: 'fulcrum_vrrp_split_brain_total', help: 'Adverts from another master while master', labelNames: ['instance'], registers });
  }
}
