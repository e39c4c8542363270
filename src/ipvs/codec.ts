/**
 * The IPVS generic-netlink codec (family "IPVS", include/uapi/linux/ip_vs.h), pure and table-driven.
 * `encode(msg)` / `decode(buf)` work on wire messages (IpvsWireMessage): kernel attribute values,
 * addresses as their 16-byte union, ports as numbers sent in network order. Public types
 * (types.ts) are converted in wire-messages.ts.
 *
 * Attribute order inside each table follows what ipvsadm 1.31 sends (golden bytes in
 * test/unit/fixtures/ipvsadm-golden.json), not the id order: the kernel does not care, the golden
 * comparison does.
 */
import {
  type AttrObject, type AttrTable, type FlagsValue, type NlMessage,
  attrsSize, decodeAttrs, parseGenl, writeAttrs,
  GENL_HDRLEN, NLMSG_HDRLEN, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST,
} from './netlink-wire.js';

export const IPVS_GENL_NAME = 'IPVS';
export const IPVS_GENL_VERSION = 1;

export const IPVS_CMD = {
  NEW_SERVICE: 1, SET_SERVICE: 2, DEL_SERVICE: 3, GET_SERVICE: 4,
  NEW_DEST: 5, SET_DEST: 6, DEL_DEST: 7, GET_DEST: 8,
  NEW_DAEMON: 9, DEL_DAEMON: 10, GET_DAEMON: 11,
  SET_CONFIG: 12, GET_CONFIG: 13,
  SET_INFO: 14, GET_INFO: 15,
  ZERO: 16, FLUSH: 17,
} as const;
export type IpvsCmd = keyof typeof IPVS_CMD;
const CMD_BY_ID = new Map<number, IpvsCmd>(Object.entries(IPVS_CMD).map(([k, v]) => [v, k as IpvsCmd]));

/** IP_VS_CONN_F_FWD_MASK values (IPVS_DEST_ATTR_FWD_METHOD). */
export const IP_VS_CONN_F = { MASQ: 0, LOCALNODE: 1, TUNNEL: 2, DROUTE: 3, BYPASS: 4 } as const;
/** IP_VS_CONN_F_TUNNEL_TYPE_* (IPVS_DEST_ATTR_TUN_TYPE). */
export const IP_VS_TUNNEL_TYPE = { IPIP: 0, GUE: 1, GRE: 2 } as const;
/** IP_VS_TUNNEL_ENCAP_FLAG_* (IPVS_DEST_ATTR_TUN_FLAGS). */
export const IP_VS_TUNNEL_ENCAP_FLAG = { NOCSUM: 0, CSUM: 1, REMCSUM: 2 } as const;
/** IP_VS_SVC_F_* (IPVS_SVC_ATTR_FLAGS). */
export const IP_VS_SVC_F = { PERSISTENT: 0x1, HASHED: 0x2, ONEPACKET: 0x4, SCHED1: 0x8, SCHED2: 0x10, SCHED3: 0x20 } as const;
/** IP_VS_STATE_* (IPVS_DAEMON_ATTR_STATE). */
export const IP_VS_STATE = { NONE: 0, MASTER: 1, BACKUP: 2 } as const;
export const AF_INET = 2;
export const AF_INET6 = 10;
export const IPPROTO = { TCP: 6, UDP: 17, SCTP: 132 } as const;

// ---- attribute tables (ip_vs.h enums; types from the kernel's nla_policy in ip_vs_ctl.c) -------

/** IPVS_STATS_ATTR_*: u32 counters in IPVS_*_ATTR_STATS, all u64 in IPVS_*_ATTR_STATS64. */
function statsTable(wide: boolean): AttrTable {
  const c = wide ? 'u64' : 'u32';
  return [
    { id: 1, key: 'conns', type: c },
    { id: 2, key: 'inpkts', type: c },
    { id: 3, key: 'outpkts', type: c },
    { id: 4, key: 'inbytes', type: 'u64' },
    { id: 5, key: 'outbytes', type: 'u64' },
    { id: 6, key: 'cps', type: c },
    { id: 7, key: 'inpps', type: c },
    { id: 8, key: 'outpps', type: c },
    { id: 9, key: 'inbps', type: c },
    { id: 10, key: 'outbps', type: c },
    // 11 = IPVS_STATS_ATTR_PAD (alignment for the u64s): skipped on decode.
  ];
}
const STATS32 = statsTable(false);
const STATS64 = statsTable(true);

