import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Netns, run } from './netns.js';
import { Lan } from './lan.js';
import { testDirs, PASS_OBJECT } from './xdp.js';
import { AgentProcess } from './agent-process.js';
import { plug } from './lb-pair.js';

/**
 * The host-kernel lab of the XDP + VRRP pair tests, with `net` choosing its subnets (so that two
 * such tests never share an address or a MAC):
 *
 *   client 10.<net>.0.10 --[front bridge]-- lb-a eth0 .2 / lb-b eth0 .3
 *   lb-a eth1 10.<net+10>.0.2 / lb-b eth1 .3 --[back bridge]-- backends (default route via `gateway`)
 *
 * Native XDP on veth needs an XDP program on the peer too: plug() gives the LB ports one. Each
 * backend holds `drVip` on lo (arp_ignore/announce set) so that dr replies leave from it. The tests
 * start their own servers and agents; delete() removes everything.
 */
export interface XdpPairNode {
  label: 'a' | 'b';
  ns: Netns;
  priority: number;
  front: { mac: string; address: string };
  back: { mac: string; address: string };
  dirs: { pinDir: string; stateDir: string };
  /** The agent's config file (the test writes it). */
  config: string;
  tokenFile: string;
  agent?: AgentProcess | undefined;
}

export interface XdpPairLab {
  front: Lan;
  back: Lan;
  client: Netns;
  nodes: [XdpPairNode, XdpPairNode];
  backends: Netns[];
  delete(): Promise<void>;
}

export async function createXdpPairLab(opts: { prefix: string; net: number; backends: readonly string[]; gateway: string; drVip: string }): Promise<XdpPairLab> {
  if (!existsSync(PASS_OBJECT)) throw new Error(`${PASS_OBJECT} is not built`);
  const hex = (n: number) => n.toString(16).padStart(2, '0');
  const fnet = opts.net, bnet = opts.net + 10;
  const nodes: XdpPairNode[] = [];
  const backends: Netns[] = [];
  const front = await Lan.create();
  const back = await Lan.create();
  let client: Netns | undefined;
  const remove = async () => {
    for (const n of nodes) if (n.agent) await n.agent.kill9().catch(() => undefined);
    for (const n of nodes) await n.ns.delete();
    await front.delete();
    await back.delete();
    for (const n of nodes) {
      await run('rm', ['-rf', n.dirs.pinDir], { allowFail: true });
      rmSync(n.dirs.stateDir, { recursive: true, force: true });
    }
  };
  try {
    client = await front.addHost('client', `02:00:5e:${hex(fnet)}:00:0a`, [`10.${fnet}.0.10/24`]);
    // veth hands locally sent packets over with CHECKSUM_PARTIAL, which XDP_TX/redirect would lose.
    await client.exec('ethtool', ['-K', 'eth0', 'tx', 'off']);
    for (const [i, label] of (['a', 'b'] as const).entries()) {
      const ns = await Netns.create(`${opts.prefix}${label}`);
      const dirs = testDirs();
      const n: XdpPairNode = {
        label, ns, priority: label === 'a' ? 200 : 100, dirs,
        front: { mac: `02:00:5e:${hex(fnet)}:00:0${i + 2}`, address: `10.${fnet}.0.${i + 2}` },
        back: { mac: `02:00:5e:${hex(bnet)}:00:0${i + 2}`, address: `10.${bnet}.0.${i + 2}` },
        config: join(dirs.stateDir, 'fulcrum.yaml'),
        tokenFile: join(dirs.stateDir, 'state', 'admin.token'),
      };
      nodes.push(n);
      await plug(front, ns, 'eth0', n.front.mac, [`${n.front.address}/24`], { xdpPeer: true });
      await plug(back, ns, 'eth1', n.back.mac, [`${n.back.address}/24`], { xdpPeer: true });
      for (const dev of ['eth0', 'eth1']) await ns.exec('ethtool', ['-K', dev, 'tx', 'off']);
      await ns.exec('sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
    }
    for (const [i, address] of opts.backends.entries()) {
      const b = await back.addHost(`b${i + 1}`, `02:00:5e:${hex(bnet)}:00:1${i + 1}`, [`${address}/24`]);
      backends.push(b);
      await b.exec('ip', ['route', 'add', 'default', 'via', opts.gateway]);
      await b.exec('ethtool', ['-K', 'eth0', 'tx', 'off']);
      // dr: the VIP is local on lo but never answered for on the wire; replies leave from it.
      await b.exec('ip', ['addr', 'add', `${opts.drVip}/32`, 'dev', 'lo']);
      await b.exec('sysctl', ['-qw', 'net.ipv4.conf.all.arp_ignore=1', 'net.ipv4.conf.all.arp_announce=2']);
    }
    return { front, back, client, nodes: nodes as [XdpPairNode, XdpPairNode], backends, delete: remove };
  } catch (e) {
    await remove();
    throw e;
  }
}

/** Both of a node's links up or down (down: a hard failure as the peers see it). */
export async function setPairLinks(n: XdpPairNode, up: boolean): Promise<void> {
  for (const dev of ['eth0', 'eth1']) await n.ns.exec('ip', ['link', 'set', dev, up ? 'up' : 'down']);
}

export async function startPairAgent(n: XdpPairNode): Promise<void> {
  n.agent = await AgentProcess.start(n.config, { netns: n.ns.name });
}
