import { ipToBytes, macToBytes } from '../model/net.js';
import { internetChecksum, pseudoHeader } from './codec.js';

/**
 * Pure builders of the frames a new master sends so neighbours repoint their caches at its MAC:
 * gratuitous ARP (IPv4, RFC 5227 §3 announcement form as keepalived sends it: an ARP request with
 * sender = target = the VIP, to broadcast) and unsolicited Neighbor Advertisements (IPv6, RFC 4861
 * §7.2.6, to all-nodes with the Override flag). Whole Ethernet frames, for an AF_PACKET socket.
 */

export const ETH_P_ARP = 0x0806;
export const ETH_P_IPV6 = 0x86dd;
const ICMPV6 = 58;

export function gratuitousArp(mac: string, vip: string): Buffer {
  const src = macToBytes(mac);
  const f = Buffer.alloc(42);
  f.fill(0xff, 0, 6); // broadcast
  src.copy(f, 6);
  f.writeUInt16BE(ETH_P_ARP, 12);
  f.writeUInt16BE(1, 14); // hardware: Ethernet
  f.writeUInt16BE(0x0800, 16); // protocol: IPv4
  f[18] = 6;
  f[19] = 4;
  f.writeUInt16BE(1, 20); // request
  src.copy(f, 22);
  ipToBytes(vip).copy(f, 28);
  f.fill(0xff, 32, 38); // target hardware: broadcast, as keepalived
  ipToBytes(vip).copy(f, 38);
  return f;
}

export function unsolicitedNa(mac: string, vip: string): Buffer {
  const src = macToBytes(mac);
  const dst = 'ff02::1';
  // ICMPv6 NA: type 136, code 0, checksum, flags (Override), target, option 2 (target link-layer address).
  const icmp = Buffer.alloc(32);
  icmp[0] = 136;
  icmp.writeUInt32BE(0x20000000, 4);
  ipToBytes(vip).copy(icmp, 8);
  icmp[24] = 2;
  icmp[25] = 1;
  src.copy(icmp, 26);
  const ph = pseudoHeader('inet6', { src: vip, dst }, icmp.length);
  ph[39] = ICMPV6;
  icmp.writeUInt16BE(internetChecksum([ph, icmp]), 2);
  const ip = Buffer.alloc(40);
  ip.writeUInt32BE(0x60000000, 0);
  ip.writeUInt16BE(icmp.length, 4);
  ip[6] = ICMPV6;
  ip[7] = 255; // RFC 4861 §7.1.2: hop limit 255
  ipToBytes(vip).copy(ip, 8);
  ipToBytes(dst).copy(ip, 24);
  const eth = Buffer.alloc(14);
  Buffer.from([0x33, 0x33, 0, 0, 0, 1]).copy(eth, 0);
  src.copy(eth, 6);
  eth.writeUInt16BE(ETH_P_IPV6, 12);
  return Buffer.concat([eth, ip, icmp]);
}
