import { readFileSync } from 'node:fs';
import { canonicalIp } from '../model/net.js';

/**
 * The kernel's IPVS connection table as /proc/net/ip_vs_conn prints it (ip_vs_conn_seq_show):
 *   Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData
 *   TCP 0A140A0A C350 0A140001 0050 0A140201 0050 ESTABLISHED     899
 * IPv4 addresses as 8 hex digits (host order of the dotted form), IPv6 ones as %pI6 (eight
 * groups), ports as 4 hex digits. There is no netlink dump of connections: this file, read in the
 * agent's network namespace (/proc/net is per netns), is the one source. Persistence templates
 * are rows with client port 0 and state NONE.
 */

export interface IpvsConnection {
  protocol: string;
  client: string;
  clientPort: number;
  vip: string;
  vport: number;
  dest: string;
  dport: number;
  state: string;
  expiresSeconds: number;
}

function addr(text: string): string | undefined {
  if (/^[0-9A-Fa-f]{8}$/.test(text)) {
    const n = parseInt(text, 16);
    return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
  }
  try {
    return canonicalIp(text);
  } catch {
    return undefined;
  }
}

/** Rows that do not parse (the header, a future column layout) are skipped. */
export function parseIpvsConnections(text: string): IpvsConnection[] {
  const out: IpvsConnection[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 9 || f[0] === 'Pro') continue;
    const client = addr(f[1]!), vip = addr(f[3]!), dest = addr(f[5]!);
    if (!client || !vip || !dest || !/^[0-9A-Fa-f]{4}$/.test(f[2]!) || !/^[0-9A-Fa-f]{4}$/.test(f[4]!) || !/^[0-9A-Fa-f]{4}$/.test(f[6]!)) continue;
    out.push({
      protocol: f[0]!.toLowerCase(), client, clientPort: parseInt(f[2]!, 16), vip, vport: parseInt(f[4]!, 16), dest, dport: parseInt(f[6]!, 16),
      state: f[7]!, expiresSeconds: Number(f[8]),
    });
  }
  return out;
}

export type ConnectionSource = () => string;

/** /proc/net/ip_vs_conn of the calling process's network namespace. */
export const procConnections: ConnectionSource = () => readFileSync('/proc/net/ip_vs_conn', 'latin1');
