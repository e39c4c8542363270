import { ipToBytes } from '../model/net.js';
import type { IpvsDest, IpvsForward, IpvsInfo, IpvsService } from './types.js';
import { IP_VS_SVC_F } from './codec.js';

/**
 * `ipvsadm -Ln` text for a table read through the IpvsClient, byte for byte (ipvsadm 1.31:
 * list_all / print_title / print_service_entry, with its numeric format and default sort).
 */

const FWD_NAME: Record<IpvsForward, string> = { masq: 'Masq', local: 'Local', tunnel: 'Tunnel', route: 'Route', bypass: 'Bypass' };
const PROTO_NUM = { tcp: 6, udp: 17, sctp: 132 } as const;
const AF_NUM = { inet: 2, inet6: 10 } as const;

/** "1.2.1" whether the client reports the text or the kernel's packed number (NVERSION). */
function versionText(v: string): string {
  if (/^\d+$/.test(v)) {
    const n = Number(v);
    return `${(n >> 16) & 0xff}.${(n >> 8) & 0xff}.${n & 0xff}`;
  }
  return v;
}

// libipvs compares with `int r = ntohl(a) - ntohl(b)`: an unsigned difference read as signed.
// Reproduced so the order is ipvsadm's, wrap-around included.
function cDiff(a: number, b: number): number {
  return ((a - b) >>> 0) | 0;
}

function addrCmp(a: string, b: string): number {
  const x = ipToBytes(a), y = ipToBytes(b);
  const words = Math.min(x.length, y.length) / 4;
  for (let i = 0; i < words; i++) {
    const r = cDiff(x.readUInt32BE(i * 4), y.readUInt32BE(i * 4));
    if (r !== 0) return r;
  }
  return 0;
}

function serviceCmp(a: IpvsService, b: IpvsService): number {
  const ka = a.key, kb = b.key;
  let r = cDiff(ka.fwmark ?? 0, kb.fwmark ?? 0);
  if (r) return r;
  r = AF_NUM[ka.family] - AF_NUM[kb.family];
  if (r) return r;
  r = (ka.protocol ? PROTO_NUM[ka.protocol] : 0) - (kb.protocol ? PROTO_NUM[kb.protocol] : 0);
  if (r) return r;
  if (ka.address !== undefined && kb.address !== undefined) {
    r = addrCmp(ka.address, kb.address);
    if (r) return r;
  }
  return (ka.port ?? 0) - (kb.port ?? 0);
}

function destCmp(a: IpvsDest, b: IpvsDest): number {
  return addrCmp(a.address, b.address) || a.port - b.port;
}

function endpoint(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

function schedFlags(sched: string, flags: number): string {
  const names =
    sched === 'sh' ? ['sh-fallback', 'sh-port', 'flag-3'] : sched === 'mh' ? ['mh-fallback', 'mh-port', 'flag-3'] : ['flag-1', 'flag-2', 'flag-3'];
  return [IP_VS_SVC_F.SCHED1, IP_VS_SVC_F.SCHED2, IP_VS_SVC_F.SCHED3].flatMap((f, i) => ((flags & f) !== 0 ? [names[i]!] : [])).join(',');
}

function ipv4MaskText(mask: number): string {
  return [24, 16, 8, 0].map((s) => (mask >>> s) & 0xff).join('.');
}

export interface ListedService {
  service: IpvsService;
  dests: IpvsDest[];
}

function pad(s: string, n: number): string {
  return s.length >= n ? s : s + ' '.repeat(n - s.length);
}

export function formatIpvsadmList(info: IpvsInfo, table: readonly ListedService[]): string {
  let out = `IP Virtual Server version ${versionText(info.version)} (size=${info.connTableSize})\n`;
  out += 'Prot LocalAddress:Port Scheduler Flags\n';
  out += '  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n';
  const sorted = [...table].sort((a, b) => serviceCmp(a.service, b.service));
  for (const { service: se, dests } of sorted) {
    const k = se.key;
    const v6 = k.family === 'inet6';
    let name: string;
    if (k.fwmark !== undefined) name = v6 ? `FWM  ${k.fwmark} IPv6` : `FWM  ${k.fwmark}`;
    else {
      name = `${k.protocol.toUpperCase()}  ${endpoint(k.address, k.port)}`;
      if (!v6) name = name.slice(0, 33);
    }
    out += `${name} ${se.scheduler}`;
    if (se.flags & (IP_VS_SVC_F.SCHED1 | IP_VS_SVC_F.SCHED2 | IP_VS_SVC_F.SCHED3)) out += ` (${schedFlags(se.scheduler, se.flags)})`;
    if (se.flags & IP_VS_SVC_F.PERSISTENT) {
      out += ` persistent ${se.timeout}`;
      if (!v6 && se.netmask >>> 0 !== 0xffffffff) out += ` mask ${ipv4MaskText(se.netmask)}`;
      if (v6 && se.netmask !== 128) out += ` mask ${se.netmask}`;
      if (se.pe) out += ` pe ${se.pe}`;
    }
    if (se.flags & IP_VS_SVC_F.ONEPACKET) out += ' ops';
    out += '\n';
    for (const d of [...dests].sort(destCmp)) {
      let dname = endpoint(d.address, d.port);
      if (!v6) dname = dname.slice(0, 28);
      out += `  -> ${pad(dname, 28)} ${pad(FWD_NAME[d.forward], 7)} ${pad(String(d.weight), 6)} ${pad(String(d.activeConnections >>> 0), 10)} ${pad(String(d.inactiveConnections >>> 0), 10)}\n`;
    }
  }
  return out;
}
