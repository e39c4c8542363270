import type { BgpNeighbour, BgpSettings } from '../model/bgp.js';
import { familyOf, type Family } from '../model/net.js';

/** One VIP to announce: a host route of this node, with its communities. */
export interface Announcement {
  address: string;
  family: Family;
  communities: readonly string[];
}

/** BIRD protocol names of what Fulcrum owns (the read-back looks for them). */
export const PROTO = {
  bfd: 'fulcrum_bfd',
  static4: 'fulcrum_vips4',
  static6: 'fulcrum_vips6',
  neighbour: (n: Pick<BgpNeighbour, 'name'>) => `fulcrum_${n.name}`,
} as const;

/** The order of the rendered routes: by family, then by address bytes (render is independent of input order). */
export function sortAnnouncements(list: readonly Announcement[]): Announcement[] {
  const key = (a: Announcement) => (a.family === 'inet' ? '4' : '6') + expand(a.address);
  return [...list].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
}

function expand(address: string): string {
  if (familyOf(address) === 'inet') return address.split('.').map((o) => o.padStart(3, '0')).join('.');
  const [head = '', tail = ''] = address.split('::');
  const h = head ? head.split(':') : [], t = tail ? tail.split(':') : [];
  const all = address.includes('::') ? [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t] : h;
  return all.map((x) => x.padStart(4, '0')).join(':');
}

function communityTerm(c: string): string {
  const parts = c.split(':');
  return parts.length === 2 ? `bgp_community.add((${parts.join(',')}));` : `bgp_large_community.add((${parts.join(',')}));`;
}

function staticProtocol(name: string, channel: 'ipv4' | 'ipv6', routes: Announcement[]): string {
  const lines = [`protocol static ${name} {`, `  ${channel};`];
  for (const r of routes) {
    const prefix = r.family === 'inet' ? 32 : 128;
    const communities = [...new Set(r.communities)].sort();
    lines.push(communities.length === 0
      ? `  route ${r.address}/${prefix} blackhole;`
      : `  route ${r.address}/${prefix} blackhole { ${communities.map(communityTerm).join(' ')} };`);
  }
  lines.push('}');
  return lines.join('\n');
}

function bgpProtocol(settings: BgpSettings, n: BgpNeighbour): string {
  const channel = familyOf(n.address) === 'inet' ? 'ipv4' : 'ipv6';
  const source = channel === 'ipv4' ? PROTO.static4 : PROTO.static6;
  const bfd = n.bfd ?? settings.bfd.enabled;
  const lines = [
    `protocol bgp ${PROTO.neighbour(n)} {`,
    `  local as ${settings.asn};`,
    `  neighbor ${n.address} port ${n.port} as ${n.asn};`,
  ];
  if (n.sourceAddress) lines.push(`  source address ${n.sourceAddress};`);
  if (n.multihop !== undefined) lines.push(`  multihop ${n.multihop};`);
  if (n.holdTimeSeconds !== undefined) lines.push(`  hold time ${n.holdTimeSeconds};`, `  keepalive time ${Math.max(1, Math.floor(n.holdTimeSeconds / 3))};`);
  lines.push(`  connect retry time ${n.reconnectSeconds};`, `  error wait time 1, ${n.reconnectSeconds};`);
  lines.push(`  bfd ${bfd ? 'on' : 'off'};`);
  lines.push(`  ${channel} { import none; export where proto = "${source}"; };`);
  lines.push('}');
  return lines.join('\n');
}

/**
 * The BIRD 2 include file for this node: router id, BFD, the VIPs as static
 * blackhole host routes (the dataplane, not the kernel route table, carries their traffic; the
 * static protocols export nothing to the kernel) and one BGP session per neighbour exporting only
 * those routes. BIRD's own config keeps its one `protocol device` (BIRD allows only one). Pure: the same settings and VIPs (in any order) give the same text.
 */
export function renderBirdInclude(settings: BgpSettings, announcements: readonly Announcement[]): string {
  const sorted = sortAnnouncements(announcements);
  const v4 = sorted.filter((a) => a.family === 'inet');
  const v6 = sorted.filter((a) => a.family === 'inet6');
  const parts = [
    '# Written by fulcrum (agent.bgp): every change is rewritten; do not edit.',
    `router id ${settings.routerId};`,
  ];
  const anyBfd = settings.neighbours.some((n) => n.bfd ?? settings.bfd.enabled);
  if (anyBfd) {
    const b = settings.bfd;
    parts.push([
      `protocol bfd ${PROTO.bfd} {`,
      `  interface "*" { min rx interval ${b.minRxMs} ms; min tx interval ${b.minTxMs} ms; multiplier ${b.multiplier}; };`,
      `  multihop { min rx interval ${b.minRxMs} ms; min tx interval ${b.minTxMs} ms; multiplier ${b.multiplier}; };`,
      '}',
    ].join('\n'));
  }
  parts.push(staticProtocol(PROTO.static4, 'ipv4', v4), staticProtocol(PROTO.static6, 'ipv6', v6));
  for (const n of [...settings.neighbours].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) parts.push(bgpProtocol(settings, n));
  return parts.join('\n\n') + '\n';
}