export const SVC_TABLE: AttrTable = [
  { id: 1, key: 'af', type: 'u16' },
  { id: 2, key: 'protocol', type: 'u16' },
  { id: 3, key: 'addr', type: 'binary' }, // union nf_inet_addr: 16 bytes, IPv4 in the first 4
  { id: 4, key: 'port', type: 'be16' },
  { id: 5, key: 'fwmark', type: 'u32' },
  { id: 6, key: 'schedName', type: 'string' },
  { id: 11, key: 'peName', type: 'string' },
  { id: 7, key: 'flags', type: 'flags' },
  { id: 8, key: 'timeout', type: 'u32' },
  // IPv4: the mask as __be32; IPv6: the prefix length as a host-order u32 (ip_vs_ctl.c reads both
  // with nla_get_be32). Kept as raw host-order u32 here; wire-messages.ts handles the family difference.
  { id: 9, key: 'netmask', type: 'u32' },
  { id: 10, key: 'stats', type: 'nested', table: STATS32 },
  { id: 12, key: 'stats64', type: 'nested', table: STATS64 },
];

export const DEST_TABLE: AttrTable = [
  { id: 11, key: 'addrFamily', type: 'u16' },
  { id: 1, key: 'addr', type: 'binary' },
  { id: 2, key: 'port', type: 'be16' },
  { id: 3, key: 'fwdMethod', type: 'u32' },
  { id: 4, key: 'weight', type: 'u32' },
  { id: 13, key: 'tunType', type: 'u8' },
  { id: 14, key: 'tunPort', type: 'be16' },
  { id: 15, key: 'tunFlags', type: 'u16' },
  { id: 5, key: 'uThresh', type: 'u32' },
  { id: 6, key: 'lThresh', type: 'u32' },
  { id: 7, key: 'activeConns', type: 'u32' },
  { id: 8, key: 'inactConns', type: 'u32' },
  { id: 9, key: 'persistConns', type: 'u32' },
  { id: 10, key: 'stats', type: 'nested', table: STATS32 },
  { id: 12, key: 'stats64', type: 'nested', table: STATS64 },
];

export const DAEMON_TABLE: AttrTable = [
  { id: 1, key: 'state', type: 'u32' },
  { id: 2, key: 'mcastIfn', type: 'string' },
  { id: 3, key: 'syncId', type: 'u32' },
  { id: 4, key: 'syncMaxlen', type: 'u16' },
  { id: 7, key: 'mcastPort', type: 'u16' }, // host order, unlike the service ports
  { id: 8, key: 'mcastTtl', type: 'u8' },
  { id: 5, key: 'mcastGroup', type: 'binary' }, // struct in_addr (4 bytes)
  { id: 6, key: 'mcastGroup6', type: 'binary' }, // struct in6_addr (16 bytes)
];

export const INFO_TABLE: AttrTable = [
  { id: 1, key: 'version', type: 'u32' },
  { id: 2, key: 'connTabSize', type: 'u32' },
];

/** IPVS_CMD_ATTR_*: the top level of every IPVS message (GET_INFO replies use INFO_TABLE). */
export const CMD_TABLE: AttrTable = [
  { id: 1, key: 'service', type: 'nested', table: SVC_TABLE },
  { id: 2, key: 'dest', type: 'nested', table: DEST_TABLE },
  { id: 3, key: 'daemon', type: 'nested', table: DAEMON_TABLE },
  { id: 4, key: 'timeoutTcp', type: 'u32' },
  { id: 5, key: 'timeoutTcpFin', type: 'u32' },
  { id: 6, key: 'timeoutUdp', type: 'u32' },
];

// ---- wire message types ----------------------------------------------------------------------

export interface WireStats {
  conns?: number | bigint; inpkts?: number | bigint; outpkts?: number | bigint;
  inbytes?: bigint; outbytes?: bigint;
  cps?: number | bigint; inpps?: number | bigint; outpps?: number | bigint; inbps?: number | bigint; outbps?: number | bigint;
}

export interface WireService {
  af?: number; protocol?: number; addr?: Buffer; port?: number; fwmark?: number;
  schedName?: string; peName?: string; flags?: FlagsValue; timeout?: number; netmask?: number;
  stats?: WireStats; stats64?: WireStats;
}

export interface WireDest {
  addrFamily?: number; addr?: Buffer; port?: number; fwdMethod?: number; weight?: number;
  tunType?: number; tunPort?: number; tunFlags?: number; uThresh?: number; lThresh?: number;
  activeConns?: number; inactConns?: number; persistConns?: number;
  stats?: WireStats; stats64?: WireStats;
}

export interface WireDaemon {
  state?: number; mcastIfn?: string; syncId?: number; syncMaxlen?: number;
  mcastPort?: number; mcastTtl?: number; mcastGroup?: Buffer; mcastGroup6?: Buffer;
}

export interface WireCmdAttrs {
  service?: WireService; dest?: WireDest; daemon?: WireDaemon;
  timeoutTcp?: number; timeoutTcpFin?: number; timeoutUdp?: number;
}

export interface WireInfo { version?: number; connTabSize?: number }

