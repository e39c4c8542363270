import { Netns, run, uniqueName } from './netns.js';

/**
 * One L2 segment shared by several netns: a bridge in a 'switch' netns and a veth per host, its
 * inner end named eth0 with the given MAC and addresses. delete() removes every netns (and with
 * them the links).
 */
export class Lan {
  readonly hosts = new Map<string, Netns>();
  private constructor(readonly sw: Netns) {}

  static async create(): Promise<Lan> {
    const sw = await Netns.create('flsw');
    await sw.exec('ip', ['link', 'add', 'br0', 'type', 'bridge', 'forward_delay', '0', 'stp_state', '0', 'mcast_snooping', '0']);
    await sw.exec('ip', ['link', 'set', 'br0', 'up']);
    return new Lan(sw);
  }

  async addHost(label: string, mac: string, addrs: string[]): Promise<Netns> {
    const ns = await Netns.create('flh');
    const inner = uniqueName('vi'), outer = uniqueName('vo');
    await run('ip', ['link', 'add', inner, 'type', 'veth', 'peer', 'name', outer]);
    await run('ip', ['link', 'set', inner, 'netns', ns.name]);
    await run('ip', ['link', 'set', outer, 'netns', this.sw.name]);
    await ns.exec('ip', ['link', 'set', inner, 'name', 'eth0', 'address', mac]);
    for (const a of addrs) await ns.exec('ip', ['addr', 'add', a, 'dev', 'eth0', ...(a.includes(':') ? ['nodad'] : [])]);
    await ns.exec('ip', ['link', 'set', 'eth0', 'up']);
    await this.sw.exec('ip', ['link', 'set', outer, 'master', 'br0']);
    await this.sw.exec('ip', ['link', 'set', outer, 'up']);
    this.hosts.set(label, ns);
    return ns;
  }

  host(label: string): Netns {
    const h = this.hosts.get(label);
    if (!h) throw new Error(`no host ${label}`);
    return h;
  }

  async delete(): Promise<void> {
    for (const h of this.hosts.values()) await h.delete();
    await this.sw.delete();
  }
}
