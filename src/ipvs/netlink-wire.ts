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

const FIXED_SIZE: Partial<Record<AttrType, number>> = { u8: 1, u16: 2, u32: 4, be16: 2, be32: 4, u64: 8, flags: 8 };

function valueSize(field: AttrField, value: AttrValue): number {
  const fixed = FIXED_SIZE[field.type];
  if (fixed !== undefined) return fixed;
  switch (field.type) {
    case 'string':
      if (typeof value !== 'string') throw new TypeError(`attribute ${field.key}: expected a string`);
      return Buffer.byteLength(value, 'utf8') + 1;
    case 'binary':
      if (!Buffer.isBuffer(value)) throw new TypeError(`attribute ${field.key}: expected a Buffer`);
      return value.length;
    default:
      return attrsSize(field.table ?? [], value as AttrObject);
  }
}

/** Bytes that encodeAttrs(table, obj) produces. */
export function attrsSize(table: AttrTable, obj: AttrObject): number {
  let n = 0;
  for (const field of table) {
    const value = obj[field.key];
    if (value !== undefined) n += NLA_HDRLEN + align4(valueSize(field, value));
  }
  return n;
}

function writeValue(field: AttrField, value: AttrValue, buf: Buffer, off: number): void {
  const num = (): number => {
    if (typeof value !== 'number' || !Number.isInteger(value)) throw new TypeError(`attribute ${field.key}: expected an integer`);
    return value;
  };
  switch (field.type) {
    case 'u8': buf.writeUInt8(num(), off); return;
    case 'u16': buf.writeUInt16LE(num(), off); return;
    case 'u32': buf.writeUInt32LE(num() >>> 0, off); return;
    case 'be16': buf.writeUInt16BE(num(), off); return;
    case 'be32': buf.writeUInt32BE(num() >>> 0, off); return;
    case 'u64':
      if (typeof value !== 'bigint') throw new TypeError(`attribute ${field.key}: expected a bigint`);
      buf.writeBigUInt64LE(value, off); return;
    case 'string': buf.write(value as string, off, 'utf8'); return; // NUL: the buffer is zero-filled
    case 'binary': (value as Buffer).copy(buf, off); return;
    case 'flags': {
      const f = value as FlagsValue;
      buf.writeUInt32LE(f.flags >>> 0, off); buf.writeUInt32LE(f.mask >>> 0, off + 4); return;
    }
    case 'nested': writeAttrs(field.table ?? [], value as AttrObject, buf, off); return;
  }
}

/** Writes the attributes of `obj` at `start` of a zero-filled `buf`; returns the end offset. */
export function writeAttrs(table: AttrTable, obj: AttrObject, buf: Buffer, start: number): number {
  let off = start;
  for (const field of table) {
    const value = obj[field.key];
    if (value === undefined) continue;
    const size = valueSize(field, value);
    buf.writeUInt16LE(NLA_HDRLEN + size, off);
    buf.writeUInt16LE(field.id | (field.type === 'nested' ? NLA_F_NESTED : 0), off + 2);
    writeValue(field, value, buf, off + NLA_HDRLEN);
    off += NLA_HDRLEN + align4(size);
  }
  return off;
}

/** Encodes the present keys of `obj` as a run of attributes, in table order. */
export function encodeAttrs(table: AttrTable, obj: AttrObject): Buffer {
  const buf = Buffer.alloc(attrsSize(table, obj));
  writeAttrs(table, obj, buf, 0);
  return buf;
}

function decodeValue(field: AttrField, buf: Buffer, off: number, len: number): AttrValue {
  const need = FIXED_SIZE[field.type];
  if (need !== undefined && len < need) throw new RangeError(`attribute ${field.key}: ${len} bytes, need ${need}`);
  switch (field.type) {
    case 'u8': return buf.readUInt8(off);
    case 'u16': return buf.readUInt16LE(off);
    case 'u32': return buf.readUInt32LE(off);
    case 'be16': return buf.readUInt16BE(off);
    case 'be32': return buf.readUInt32BE(off);
    case 'u64': return buf.readBigUInt64LE(off);
    case 'string': {
      let end = off;
      while (end < off + len && buf[end] !== 0) end++;
      return buf.toString('utf8', off, end);
    }
    case 'binary': {
      const out = Buffer.allocUnsafe(len);
      buf.copy(out, 0, off, off + len);
      return out;
    }
    case 'flags': return { flags: buf.readUInt32LE(off), mask: buf.readUInt32LE(off + 4) };
    case 'nested': return decodeAttrsAt(field.table ?? [], buf, off, off + len);
  }
}

const BY_ID = new WeakMap<AttrTable, Map<number, AttrField>>();
function fieldsById(table: AttrTable): Map<number, AttrField> {
  let m = BY_ID.get(table);
  if (!m) { m = new Map(table.map((f) => [f.id, f])); BY_ID.set(table, m); }
  return m;
}

/** Decodes a run of attributes; unknown ids (newer kernels, padding) are skipped. */
export function decodeAttrs(table: AttrTable, buf: Buffer): AttrObject {
  return decodeAttrsAt(table, buf, 0, buf.length);
}

function decodeAttrsAt(table: AttrTable, buf: Buffer, start: number, end: number): AttrObject {
  const out: AttrObject = {};
  const byId = fieldsById(table);
  let off = start;
  while (off + NLA_HDRLEN <= end) {
    const len = buf.readUInt16LE(off);
    const id = buf.readUInt16LE(off + 2) & NLA_TYPE_MASK;
    if (len < NLA_HDRLEN || off + len > end) throw new RangeError(`malformed attribute at offset ${off - start} (length ${len})`);
    const field = byId.get(id);
    if (field) out[field.key] = decodeValue(field, buf, off + NLA_HDRLEN, len - NLA_HDRLEN);
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
