import { isIPv4, isIPv6 } from 'node:net';

/**
 * A small, independent packet builder and parser for benchmarks and tests (Ethernet, optional 802.1Q
 * tag, IPv4/IPv6, TCP/UDP), with real checksums. It shares no code with the BPF programs it checks.
 */

export interface PacketSpec {
  srcMac?: string;
  dstMac?: string;
  vlan?: number;
  saddr: string;
  daddr: string;
  proto: 'tcp' | 'udp';
  sport: number;
  dport: number;
  /** TCP flags byte (default SYN = 0x02). */
  tcpFlags?: number;
  payload?: Buffer;
}

export function mac(s: string): Buffer {
  const b = Buffer.from(s.split(':').map((x) => parseInt(x, 16)));
  if (b.length !== 6) throw new Error(`bad MAC ${s}`);
  return b;
}

export function ipBytes(a: string): Buffer {
  if (isIPv4(a)) return Buffer.from(a.split('.').map(Number));
  if (!isIPv6(a)) throw new Error(`bad address ${a}`);
  const [head, tail] = a.includes('::') ? a.split('::') as [string, string] : [a, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g || '0', 16), i * 2));
  return out;
}

function sum16(buf: Buffer, start = 0): number {
  let s = start;
  for (let i = 0; i + 1 < buf.length; i += 2) s += buf.readUInt16BE(i);
  if (buf.length & 1) s += (buf[buf.length - 1] ?? 0) << 8;
  return s;
}

function fold(s: number): number {
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

/** Internet checksum (RFC 1071) over the concatenation of the buffers. */
export function inetChecksum(...bufs: Buffer[]): number {
  return (~fold(sum16(Buffer.concat(bufs))) & 0xffff) >>> 0;
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

export function buildPacket(spec: PacketSpec): Buffer {
  const src = ipBytes(spec.saddr), dst = ipBytes(spec.daddr);
  if (src.length !== dst.length) throw new Error('mixed address families');
  const v6 = src.length === 16;
  const payload = spec.payload ?? Buffer.alloc(0);
  const protoNum = spec.proto === 'tcp' ? 6 : 17;
  let l4: Buffer;
  if (spec.proto === 'tcp') {
    l4 = Buffer.alloc(20 + payload.length);
    l4.writeUInt16BE(spec.sport, 0); l4.writeUInt16BE(spec.dport, 2);
    l4.writeUInt32BE(1, 4); l4[12] = 5 << 4; l4[13] = spec.tcpFlags ?? 0x02; l4.writeUInt16BE(65535, 14);
    payload.copy(l4, 20);
    l4.writeUInt16BE(inetChecksum(pseudoHeader(src, dst, protoNum, l4.length), l4), 16);
  } else {
    l4 = Buffer.alloc(8 + payload.length);
    l4.writeUInt16BE(spec.sport, 0); l4.writeUInt16BE(spec.dport, 2); l4.writeUInt16BE(l4.length, 4);
    payload.copy(l4, 8);
    l4.writeUInt16BE(inetChecksum(pseudoHeader(src, dst, protoNum, l4.length), l4) || 0xffff, 6);
  }
  let l3: Buffer;
  if (!v6) {
    l3 = Buffer.alloc(20);
    l3[0] = 0x45; l3.writeUInt16BE(20 + l4.length, 2); l3[8] = 64; l3[9] = protoNum;
    src.copy(l3, 12); dst.copy(l3, 16);
    l3.writeUInt16BE(inetChecksum(l3), 10);
  } else {
    l3 = Buffer.alloc(40);
    l3[0] = 0x60; l3.writeUInt16BE(l4.length, 4); l3[6] = protoNum; l3[7] = 64;
    src.copy(l3, 8); dst.copy(l3, 24);
  }
  const ethType = v6 ? 0x86dd : 0x0800;
  const eth = Buffer.alloc(spec.vlan === undefined ? 14 : 18);
  mac(spec.dstMac ?? '02:00:00:00:00:02').copy(eth, 0);
  mac(spec.srcMac ?? '02:00:00:00:00:01').copy(eth, 6);
  if (spec.vlan === undefined) eth.writeUInt16BE(ethType, 12);
  else { eth.writeUInt16BE(0x8100, 12); eth.writeUInt16BE(spec.vlan & 0xfff, 14); eth.writeUInt16BE(ethType, 16); }
  return Buffer.concat([eth, l3, l4]);
}

export interface ParsedPacket {
  dstMac: string;
  srcMac: string;
  vlan?: number;
  family: 4 | 6;
  saddr: string;
  daddr: string;
  proto: number;
  sport: number;
  dport: number;
  l3Offset: number;
  l4Offset: number;
  /** IPv4 header checksum valid (always true for IPv6, which has none). */
  ipChecksumOk: boolean;
  /** TCP/UDP checksum valid over the pseudo-header (UDP/IPv4 checksum 0 = none = ok). */
  l4ChecksumOk: boolean;
}

const macStr = (b: Buffer) => [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
const ipStr = (b: Buffer) => (b.length === 4 ? [...b].join('.') : Array.from({ length: 8 }, (_, i) => b.readUInt16BE(i * 2).toString(16)).join(':'));

/** Parses what buildPacket builds; throws on anything else. */
export function parsePacket(p: Buffer): ParsedPacket {
  let off = 12;
  let type = p.readUInt16BE(off);
  let vlan: number | undefined;
  if (type === 0x8100) { vlan = p.readUInt16BE(14) & 0xfff; type = p.readUInt16BE(16); off = 16; }
  const l3 = off + 2;
  let src: Buffer, dst: Buffer, proto: number, l4: number, l4len: number, ipOk = true;
  if (type === 0x0800) {
    const ihl = (p[l3]! & 0xf) * 4;
    src = p.subarray(l3 + 12, l3 + 16); dst = p.subarray(l3 + 16, l3 + 20); proto = p[l3 + 9]!;
    ipOk = inetChecksum(p.subarray(l3, l3 + ihl)) === 0;
    l4 = l3 + ihl; l4len = p.readUInt16BE(l3 + 2) - ihl;
  } else if (type === 0x86dd) {
    src = p.subarray(l3 + 8, l3 + 24); dst = p.subarray(l3 + 24, l3 + 40); proto = p[l3 + 6]!;
    l4 = l3 + 40; l4len = p.readUInt16BE(l3 + 4);
  } else throw new Error(`ethertype 0x${type.toString(16)} not parsed`);
  const seg = p.subarray(l4, l4 + l4len);
  const udpNone = proto === 17 && src.length === 4 && seg.readUInt16BE(6) === 0;
  const l4Ok = udpNone || inetChecksum(pseudoHeader(Buffer.from(src), Buffer.from(dst), proto, l4len), seg) === 0;
  const out: ParsedPacket = {
    dstMac: macStr(p.subarray(0, 6)), srcMac: macStr(p.subarray(6, 12)),
    family: src.length === 4 ? 4 : 6, saddr: ipStr(src), daddr: ipStr(dst), proto,
    sport: seg.readUInt16BE(0), dport: seg.readUInt16BE(2), l3Offset: l3, l4Offset: l4,
    ipChecksumOk: ipOk, l4ChecksumOk: l4Ok,
  };
  if (vlan !== undefined) out.vlan = vlan;
  return out;
}
