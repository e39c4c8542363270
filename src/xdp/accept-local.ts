import { readSysctl, writeSysctl } from '../net/sysctl.js';

/**
 * A nat reply the program cannot send yet (no neighbour entry for the client, as on a node that
 * has just taken the VIPs over from its VRRP peer) goes to the kernel already rewritten, with the
 * VIP as its source. Where the node holds that VIP as an address (VRRP adds it), IPv4 drops the
 * packet as a martian source, so the neighbour is never resolved and the flow hangs; with
 * accept_local on the interface it arrived on, the kernel forwards it (resolving the neighbour)
 * and the next packets stay in XDP. Strict rp_filter (1) on that interface still drops them;
 * loose (2) or off (0) do not.
 *
 * Sets accept_local on each interface (in this process's netns); returns those it changed and
 * those it could not change (no IPv4 configuration, or not writable).
 */
export function acceptLocalSources(ifnames: readonly string[]): { changed: string[]; failed: Array<{ name: string; error: string }> } {
  const changed: string[] = [], failed: Array<{ name: string; error: string }> = [];
  for (const name of ifnames) {
    const key = ['net', 'ipv4', 'conf', name, 'accept_local'];
    try {
      if (readSysctl(key) === '1') continue;
      writeSysctl(key, '1');
      changed.push(name);
    } catch (e) {
      failed.push({ name, error: (e as Error).message });
    }
  }
  return { changed, failed };
}
