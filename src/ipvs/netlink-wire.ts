/**
 * Netlink and generic-netlink framing plus a table-driven attribute codec (pure: no sockets).
 * Layouts: include/uapi/linux/netlink.h (nlmsghdr, nlmsgerr, nlattr), genetlink.h (genlmsghdr).
 * Netlink integers are in host byte order; Fulcrum targets little-endian hosts (x86-64, arm64).
 */

export const NLMSG_HDRLEN = 16;
export const GENL_HDRLEN = 4;
export const NLA_HDRLEN = 4;

export const NLMSG_NOOP = 1;
export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;

export const NLM_F_REQUEST = 0x1;
export const NLM_F_MULTI = 0x2;
export const NLM_F_ACK = 0x4;
export const NLM_F_ROOT = 0x100;
export const NLM_F_MATCH = 0x200;
export const NLM_F_DUMP = NLM_F_ROOT | NLM_F_MATCH;

export const NLA_F_NESTED = 0x8000;
export const NLA_F_NET_BYTEORDER = 0x4000;
const NLA_TYPE_MASK = ~(NLA_F_NESTED | NLA_F_NET_BYTEORDER) & 0xffff;

export const GENL_ID_CTRL = 0x10;
export const CTRL_CMD_GETFAMILY = 3;
export const CTRL_VERSION = 1;

export const align4 = (n: number): number => (n + 3) & ~3;

// ---- attribute tables -------------------------------------------------------------------------

/**
 * Wire types: u8/u16/u32/u64 host order; be16/be32 network order; `string` NUL-terminated;
 * `binary` raw bytes; `flags` is struct {__u32 flags; __u32 mask}; `nested` holds another table.
 */
export type AttrType = 'u8' | 'u16' | 'u32' | 'u64' | 'be16' | 'be32' | 'string' | 'binary' | 'flags' | 'nested';

export interface AttrField {
  readonly id: number;
  readonly key: string;
  readonly type: AttrType;
  readonly table?: AttrTable;
}
/** Encoding follows table order (chosen to match ipvsadm's, so golden bytes compare exactly). */
export type AttrTable = readonly AttrField[];

export interface FlagsValue { flags: number; mask: number }
type AttrValue = number | bigint | string | Buffer | FlagsValue | AttrObject;
export type AttrObject = { [key: string]: AttrValue | undefined };

function encodeValue(field: AttrField, value: AttrValue): Buffer {
  const num = (): number => {
    if (typeof value !== 'number' || !Number.isInteger(value)) throw new TypeError(`attribute ${field.key}: expected an integer`);
    return value;
  };
  switch (field.type) {
    case 'u8': { const b = Buffer.alloc(1); b.writeUInt8(num()); return b; }
    case 'u16': { const b = Buffer.alloc(2); b.writeUInt16LE(num()); return b; }
    case 'u32': { const b = Buffer.alloc(4); b.writeUInt32LE(num() >>> 0); return b; }
    case 'be16': { const b = Buffer.alloc(2); b.writeUInt16BE(num()); return b; }
    case 'be32': { const b = Buffer.alloc(4); b.writeUInt32BE(num() >>> 0); return b; }
    case 'u64': {
      if (typeof value !== 'bigint') throw new TypeError(`attribute ${field.key}: expected a bigint`);
      const b = Buffer.alloc(8); b.writeBigUInt64LE(value); return b;
    }
    case 'string': {
      if (typeof value !== 'string') throw new TypeError(`attribute ${field.key}: expected a string`);
      return Buffer.concat([Buffer.from(value, 'utf8'), Buffer.alloc(1)]);
    }
    case 'binary':
      if (!Buffer.isBuffer(value)) throw new TypeError(`attribute ${field.key}: expected a Buffer`);
      return value;
    case 'flags': {
      const f = value as FlagsValue;
      const b = Buffer.alloc(8); b.writeUInt32LE(f.flags >>> 0, 0); b.writeUInt32LE(f.mask >>> 0, 4); return b;
    }
    case 'nested':
      return encodeAttrs(field.table ?? [], value as AttrObject);
  }
}

/** Encodes the present keys of `obj` as a run of attributes, in table order. */
export function encodeAttrs(table: AttrTable, obj: AttrObject): Buffer {
  const parts: Buffer[] = [];
  for (const field of table) {
    const value = obj[field.key];
    if (value === undefined) continue;
    const data = encodeValue(field, value);
    const hdr = Buffer.alloc(NLA_HDRLEN);
    hdr.writeUInt16LE(NLA_HDRLEN + data.length, 0);
    hdr.writeUInt16LE(field.id | (field.type === 'nested' ? NLA_F_NESTED : 0), 2);
    parts.push(hdr, data);
    const pad = align4(data.length) - data.length;
    if (pad) parts.push(Buffer.alloc(pad));
  }
  return Buffer.concat(parts);
}

