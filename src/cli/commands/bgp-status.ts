import type { BgpStatus } from '../../bgp/controller.js';
import { table } from '../client.js';

/** The BGP part of `fulcrum status`: the speaker, each session and each VIP. */
export function formatBgpStatus(b: BgpStatus): string {
  const lines = [
    `bgp:       BIRD at ${b.speaker.controlSocket} ${b.speaker.reachable ? 'answers' : `does not answer${b.speaker.error ? `: ${b.speaker.error}` : ''}`}; include ${b.speaker.includeFile}` +
      `${b.maintenance ? '; node in maintenance (nothing announced)' : ''}${b.lastApply?.result === 'error' ? `; last apply failed: ${b.lastApply.error}` : ''}\n\n`,
    table(['BGP NEIGHBOUR', 'ADDRESS', 'AS', 'STATE', 'BFD', 'EXPORTED'], b.neighbours.map((n) => [
      n.name, n.address, String(n.asn), `${n.state}${n.info ? ` ${n.info}` : ''}`, n.bfd ?? '-', n.exported.length ? n.exported.join(',') : '-',
    ])),
  ];
  if (b.vips.length > 0) {
    lines.push('\n', table(['VIP', 'ANNOUNCED', 'SINCE', 'REASON', 'SERVICES', 'COMMUNITIES'], b.vips.map((v) => [
      v.address, v.announced ? 'yes' : 'no', v.since, v.reason ?? '-', v.services.join(',') || '-', v.communities.join(',') || '-',
    ])));
  }
  return lines.join('');
}
