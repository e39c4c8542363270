import type { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { Netns, run, uniqueName } from './netns.js';
import { Lan } from './lan.js';
import { PASS_OBJECT } from './xdp.js';

/**
 * Pieces for a pair of LB nodes between two L2 segments: plugging an existing netns into a Lan
 * (a node has a port on each segment), reading which addresses a node holds, and a tcpdump on
 * the client that names the MAC of the node that answered each TCP handshake.
 */

/**
 * Plugs `ns` into `lan` with a new interface `ifname`; returns the bridge port's name (in the
 * switch netns). With `xdpPeer`, the port gets a pass-all XDP program: native XDP on the node's
 * side can only XDP_TX / redirect into a veth whose peer runs XDP too.
 */
export async function plug(lan: Lan, ns: Netns, ifname: string, mac: string, addrs: string[], opts: { xdpPeer?: boolean } = {}): Promise<string> {
  const inner = uniqueName('pi'), outer = uniqueName('po');
  await run('ip', ['link', 'add', inner, 'type', 'veth', 'peer', 'name', outer]);
  await run('ip', ['link', 'set', inner, 'netns', ns.name]);
  await run('ip', ['link', 'set', outer, 'netns', lan.sw.name]);
  await ns.exec('ip', ['link', 'set', inner, 'name', ifname, 'address', mac]);
  for (const a of addrs) await ns.exec('ip', ['addr', 'add', a, 'dev', ifname]);
  await ns.exec('ip', ['link', 'set', ifname, 'up']);
  await lan.sw.exec('ip', ['link', 'set', outer, 'master', 'br0']);
  if (opts.xdpPeer) await lan.sw.exec('ip', ['link', 'set', 'dev', outer, 'xdpdrv', 'obj', PASS_OBJECT, 'sec', 'xdp']);
  await lan.sw.exec('ip', ['link', 'set', outer, 'up']);
  return outer;
}

/** The IPv4 addresses (without prefix) on `dev` in `ns`, as `ip addr` reports them. */
export async function addressesOn(ns: Netns, dev: string): Promise<string[]> {
  const r = await ns.exec('ip', ['-j', '-4', 'addr', 'show', 'dev', dev], { allowFail: true });
  if (r.code !== 0) return [];
  const links = JSON.parse(r.stdout || '[]') as Array<{ addr_info?: Array<{ local: string }> }>;
  return links.flatMap((l) => (l.addr_info ?? []).map((a) => a.local));
}

/** Which of `vips` (each on its device) `ns` holds. */
export async function heldVips(ns: Netns, vips: ReadonlyArray<{ dev: string; address: string }>): Promise<string[]> {
  const out: string[] = [];
  for (const v of vips) if ((await addressesOn(ns, v.dev)).includes(v.address)) out.push(v.address);
  return out;
}

/**
 * tcpdump -e on the client: every SYN-ACK from `vip` with its arrival time and the sender's MAC,
 * i.e. which LB node answered each new connection (XDP rewrites the source MAC to its own port).
 */
export class HandshakeWatcher {
  readonly seen: Array<{ t: number; mac: string }> = [];
  private constructor(readonly proc: ChildProcess) {}

  static async start(ns: Netns, dev: string, vip: string): Promise<HandshakeWatcher> {
    const proc = ns.spawn('tcpdump', ['-i', dev, '-n', '-e', '-tt', '-l', '-Q', 'in',
      `src host ${vip} and tcp[tcpflags] & (tcp-syn|tcp-ack) == (tcp-syn|tcp-ack)`]);
    const w = new HandshakeWatcher(proc);
    createInterface({ input: proc.stdout! }).on('line', (l) => {
      const m = /^(\d+\.\d+) ([0-9a-f:]{17}) >/.exec(l);
      if (m?.[1] && m[2]) w.seen.push({ t: Number(m[1]) * 1000, mac: m[2] });
    });
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('tcpdump did not start')), 10_000);
      proc.stderr!.on('data', (d: Buffer) => { if (d.toString().includes('listening on')) { clearTimeout(t); resolve(); } });
      proc.once('exit', (c) => { clearTimeout(t); reject(new Error(`tcpdump exited ${c}`)); });
    });
    return w;
  }

  /** The MACs that answered handshakes after `since` (epoch ms), with their counts. */
  macsAfter(since: number): Map<string, number> {
    const m = new Map<string, number>();
    for (const s of this.seen) if (s.t > since) m.set(s.mac, (m.get(s.mac) ?? 0) + 1);
    return m;
  }

  stop(): void {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill('SIGKILL');
  }
}
