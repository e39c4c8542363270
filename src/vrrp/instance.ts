import type { VrrpInstance } from '../model/vrrp.js';
import type { TimerHandle } from '../util/clock.js';
import type { LinkInfo } from './kernel.js';
import type { ReceiveCheckConfig, VrrpMachine, VrrpState } from './machine.js';
import type { TrackScripts } from './track-scripts.js';

export interface LastTransition {
  from: VrrpState;
  to: VrrpState;
  reason: string;
  time: string;
}

/** The running state of one configured instance, shared by the manager's parts. */
export interface Instance {
  readonly cfg: VrrpInstance;
  /** The spec as text: an instance whose key changes is restarted. */
  readonly key: string;
  /** undefined until started (its interface and a source address exist). */
  machine: VrrpMachine | undefined;
  link: LinkInfo | undefined;
  /** What received adverts are checked against (set when started). */
  receiveCheck: ReceiveCheckConfig | undefined;
  scripts: TrackScripts | undefined;
  ownFault: string | undefined;
  /** Set while another member of its sync group is in fault. */
  groupFault: string | undefined;
  /** Serializes VIP changes of this instance. */
  queue: Promise<void>;
  garpTimers: TimerHandle[];
  stopped: boolean;
  /** Set while a stopping master waits for its successor's first advert (see VipMover.handover()). */
  handoverDone: (() => void) | undefined;
  /** Stop without waiting for a successor (the link it served is gone). */
  skipHandover: boolean;
  lastTransition: LastTransition | undefined;
}

export function newInstance(cfg: VrrpInstance): Instance {
  return {
    cfg, key: JSON.stringify(cfg), machine: undefined, link: undefined, receiveCheck: undefined, scripts: undefined,
    ownFault: undefined, groupFault: undefined, queue: Promise.resolve(), garpTimers: [], stopped: false,
    handoverDone: undefined, skipHandover: false, lastTransition: undefined,
  };
}
