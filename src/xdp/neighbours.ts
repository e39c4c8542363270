import type { Family } from '../model/net.js';
import { Rtnetlink, udpSocket, type NeighbourState } from '../net/index.js';

/**
 * dr backends without a configured `mac` get the MAC the kernel's neighbour table holds for their
 * address ("learned"): the dataplane writes it into the backend slot, so the program can send to the
 * backend even when the FIB has no usable neighbour at that moment. Addresses the table does not
 * know (or knows only as failed/incomplete) are solicited: one UDP datagram to the discard port makes
 * the kernel resolve them (ARP / neighbour solicitation), and the next reconcile picks the MAC up.
 * Everything acts in the network namespace of the process, like the rest of the agent.
 */
export interface NeighbourTable {
  /** address -> MAC for every neighbour entry with a usable link-layer address. */
  macs(): Promise<Map<string, string>>;
  /** Asks the kernel to resolve `address` (best effort: errors are ignored). */
  solicit(address: string, family: Family): void;
  close(): void;
}

const DISCARD_PORT = 9;
/** incomplete/failed entries carry no address; noarp ones a meaningless one. */
const USABLE: readonly NeighbourState[] = ['reachable', 'stale', 'delay', 'probe', 'permanent'];
const NO_MAC = '00:00:00:00:00:00';

/** The neighbour table of this process's network namespace, over rtnetlink. */
export class KernelNeighbours implements NeighbourTable {
  #rt: Rtnetlink | undefined;

  async macs(): Promise<Map<string, string>> {
    this.#rt ??= Rtnetlink.open();
    const out = new Map<string, string>();
    for (const n of await this.#rt.neighbours()) {
      if (!USABLE.some((s) => n.states.has(s)) || !n.mac || n.mac === NO_MAC) continue;
      out.set(n.address, n.mac);
    }
    return out;
  }

  solicit(address: string, family: Family): void {
    const s = udpSocket(family);
    s.on('error', () => s.close());
    s.send(Buffer.alloc(0), DISCARD_PORT, address, () => s.close());
  }

  close(): void {
    this.#rt?.close();
    this.#rt = undefined;
  }
}

/**
 * What the dataplane knows: learned MACs by address. A MAC stays learned while its neighbour entry
 * is gone (a backend does not change its MAC because the kernel forgot it); a new one replaces it.
 */
export class NeighbourLearner {
  readonly #learned = new Map<string, string>();

  constructor(private readonly table: NeighbourTable) {}

  /** The MAC to use for a dr backend without a configured one, if known. */
  macOf(address: string): string | undefined {
    return this.#learned.get(address);
  }

  /**
   * Reads the neighbour table for `wanted` addresses; solicits those it does not hold usably.
   * Returns the addresses whose learned MAC is new or changed.
   */
  async refresh(wanted: ReadonlyArray<{ address: string; family: Family }>): Promise<Array<{ address: string; mac: string; previous: string | undefined }>> {
    if (wanted.length === 0) return [];
    const known = await this.table.macs();
    const changed: Array<{ address: string; mac: string; previous: string | undefined }> = [];
    for (const w of wanted) {
      const mac = known.get(w.address);
      if (!mac) {
        this.table.solicit(w.address, w.family);
        continue;
      }
      const previous = this.#learned.get(w.address);
      if (previous !== mac) {
        this.#learned.set(w.address, mac);
        changed.push({ address: w.address, mac, previous });
      }
    }
    return changed;
  }

  close(): void {
    this.table.close();
  }
}