export interface IpvsWireMessage {
  cmd: IpvsCmd;
  /** For SET_INFO (the GET_INFO reply) the attributes are INFO_TABLE's: see `info`. */
  attrs: WireCmdAttrs;
  info?: WireInfo;
  /** Generic netlink version byte (IPVS_GENL_VERSION unless decoding something odd). */
  version?: number;
}

/** The same tables without the stats nests: a dump decoded with it skips them (they are most of a reply). */
const withoutStats = (t: AttrTable): AttrTable => t.filter((f) => f.key !== 'stats' && f.key !== 'stats64');
export const CMD_TABLE_NO_STATS: AttrTable = CMD_TABLE.map((f) =>
  f.key === 'service' || f.key === 'dest' ? { ...f, table: withoutStats(f.table ?? []) } : f);

export interface DecodeOptions {
  /** Decode IPVS_*_ATTR_STATS/STATS64 (default true). */
  stats?: boolean;
}

function attrsTable(cmd: IpvsCmd): AttrTable {
  return cmd === 'SET_INFO' ? INFO_TABLE : CMD_TABLE;
}

export function decodePayload(payload: Buffer, opts: DecodeOptions = {}): IpvsWireMessage {
  const { header, attrs } = parseGenl(payload);
  const cmd = CMD_BY_ID.get(header.cmd);
  if (!cmd) throw new RangeError(`unknown IPVS command ${header.cmd}`);
  const table = cmd !== 'SET_INFO' && opts.stats === false ? CMD_TABLE_NO_STATS : attrsTable(cmd);
  const decoded = decodeAttrs(table, attrs);
  return cmd === 'SET_INFO'
    ? { cmd, version: header.version, attrs: {}, info: decoded as WireInfo }
    : { cmd, version: header.version, attrs: decoded as WireCmdAttrs };
}

/** True for the GET commands sent as dumps (lists), as ipvsadm does. */
export function isDumpCmd(cmd: IpvsCmd, msg: WireCmdAttrs): boolean {
  return (cmd === 'GET_SERVICE' && msg.service === undefined) || cmd === 'GET_DEST' || cmd === 'GET_DAEMON';
}

export interface EncodeOptions {
  /** The IPVS family id (resolved at run time through nlctrl). */
  family: number;
  seq: number;
  pid?: number;
  /** Defaults: REQUEST|ACK, plus DUMP for list requests (see isDumpCmd). */
  flags?: number;
}

/** A whole netlink message: header + genl header + attributes (one allocation: bulk loads make many). */
export function encode(msg: IpvsWireMessage, opts: EncodeOptions): Buffer {
  const flags = opts.flags ?? (NLM_F_REQUEST | NLM_F_ACK | (isDumpCmd(msg.cmd, msg.attrs) ? NLM_F_DUMP : 0));
  const table = attrsTable(msg.cmd);
  const body = (msg.cmd === 'SET_INFO' ? (msg.info ?? {}) : msg.attrs) as AttrObject;
  const len = NLMSG_HDRLEN + GENL_HDRLEN + attrsSize(table, body);
  // allocUnsafe slices a shared pool (one ArrayBuffer per 8 KiB, not one per message: GC cost);
  // zeroed because padding and string terminators rely on it.
  const buf = Buffer.allocUnsafe(len).fill(0);
  buf.writeUInt32LE(len, 0);
  buf.writeUInt16LE(opts.family, 4);
  buf.writeUInt16LE(flags, 6);
  buf.writeUInt32LE(opts.seq >>> 0, 8);
  buf.writeUInt32LE((opts.pid ?? 0) >>> 0, 12);
  buf.writeUInt8(IPVS_CMD[msg.cmd], NLMSG_HDRLEN);
  buf.writeUInt8(msg.version ?? IPVS_GENL_VERSION, NLMSG_HDRLEN + 1);
  writeAttrs(table, body, buf, NLMSG_HDRLEN + GENL_HDRLEN);
  return buf;
}

/** Decodes one IPVS netlink message (as split by parseNlmsgs, or a whole single-message buffer). */
export function decode(m: NlMessage | Buffer, opts: DecodeOptions = {}): IpvsWireMessage & { header: Omit<NlMessage, 'payload'> } {
  const nl = Buffer.isBuffer(m) ? splitOne(m) : m;
  const { payload, ...header } = nl;
  return { ...decodePayload(payload, opts), header };
}

function splitOne(buf: Buffer): NlMessage {
  if (buf.length < 16) throw new RangeError('short netlink message');
  const len = buf.readUInt32LE(0);
  if (len < 16 || len > buf.length) throw new RangeError(`bad netlink length ${len}`);
  return {
    type: buf.readUInt16LE(4), flags: buf.readUInt16LE(6), seq: buf.readUInt32LE(8), pid: buf.readUInt32LE(12),
    payload: buf.subarray(16, len),
  };
}