function decodeValue(field: AttrField, data: Buffer): AttrValue {
  const need = (n: number): void => {
    if (data.length < n) throw new RangeError(`attribute ${field.key}: ${data.length} bytes, need ${n}`);
  };
  switch (field.type) {
    case 'u8': need(1); return data.readUInt8(0);
    case 'u16': need(2); return data.readUInt16LE(0);
    case 'u32': need(4); return data.readUInt32LE(0);
    case 'be16': need(2); return data.readUInt16BE(0);
    case 'be32': need(4); return data.readUInt32BE(0);
    case 'u64': need(8); return data.readBigUInt64LE(0);
    case 'string': {
      const nul = data.indexOf(0);
      return data.subarray(0, nul < 0 ? data.length : nul).toString('utf8');
    }
    case 'binary': return Buffer.from(data);
    case 'flags': need(8); return { flags: data.readUInt32LE(0), mask: data.readUInt32LE(4) };
    case 'nested': return decodeAttrs(field.table ?? [], data);
  }
}

/** Decodes a run of attributes; unknown ids (newer kernels, padding) are skipped. */
export function decodeAttrs(table: AttrTable, buf: Buffer): AttrObject {
  const out: AttrObject = {};
  let off = 0;
  while (off + NLA_HDRLEN <= buf.length) {
    const len = buf.readUInt16LE(off);
    const id = buf.readUInt16LE(off + 2) & NLA_TYPE_MASK;
    if (len < NLA_HDRLEN || off + len > buf.length) throw new RangeError(`malformed attribute at offset ${off} (length ${len})`);
    const field = table.find((f) => f.id === id);
    if (field) out[field.key] = decodeValue(field, buf.subarray(off + NLA_HDRLEN, off + len));
    off += align4(len);
  }
  return out;
}

// ---- messages ---------------------------------------------------------------------------------

export interface NlMessage {
  type: number;
  flags: number;
  seq: number;
  pid: number;
  /** Everything after the 16-byte header. */
  payload: Buffer;
}

export function encodeNlmsg(m: NlMessage): Buffer {
  const hdr = Buffer.alloc(NLMSG_HDRLEN);
  hdr.writeUInt32LE(NLMSG_HDRLEN + m.payload.length, 0);
  hdr.writeUInt16LE(m.type, 4);
  hdr.writeUInt16LE(m.flags, 6);
  hdr.writeUInt32LE(m.seq >>> 0, 8);
  hdr.writeUInt32LE(m.pid >>> 0, 12);
  return Buffer.concat([hdr, m.payload]);
}

/** Splits one datagram into its netlink messages. */
export function parseNlmsgs(buf: Buffer): NlMessage[] {
  const out: NlMessage[] = [];
  let off = 0;
  while (off + NLMSG_HDRLEN <= buf.length) {
    const len = buf.readUInt32LE(off);
    if (len < NLMSG_HDRLEN || off + len > buf.length) throw new RangeError(`malformed netlink message at offset ${off} (length ${len})`);
    out.push({
      type: buf.readUInt16LE(off + 4),
      flags: buf.readUInt16LE(off + 6),
      seq: buf.readUInt32LE(off + 8),
      pid: buf.readUInt32LE(off + 12),
      payload: buf.subarray(off + NLMSG_HDRLEN, off + len),
    });
    off += align4(len);
  }
  return out;
}

/** NLMSG_ERROR payload: a negative errno (0 = ACK), then the request's header (and maybe more). */
export function parseNlmsgErr(payload: Buffer): { errno: number } {
  if (payload.length < 4) throw new RangeError('short NLMSG_ERROR');
  return { errno: Math.abs(payload.readInt32LE(0)) };
}

export interface GenlHeader { cmd: number; version: number }

export function encodeGenl(h: GenlHeader, attrs: Buffer): Buffer {
  const g = Buffer.alloc(GENL_HDRLEN);
  g.writeUInt8(h.cmd, 0);
  g.writeUInt8(h.version, 1);
  return Buffer.concat([g, attrs]);
}

export function parseGenl(payload: Buffer): { header: GenlHeader; attrs: Buffer } {
  if (payload.length < GENL_HDRLEN) throw new RangeError('short generic netlink message');
  return { header: { cmd: payload.readUInt8(0), version: payload.readUInt8(1) }, attrs: payload.subarray(GENL_HDRLEN) };
}

// ---- nlctrl: family resolution ----------------------------------------------------------------

const CTRL_TABLE: AttrTable = [
  { id: 1, key: 'familyId', type: 'u16' },
  { id: 2, key: 'familyName', type: 'string' },
];

/** CTRL_CMD_GETFAMILY request payload (genl header + CTRL_ATTR_FAMILY_NAME). */
export function encodeGetFamily(name: string): Buffer {
  return encodeGenl({ cmd: CTRL_CMD_GETFAMILY, version: CTRL_VERSION }, encodeAttrs(CTRL_TABLE, { familyName: name }));
}

export function decodeFamilyId(payload: Buffer): number | undefined {
  const v = decodeAttrs(CTRL_TABLE, parseGenl(payload).attrs);
  return typeof v.familyId === 'number' ? v.familyId : undefined;
}
