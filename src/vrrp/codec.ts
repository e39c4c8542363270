import { bytesToIp, ipToBytes, type Family } from '../model/net.js';

/**
 * Pure VRRP wire codec: VRRPv3 (RFC 5798 §5.1, IPv4 and IPv6) and VRRPv2 (RFC 3768 §5.1, IPv4,
 * with the RFC 2338 authentication fields keepalived still sends). Plus the two IP headers the
 * transport deals in (IPv4 with IP_HDRINCL; IPv6 only for captures and tests).
 *
 * decode*() never throws anything but VrrpDecodeError, whose `reason` is the counted drop reason.
 */

export const IPPROTO_VRRP = 112;
/** RFC 5798 §5.1.1.2 / §5.1.2.2, RFC 3768 §5.2.2: adverts go to these groups with TTL/hop limit 255. */
export const VRRP_MCAST_V4 = '224.0.0.18';
export const VRRP_MCAST_V6 = 'ff02::12';
export const VRRP_TTL = 255;
/** RFC 5798 §5.2.2 / RFC 3768 §5.3.2: the only packet type. */
export const VRRP_TYPE_ADVERTISEMENT = 1;

/** RFC 3768 §5.3.6: 0 none, 1 simple text password (RFC 2338, deprecated), 2 IP AH (deprecated). */
export type AuthType = 0 | 1 | 2;

export interface VrrpAdvert {
  version: 2 | 3;
  vrid: number;
  priority: number;
  /** v3: Max Adver Int in centiseconds (12 bits). v2: Adver Int in seconds (8 bits). */
  interval: number;
  family: Family;
  addresses: string[];
  /** v2 only: the auth type and its 8 data bytes (the password, NUL-padded). */
  authType?: AuthType;
  authData?: Buffer;
}

/** Source and destination, needed for the v3 pseudo-header checksum. */
export interface PseudoHeader {
  src: string;
  dst: string;
}

export type DecodeReason =
  | 'truncated'
  | 'bad-version'
  | 'bad-type'
  | 'bad-length'
  | 'bad-checksum'
  | 'bad-address-count'
  | 'bad-ip-header'
  | 'not-vrrp';

export class VrrpDecodeError extends Error {
  constructor(readonly reason: DecodeReason, message: string) {
    super(message);
    this.name = 'VrrpDecodeError';
  }
}

const addrLen = (family: Family) => (family === 'inet' ? 4 : 16);

