import { isIP } from 'node:net';

/**
 * An independent packet builder and parser for XDP fixtures: it shares no code with the program
 * or with src/xdp (addresses are converted here with its own helpers), and it recomputes every
 * checksum from scratch (RFC 1071 over the header, and the pseudo-header for TCP/UDP).
 */

export interface PacketSpec {
  srcMac?: string;
  dstMac?: string;
  vlan?: number;
  src: string;
  dst: string;
  protocol: 'tcp' | 'udp';
  sport: number;
  dport: number;
  ttl?: number;
  /** TCP flags byte (default SYN). */
  tcpFlags?: number;
  payload?: Buffer;
  /** IPv4 only: set the more-fragments flag. */
  moreFragments?: boolean;
  /** IPv4 UDP: send a zero checksum ("none", RFC 768). */
  zeroUdpChecksum?: boolean;
}

function v4(a: string): Buffer {
  return Buffer.from(a.split('.').map((x) => Number(x)));
}

function v6(a: string): Buffer {
  const [head = '', tail] = a.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const words = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  const out = Buffer.alloc(16);
  words.forEach((w, i) => out.writeUInt16BE(parseInt(w, 16), i * 2));
  return out;
}

function addrBytes(a: string): Buffer {
  return isIP(a) === 4 ? v4(a) : v6(a);
}

function fmt(b: Buffer): string {
  if (b.length === 4) return Array.from(b).join('.');
  const words: string[] = [];
  for (let i = 0; i < 16; i += 2) words.push(b.readUInt16BE(i).toString(16));
  // compact enough for comparisons: compare through addrBytes instead of text where it matters
  return words.join(':');
}

function mac(m: string): Buffer {
  return Buffer.from(m.split(':').map((x) => parseInt(x, 16)));
}

function fmtMac(b: Buffer): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(':');
}

