import type { EventBus } from '../events.js';
import type { Logger } from '../log.js';
import type { Clock } from '../util/clock.js';
import { gratuitousArp, unsolicitedNa } from './announce.js';
import type { Instance } from './instance.js';
import type { VrrpHost } from './kernel.js';

/**
 * Moves an instance's virtual IPs with its state: added when master, announced by gratuitous
 * ARPs / unsolicited NAs (a burst, and a second one after garp.delay), removed otherwise.
 */
export class VipMover {
  constructor(
    private readonly host: () => VrrpHost,
    private readonly clock: Clock,
    private readonly events: EventBus,
  ) {}

  async add(inst: Instance, ilog?: Logger): Promise<void> {
    if (inst.machine?.state !== 'master' || !inst.link) return;
    const link = inst.link;
    for (const vip of inst.cfg.vips) {
      try {
        await this.host().addVip(link.index, vip);
      } catch (e) {
        ilog?.error({ err: e, vip: vip.address }, 'cannot add the virtual IP');
        this.events.publish({ type: 'vrrp-error', component: 'vrrp', message: `${inst.cfg.name}: cannot add ${vip.address}: ${(e as Error).message}`, data: { instance: inst.cfg.name } });
      }
    }
    this.announce(inst, ilog);
    const { delay } = inst.cfg.garp;
    if (delay > 0) inst.garpTimers.push(this.clock.setTimer(() => this.announce(inst, ilog), delay * 1000));
  }

  async remove(inst: Instance, ilog?: Logger): Promise<void> {
    if (inst.machine?.state === 'master' || !inst.link) return;
    for (const vip of inst.cfg.vips) {
      try {
        await this.host().delVip(inst.link.index, vip);
      } catch (e) {
        ilog?.error({ err: e, vip: vip.address }, 'cannot remove the virtual IP');
      }
    }
  }

  cancelAnnouncements(inst: Instance): void {
    for (const t of inst.garpTimers) this.clock.clearTimer(t);
    inst.garpTimers = [];
  }

  /**
   * After its priority-0 advert a stopping master keeps its VIPs until the backup that takes over
   * sends its first advert (it sends its gratuitous ARPs right after), or, with no backup, until a
   * backup's Master_Down_Interval would have run out. The RFC only says "transition to Initialize";
   * holding the addresses for that one Skew_Time turns a planned stop into a near-zero outage for
   * clients instead of a Skew_Time-long one.
   */
  handover(inst: Instance): Promise<void> {
    const limitMs = 4 * inst.cfg.advertInterval * 1000;
    return new Promise<void>((resolve) => {
      const timer = this.clock.setTimer(() => done(), limitMs);
      const done = () => {
        this.clock.clearTimer(timer);
        inst.handoverDone = undefined;
        resolve();
      };
      inst.handoverDone = done;
    });
  }

  /** One burst of gratuitous ARPs / unsolicited NAs for every VIP (garp.repeat, garp.intervalMs apart). */
  private announce(inst: Instance, ilog?: Logger): void {
    const { repeat, intervalMs } = inst.cfg.garp;
    const sendAll = () => {
      if (inst.machine?.state !== 'master' || !inst.link) return;
      for (const vip of inst.cfg.vips) {
        const frame = vip.family === 'inet' ? gratuitousArp(inst.link.mac, vip.address) : unsolicitedNa(inst.link.mac, vip.address);
        try {
          this.host().sendFrame(inst.link.index, frame);
        } catch (e) {
          ilog?.warn({ err: e, vip: vip.address }, 'cannot send gratuitous ARP / NA');
        }
      }
    };
    sendAll();
    for (let i = 1; i < repeat; i++) {
      if (intervalMs === 0) sendAll();
      else inst.garpTimers.push(this.clock.setTimer(sendAll, i * intervalMs));
    }
  }
}