/** RFC 1071 Internet checksum over the concatenation of `parts` (each may have odd length only last). */
export function internetChecksum(parts: Buffer[]): number {
  let sum = 0;
  let carry: number | undefined;
  for (const part of parts) {
    let i = 0;
    if (carry !== undefined && part.length > 0) {
      sum += (carry << 8) | part[0]!;
      carry = undefined;
      i = 1;
    }
    for (; i + 1 < part.length; i += 2) sum += (part[i]! << 8) | part[i + 1]!;
    if (i < part.length) carry = part[i]!;
  }
  if (carry !== undefined) sum += carry << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/**
 * The pseudo-header of the v3 checksum. RFC 5798 §5.2.8 only cites the IPv6 pseudo-header
 * (RFC 2460 §8.1); implementations, keepalived included, use the IPv4 pseudo-header (RFC 768
 * layout: src, dst, zero, protocol, length) over IPv4, which RFC 9568 (obsoleting 5798) now
 * states. The golden captures from keepalived verify this layout (test/unit/vrrp-codec.test.ts).
 * For unicast adverts the destination is the peer's address (keepalived >= 1.3.6; older ones put
 * 224.0.0.18 there, keepalived's `old_unicast_checksum`).
 */
export function pseudoHeader(family: Family, ph: PseudoHeader, length: number): Buffer {
  if (family === 'inet') {
    const b = Buffer.alloc(12);
    ipToBytes(ph.src).copy(b, 0);
    ipToBytes(ph.dst).copy(b, 4);
    b[9] = IPPROTO_VRRP;
    b.writeUInt16BE(length, 10);
    return b;
  }
  const b = Buffer.alloc(40);
  ipToBytes(ph.src).copy(b, 0);
  ipToBytes(ph.dst).copy(b, 16);
  b.writeUInt32BE(length, 32);
  b[39] = IPPROTO_VRRP;
  return b;
}

function checksumOf(advert: { version: 2 | 3; family: Family }, msg: Buffer, ph: PseudoHeader | undefined): number {
  // RFC 3768 §5.3.8: v2 sums the VRRP message only.
  if (advert.version === 2) return internetChecksum([msg]);
  if (!ph) throw new TypeError('a VRRPv3 checksum needs the source and destination addresses');
  return internetChecksum([pseudoHeader(advert.family, ph, msg.length), msg]);
}

/** Encodes one advertisement (the VRRP message, without the IP header). */
export function encodeAdvert(advert: VrrpAdvert, ph?: PseudoHeader): Buffer {
  const al = addrLen(advert.family);
  if (advert.version === 2 && advert.family !== 'inet') throw new TypeError('VRRPv2 carries IPv4 only');
  if (advert.addresses.length > 255) throw new TypeError('at most 255 addresses');
  const authLen = advert.version === 2 ? 8 : 0;
  const msg = Buffer.alloc(8 + advert.addresses.length * al + authLen);
  msg[0] = (advert.version << 4) | VRRP_TYPE_ADVERTISEMENT;
  msg[1] = advert.vrid;
  msg[2] = advert.priority;
  msg[3] = advert.addresses.length;
  if (advert.version === 3) {
    // RFC 5798 §5.2.5-6: 4 reserved bits, then 12 bits of Max Adver Int (centiseconds).
    msg.writeUInt16BE(advert.interval & 0x0fff, 4);
  } else {
    // RFC 3768 §5.3.6-7: Auth Type, Adver Int (seconds).
    msg[4] = advert.authType ?? 0;
    msg[5] = advert.interval & 0xff;
  }
  advert.addresses.forEach((a, i) => {
    const bytes = ipToBytes(a);
    if (bytes.length !== al) throw new TypeError(`${a} is not ${advert.family}`);
    bytes.copy(msg, 8 + i * al);
  });
  if (advert.version === 2 && advert.authData) advert.authData.copy(msg, 8 + advert.addresses.length * al, 0, 8);
  msg.writeUInt16BE(checksumOf(advert, msg, ph), 6);
  return msg;
}

/**
 * Decodes and verifies one VRRP message (IP header already stripped). `family` is the family of
 * the socket it arrived on; the pseudo-header is required for v3.
 */
export function decodeAdvert(msg: Buffer, family: Family, ph?: PseudoHeader): VrrpAdvert {
  if (msg.length < 8) throw new VrrpDecodeError('truncated', `VRRP message of ${msg.length} bytes (minimum 8)`);
  const version = msg[0]! >> 4;
  const type = msg[0]! & 0x0f;
  if (version !== 2 && version !== 3) throw new VrrpDecodeError('bad-version', `VRRP version ${version}`);
  if (version === 2 && family !== 'inet') throw new VrrpDecodeError('bad-version', 'VRRPv2 over IPv6');
  if (type !== VRRP_TYPE_ADVERTISEMENT) throw new VrrpDecodeError('bad-type', `VRRP type ${type}`);
  const count = msg[3]!;
  const al = addrLen(family);
  if (count === 0) throw new VrrpDecodeError('bad-address-count', 'no addresses');
  const authLen = version === 2 ? 8 : 0;
  const expected = 8 + count * al + authLen;
  // keepalived (and RFC 3768 senders) always carry the 8 auth bytes in v2; accept nothing shorter.
  if (msg.length < expected) throw new VrrpDecodeError('bad-address-count', `count ${count} needs ${expected} bytes, got ${msg.length}`);
  const body = msg.subarray(0, expected);
  if (version === 3 && !ph) throw new VrrpDecodeError('bad-checksum', 'no pseudo-header to verify the VRRPv3 checksum');
  const sum = checksumOf({ version, family }, body, ph);
  if (sum !== 0) throw new VrrpDecodeError('bad-checksum', `checksum 0x${body.readUInt16BE(6).toString(16).padStart(4, '0')} does not verify`);
  const addresses: string[] = [];
  for (let i = 0; i < count; i++) addresses.push(bytesToIp(body.subarray(8 + i * al, 8 + (i + 1) * al)));
  const advert: VrrpAdvert = {
    version,
    vrid: msg[1]!,
    priority: msg[2]!,
    interval: version === 3 ? body.readUInt16BE(4) & 0x0fff : body[5]!,
    family,
    addresses,
  };
  if (version === 2) {
    advert.authType = body[4]! as AuthType;
    advert.authData = Buffer.from(body.subarray(8 + count * al, expected));
  }
  return advert;
}

/** RFC 2338 §5.3.10: the password, NUL-padded to 8 bytes. */
export function passwordAuthData(password: string): Buffer {
  const b = Buffer.alloc(8);
  Buffer.from(password, 'utf8').copy(b, 0, 0, 8);
  return b;
}

export interface Ipv4Header {
  ttl: number;
  protocol: number;
  src: string;
  dst: string;
  /** The bytes after the header, cut to the header's total length. */
  payload: Buffer;
}

/** Decodes the IPv4 header a raw socket delivers in front of each packet. */
export function decodeIpv4(packet: Buffer): Ipv4Header {
  if (packet.length < 20) throw new VrrpDecodeError('truncated', `IPv4 packet of ${packet.length} bytes`);
  if (packet[0]! >> 4 !== 4) throw new VrrpDecodeError('bad-ip-header', `IP version ${packet[0]! >> 4}`);
  const ihl = (packet[0]! & 0x0f) * 4;
  const total = packet.readUInt16BE(2);
  if (ihl < 20 || ihl > packet.length) throw new VrrpDecodeError('bad-ip-header', `IPv4 header length ${ihl}`);
  // The kernel hands raw sockets the datagram as received; total length may be below the buffer.
  const end = total >= ihl && total <= packet.length ? total : packet.length;
  return {
    ttl: packet[8]!,
    protocol: packet[9]!,
    src: bytesToIp(packet.subarray(12, 16)),
    dst: bytesToIp(packet.subarray(16, 20)),
    payload: packet.subarray(ihl, end),
  };
}

/**
 * An IPv4 header for IP_HDRINCL sends: the kernel fills in the header checksum and, if zero, the
 * id; we set TOS 0xc0 (internetwork control, as keepalived) and TTL 255 (RFC 5798 §5.1.1.3).
 */
export function encodeIpv4(src: string, dst: string, payload: Buffer, id = 0): Buffer {
  const h = Buffer.alloc(20);
  h[0] = 0x45;
  h[1] = 0xc0;
  h.writeUInt16BE(20 + payload.length, 2);
  h.writeUInt16BE(id, 4);
  h[8] = VRRP_TTL;
  h[9] = IPPROTO_VRRP;
  ipToBytes(src).copy(h, 12);
  ipToBytes(dst).copy(h, 16);
  h.writeUInt16BE(internetChecksum([h]), 10);
  return Buffer.concat([h, payload]);
}

export interface Ipv6Header {
  hopLimit: number;
  nextHeader: number;
  src: string;
  dst: string;
  payload: Buffer;
}

/** Decodes a fixed IPv6 header (captures, tests); extension headers are not walked. */
export function decodeIpv6(packet: Buffer): Ipv6Header {
  if (packet.length < 40) throw new VrrpDecodeError('truncated', `IPv6 packet of ${packet.length} bytes`);
  if (packet[0]! >> 4 !== 6) throw new VrrpDecodeError('bad-ip-header', `IP version ${packet[0]! >> 4}`);
  const len = packet.readUInt16BE(4);
  return {
    hopLimit: packet[7]!,
    nextHeader: packet[6]!,
    src: bytesToIp(packet.subarray(8, 24)),
    dst: bytesToIp(packet.subarray(24, 40)),
    payload: packet.subarray(40, Math.min(packet.length, 40 + len)),
  };
}

/** Compares two addresses of one family as unsigned integers (RFC 5798 §6.4.3 tie-break). */
export function compareAddresses(a: string, b: string): number {
  return Buffer.compare(ipToBytes(a), ipToBytes(b));
}