/** RFC 1071 Internet checksum of the concatenated buffers. */
export function inetChecksum(...parts: Buffer[]): number {
  const all = Buffer.concat(parts);
  let sum = 0;
  for (let i = 0; i + 1 < all.length; i += 2) sum += all.readUInt16BE(i);
  if (all.length % 2) sum += (all[all.length - 1] ?? 0) << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

function pseudoHeader(src: Buffer, dst: Buffer, proto: number, len: number): Buffer {
  if (src.length === 4) {
    const p = Buffer.alloc(12);
    src.copy(p, 0); dst.copy(p, 4); p[9] = proto; p.writeUInt16BE(len, 10);
    return p;
  }
  const p = Buffer.alloc(40);
  src.copy(p, 0); dst.copy(p, 16); p.writeUInt32BE(len, 32); p[39] = proto;
  return p;
}

export function buildPacket(s: PacketSpec): Buffer {
  const src = addrBytes(s.src), dst = addrBytes(s.dst);
  const isV6 = src.length === 16;
  const payload = s.payload ?? Buffer.from('fulcrum-fixture');
  const proto = s.protocol === 'tcp' ? 6 : 17;
  let l4: Buffer;
  if (s.protocol === 'tcp') {
    l4 = Buffer.alloc(20 + payload.length);
    l4.writeUInt16BE(s.sport, 0); l4.writeUInt16BE(s.dport, 2);
    l4.writeUInt32BE(1000, 4); l4.writeUInt32BE(0, 8);
    l4[12] = 5 << 4; l4[13] = s.tcpFlags ?? 0x02; l4.writeUInt16BE(64240, 14);
    payload.copy(l4, 20);
  } else {
    l4 = Buffer.alloc(8 + payload.length);
    l4.writeUInt16BE(s.sport, 0); l4.writeUInt16BE(s.dport, 2); l4.writeUInt16BE(l4.length, 4);
    payload.copy(l4, 8);
  }
  const checkOff = s.protocol === 'tcp' ? 16 : 6;
  if (!(s.protocol === 'udp' && !isV6 && s.zeroUdpChecksum)) {
    let c = inetChecksum(pseudoHeader(src, dst, proto, l4.length), l4);
    if (s.protocol === 'udp' && c === 0) c = 0xffff;
    l4.writeUInt16BE(c, checkOff);
  }
  let l3: Buffer;
  if (!isV6) {
    l3 = Buffer.alloc(20);
    l3[0] = 0x45; l3.writeUInt16BE(20 + l4.length, 2); l3.writeUInt16BE(0x1234, 4);
    l3.writeUInt16BE(s.moreFragments ? 0x2000 : 0x4000, 6);
    l3[8] = s.ttl ?? 64; l3[9] = proto; src.copy(l3, 12); dst.copy(l3, 16);
    l3.writeUInt16BE(inetChecksum(l3), 10);
  } else {
    l3 = Buffer.alloc(40);
    l3.writeUInt32BE(0x60000000, 0); l3.writeUInt16BE(l4.length, 4); l3[6] = proto; l3[7] = s.ttl ?? 64;
    src.copy(l3, 8); dst.copy(l3, 24);
  }
  const ethType = isV6 ? 0x86dd : 0x0800;
  const eth = Buffer.alloc(s.vlan !== undefined ? 18 : 14);
  mac(s.dstMac ?? '02:00:00:00:00:01').copy(eth, 0);
  mac(s.srcMac ?? '02:00:00:00:00:02').copy(eth, 6);
  if (s.vlan !== undefined) {
    eth.writeUInt16BE(0x8100, 12); eth.writeUInt16BE(s.vlan & 0x0fff, 14); eth.writeUInt16BE(ethType, 16);
  } else {
    eth.writeUInt16BE(ethType, 12);
  }
  return Buffer.concat([eth, l3, l4]);
}

export interface ParsedPacket {
  dstMac: string;
  srcMac: string;
  vlan: number | undefined;
  family: 4 | 6;
  src: Buffer;
  dst: Buffer;
  ttl: number;
  protocol: 'tcp' | 'udp';
  sport: number;
  dport: number;
  payload: Buffer;
  /** Header checksum verifies (IPv4), or true for IPv6 (it has none). */
  ipChecksumOk: boolean;
  /** L4 checksum verifies over the pseudo-header; for IPv4 UDP with checksum 0, whether it is 0. */
  l4ChecksumOk: boolean;
  udpChecksumZero: boolean;
}

/** Parses Ethernet/802.1Q/IPv4|IPv6/TCP|UDP and recomputes both checksums. Throws on anything else. */
export function parsePacket(buf: Buffer): ParsedPacket {
  let off = 14;
  let type = buf.readUInt16BE(12);
  let vlan: number | undefined;
  if (type === 0x8100) { vlan = buf.readUInt16BE(14) & 0x0fff; type = buf.readUInt16BE(16); off = 18; }
  let src: Buffer, dst: Buffer, proto: number, ttl: number, l4: Buffer, ipOk: boolean, family: 4 | 6;
  if (type === 0x0800) {
    const ihl = (buf[off]! & 0x0f) * 4;
    const total = buf.readUInt16BE(off + 2);
    const hdr = buf.subarray(off, off + ihl);
    ipOk = inetChecksum(hdr) === 0;
    src = Buffer.from(hdr.subarray(12, 16)); dst = Buffer.from(hdr.subarray(16, 20));
    proto = hdr[9]!; ttl = hdr[8]!; family = 4;
    l4 = buf.subarray(off + ihl, off + total);
  } else if (type === 0x86dd) {
    const hdr = buf.subarray(off, off + 40);
    src = Buffer.from(hdr.subarray(8, 24)); dst = Buffer.from(hdr.subarray(24, 40));
    proto = hdr[6]!; ttl = hdr[7]!; ipOk = true; family = 6;
    l4 = buf.subarray(off + 40, off + 40 + hdr.readUInt16BE(4));
  } else {
    throw new Error(`not IP: ethertype 0x${type.toString(16)}`);
  }
  if (proto !== 6 && proto !== 17) throw new Error(`not TCP/UDP: protocol ${proto}`);
  const checkOff = proto === 6 ? 16 : 6;
  const stored = l4.readUInt16BE(checkOff);
  const udpZero = proto === 17 && stored === 0;
  let l4Ok: boolean;
  if (udpZero) l4Ok = family === 4;
  else l4Ok = inetChecksum(pseudoHeader(src, dst, proto, l4.length), l4) === 0;
  const hdrLen = proto === 6 ? (l4[12]! >> 4) * 4 : 8;
  return {
    dstMac: fmtMac(buf.subarray(0, 6)), srcMac: fmtMac(buf.subarray(6, 12)), vlan, family, src, dst, ttl,
    protocol: proto === 6 ? 'tcp' : 'udp', sport: l4.readUInt16BE(0), dport: l4.readUInt16BE(2),
    payload: Buffer.from(l4.subarray(hdrLen)), ipChecksumOk: ipOk, l4ChecksumOk: l4Ok, udpChecksumZero: udpZero,
  };
}

/** True when the parsed address bytes are `address`. */
export function sameAddress(bytes: Buffer, address: string): boolean {
  return bytes.equals(addrBytes(address));
}

export { fmt as formatAddressBytes };
