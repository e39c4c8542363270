import { bytesToIp } from '../model/net.js';

/**
 * A tiny DNS message codec (RFC 1035 section 4): one question out; header, questions and answer
 * records in. Pure functions over Buffers; enough for a health check, not a resolver.
 */

/** RFC 1035 3.2.2, RFC 3596 (AAAA), RFC 2782 (SRV). */
export const DNS_TYPE_CODES = { A: 1, NS: 2, CNAME: 5, SOA: 6, PTR: 12, MX: 15, TXT: 16, AAAA: 28, SRV: 33 } as const;
export type DnsTypeName = keyof typeof DNS_TYPE_CODES;
const TYPE_NAMES = new Map<number, DnsTypeName>(Object.entries(DNS_TYPE_CODES).map(([k, v]) => [v, k as DnsTypeName]));
const CLASS_IN = 1;
/** RFC 1035 4.1.1 RCODE values. */
export const RCODE_NAMES = ['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED'] as const;

export interface DnsQuery {
  id: number;
  name: string;
  type: DnsTypeName;
  /** RD: recursion desired (RFC 1035 4.1.1). */
  recursionDesired?: boolean;
}

export interface DnsRecord {
  name: string;
  type: DnsTypeName | number;
  ttl: number;
  /** Readable data: an address, a name, "10 mx.example", TXT strings joined, or hex for other types. */
  data: string;
}

export interface DnsResponse {
  id: number;
  isResponse: boolean;
  truncated: boolean;
  rcode: number;
  questions: Array<{ name: string; type: number }>;
  answers: DnsRecord[];
}

export class DnsDecodeError extends Error {}

function encodeName(name: string): Buffer {
  const trimmed = name.endsWith('.') ? name.slice(0, -1) : name;
  const parts: Buffer[] = [];
  if (trimmed !== '') {
    for (const label of trimmed.split('.')) {
      const b = Buffer.from(label, 'ascii');
      if (b.length === 0 || b.length > 63) throw new RangeError(`DNS label "${label}" must be 1-63 bytes`);
      parts.push(Buffer.from([b.length]), b);
    }
  }
  parts.push(Buffer.from([0]));
  return Buffer.concat(parts);
}

export function encodeQuery(q: DnsQuery): Buffer {
  const header = Buffer.alloc(12);
  header.writeUInt16BE(q.id & 0xffff, 0);
  header.writeUInt16BE((q.recursionDesired ?? true) ? 0x0100 : 0, 2); // QR=0 OPCODE=0 RD
  header.writeUInt16BE(1, 4); // QDCOUNT
  const tail = Buffer.alloc(4);
  tail.writeUInt16BE(DNS_TYPE_CODES[q.type], 0);
  tail.writeUInt16BE(CLASS_IN, 2);
  return Buffer.concat([header, encodeName(q.name), tail]);
}

/** Reads a possibly compressed name (RFC 1035 4.1.4); returns it and the offset after it in place. */
function readName(buf: Buffer, start: number): [string, number] {
  const labels: string[] = [];
  let off = start;
  let end = -1;
  for (let jumps = 0; ; ) {
    if (off >= buf.length) throw new DnsDecodeError('name runs past the message');
    const len = buf[off]!;
    if (len === 0) { off += 1; break; }
    if ((len & 0xc0) === 0xc0) {
      if (off + 1 >= buf.length) throw new DnsDecodeError('truncated compression pointer');
      if (++jumps > 32) throw new DnsDecodeError('compression loop');
      if (end < 0) end = off + 2;
      off = ((len & 0x3f) << 8) | buf[off + 1]!;
      continue;
    }
    if ((len & 0xc0) !== 0) throw new DnsDecodeError(`bad label length 0x${len.toString(16)}`);
    if (off + 1 + len > buf.length) throw new DnsDecodeError('label runs past the message');
    labels.push(buf.toString('ascii', off + 1, off + 1 + len));
    off += 1 + len;
  }
  return [labels.length ? labels.join('.') : '.', end >= 0 ? end : off];
}

function rdataText(buf: Buffer, type: number, off: number, len: number): string {
  const rd = buf.subarray(off, off + len);
  switch (TYPE_NAMES.get(type)) {
    case 'A': if (len === 4) return bytesToIp(rd); break;
    case 'AAAA': if (len === 16) return bytesToIp(rd); break;
    case 'CNAME': case 'NS': case 'PTR': return readName(buf, off)[0];
    case 'MX': return `${buf.readUInt16BE(off)} ${readName(buf, off + 2)[0]}`;
    case 'SRV': return `${buf.readUInt16BE(off)} ${buf.readUInt16BE(off + 2)} ${buf.readUInt16BE(off + 4)} ${readName(buf, off + 6)[0]}`;
    case 'TXT': {
      const parts: string[] = [];
      for (let p = 0; p < len; ) { const l = rd[p]!; parts.push(rd.toString('utf8', p + 1, p + 1 + l)); p += 1 + l; }
      return parts.join('');
    }
    case 'SOA': return readName(buf, off)[0];
    default: break;
  }
  return rd.toString('hex');
}

export function decodeResponse(buf: Buffer): DnsResponse {
  if (buf.length < 12) throw new DnsDecodeError(`message of ${buf.length} bytes is shorter than a header`);
  const flags = buf.readUInt16BE(2);
  const qd = buf.readUInt16BE(4), an = buf.readUInt16BE(6);
  let off = 12;
  const questions: DnsResponse['questions'] = [];
  for (let i = 0; i < qd; i++) {
    const [name, next] = readName(buf, off);
    if (next + 4 > buf.length) throw new DnsDecodeError('question runs past the message');
    questions.push({ name, type: buf.readUInt16BE(next) });
    off = next + 4;
  }
  const answers: DnsRecord[] = [];
  for (let i = 0; i < an; i++) {
    const [name, next] = readName(buf, off);
    if (next + 10 > buf.length) throw new DnsDecodeError('record header runs past the message');
    const type = buf.readUInt16BE(next);
    const ttl = buf.readUInt32BE(next + 4);
    const rdlen = buf.readUInt16BE(next + 8);
    const rdoff = next + 10;
    if (rdoff + rdlen > buf.length) throw new DnsDecodeError('record data runs past the message');
    answers.push({ name, type: TYPE_NAMES.get(type) ?? type, ttl, data: rdataText(buf, type, rdoff, rdlen) });
    off = rdoff + rdlen;
  }
  return { id: buf.readUInt16BE(0), isResponse: (flags & 0x8000) !== 0, truncated: (flags & 0x0200) !== 0, rcode: flags & 0x000f, questions, answers };
}

export function rcodeName(rcode: number): string {
  return RCODE_NAMES[rcode] ?? `RCODE ${rcode}`;
}
