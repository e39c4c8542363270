/**
 * Wire messages of the public IPVS types: explicit converters between types.ts and the wire
 * messages of codec.ts, and `ipvsRequest`, the message the client sends for each operation. Pure.
 * (Model services to public specs: model-specs.ts.)
 */
import { bytesToIp, ipToBytes } from '../model/net.js';
import {
  AF_INET, AF_INET6, IPPROTO, IP_VS_CONN_F, IP_VS_STATE, IP_VS_SVC_F, IP_VS_TUNNEL_TYPE,
  type IpvsCmd, type IpvsWireMessage, type WireDaemon, type WireDest, type WireService, type WireStats,
} from './codec.js';
import type {
  IpvsDest, IpvsDestSpec, IpvsFamily, IpvsForward, IpvsProtocol, IpvsService, IpvsServiceKey,
  IpvsServiceSpec, IpvsStats, IpvsSyncDaemon, IpvsTimeouts, IpvsTunnelType,
} from './types.js';

const FAMILY_TO_AF: Record<IpvsFamily, number> = { inet: AF_INET, inet6: AF_INET6 };
const PROTO_TO_NUM: Record<IpvsProtocol, number> = { tcp: IPPROTO.TCP, udp: IPPROTO.UDP, sctp: IPPROTO.SCTP };
const FWD_TO_NUM: Record<IpvsForward, number> = {
  masq: IP_VS_CONN_F.MASQ, local: IP_VS_CONN_F.LOCALNODE, tunnel: IP_VS_CONN_F.TUNNEL,
  route: IP_VS_CONN_F.DROUTE, bypass: IP_VS_CONN_F.BYPASS,
};
const TUN_TO_NUM: Record<IpvsTunnelType, number> = { ipip: IP_VS_TUNNEL_TYPE.IPIP, gue: IP_VS_TUNNEL_TYPE.GUE, gre: IP_VS_TUNNEL_TYPE.GRE };

function invert<K extends string>(r: Record<K, number>): Map<number, K> {
  return new Map(Object.entries(r).map(([k, v]) => [v as number, k as K]));
}
const AF_TO_FAMILY = invert(FAMILY_TO_AF);
const NUM_TO_PROTO = invert(PROTO_TO_NUM);
const NUM_TO_FWD = invert(FWD_TO_NUM);
const NUM_TO_TUN = invert(TUN_TO_NUM);

function lookup<T>(map: Map<number, T>, n: number | undefined, what: string): T {
  const v = n === undefined ? undefined : map.get(n);
  if (v === undefined) throw new RangeError(`kernel reported an unknown ${what} (${String(n)})`);
  return v;
}

// Bulk loads repeat the same few thousand addresses: parsing their text dominates otherwise.
const ADDR_CACHE: Record<IpvsFamily, Map<string, Buffer>> = { inet: new Map(), inet6: new Map() };
const ADDR_CACHE_MAX = 8192;

/** union nf_inet_addr: 16 bytes, an IPv4 address in the first 4. The result is shared: never modify it. */
export function addrToWire(address: string, family: IpvsFamily): Buffer {
  const cache = ADDR_CACHE[family];
  const cached = cache.get(address);
  if (cached) return cached;
  const b = ipToBytes(address);
  if ((family === 'inet') !== (b.length === 4)) throw new TypeError(`address ${address} is not of family ${family}`);
  const out = Buffer.alloc(16);
  b.copy(out);
  if (cache.size >= ADDR_CACHE_MAX) cache.clear();
  cache.set(address, out);
  return out;
}

export function addrFromWire(buf: Buffer | undefined, family: IpvsFamily): string {
  if (!buf || buf.length < (family === 'inet' ? 4 : 16)) throw new RangeError('address attribute missing or short');
  return bytesToIp(buf.subarray(0, family === 'inet' ? 4 : 16));
}

/** Netmask: IPv4 is a __be32 mask (public: host-order number of the dotted form), IPv6 a prefix length. */
function netmaskToWire(netmask: number, family: IpvsFamily): number {
  return family === 'inet' ? bswap32(netmask) : netmask;
}
function netmaskFromWire(raw: number, family: IpvsFamily): number {
  return family === 'inet' ? bswap32(raw) : raw;
}
function bswap32(n: number): number {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b.readUInt32LE(0);
}

/** The attributes that identify a service (all a dest, delete or zero command needs). */
export function serviceKeyToWire(key: IpvsServiceKey): WireService {
  const af = FAMILY_TO_AF[key.family];
  if (key.fwmark !== undefined) return { af, fwmark: key.fwmark };
  return { af, protocol: PROTO_TO_NUM[key.protocol], addr: addrToWire(key.address, key.family), port: key.port };
}

/** A full service, as ipvsadm sends it: flags with an all-ones mask (replace every flag). */
export function serviceSpecToWire(spec: IpvsServiceSpec): WireService {
  return {
    ...serviceKeyToWire(spec.key),
    schedName: spec.scheduler,
    ...(spec.pe ? { peName: spec.pe } : {}),
    flags: { flags: spec.flags >>> 0, mask: 0xffffffff },
    timeout: spec.timeout,
    netmask: netmaskToWire(spec.netmask, spec.key.family),
  };
}

export function serviceFromWire(w: WireService): IpvsService {
  const family = lookup(AF_TO_FAMILY, w.af, 'address family');
  let key: IpvsServiceKey;
  if (w.fwmark) {
    key = { family, fwmark: w.fwmark };
  } else {
    key = { family, protocol: lookup(NUM_TO_PROTO, w.protocol, 'protocol'), address: addrFromWire(w.addr, family), port: w.port ?? 0 };
  }
  const svc: IpvsService = {
    key,
    scheduler: w.schedName ?? '',
    // HASHED is the kernel's own bookkeeping, never part of what a user sets.
    flags: (w.flags?.flags ?? 0) & ~IP_VS_SVC_F.HASHED,
    timeout: w.timeout ?? 0,
    netmask: netmaskFromWire(w.netmask ?? 0, family),
  };
  if (w.peName) svc.pe = w.peName;
  const stats = statsFromWire(w.stats64 ?? w.stats);
  if (stats) svc.stats = stats;
  return svc;
}

export function destToWire(d: IpvsDestSpec): WireDest {
  const tunnel = d.forward === 'tunnel';
  return {
    addrFamily: FAMILY_TO_AF[d.family],
    addr: addrToWire(d.address, d.family),
    port: d.port,
    fwdMethod: FWD_TO_NUM[d.forward],
    weight: d.weight,
    tunType: tunnel ? TUN_TO_NUM[d.tunnelType ?? 'ipip'] : 0,
    tunPort: tunnel ? (d.tunnelPort ?? 0) : 0,
    tunFlags: tunnel ? (d.tunnelFlags ?? 0) : 0,
    uThresh: d.upperThreshold,
    lThresh: d.lowerThreshold,
  };
}

/** Just the identity of a destination (for delete). */
export function destKeyToWire(d: { address: string; port: number; family: IpvsFamily }): WireDest {
  return { addrFamily: FAMILY_TO_AF[d.family], addr: addrToWire(d.address, d.family), port: d.port };
}

/** `serviceFamily` is used when the kernel omits IPVS_DEST_ATTR_ADDR_FAMILY (kernels before 4.4). */
export function destFromWire(w: WireDest, serviceFamily: IpvsFamily): IpvsDest {
  const family = w.addrFamily === undefined ? serviceFamily : lookup(AF_TO_FAMILY, w.addrFamily, 'address family');
  const forward = lookup(NUM_TO_FWD, w.fwdMethod ?? 0, 'forwarding method');
  const d: IpvsDest = {
    address: addrFromWire(w.addr, family),
    port: w.port ?? 0,
    family,
    forward,
    weight: w.weight ?? 0,
    upperThreshold: w.uThresh ?? 0,
    lowerThreshold: w.lThresh ?? 0,
    activeConnections: w.activeConns ?? 0,
    inactiveConnections: w.inactConns ?? 0,
    persistentConnections: w.persistConns ?? 0,
  };
  if (forward === 'tunnel') {
    d.tunnelType = lookup(NUM_TO_TUN, w.tunType ?? 0, 'tunnel type');
    d.tunnelPort = w.tunPort ?? 0;
    d.tunnelFlags = w.tunFlags ?? 0;
  }
  const stats = statsFromWire(w.stats64 ?? w.stats);
  if (stats) d.stats = stats;
  return d;
}

export function statsFromWire(s: WireStats | undefined): IpvsStats | undefined {
  if (!s) return undefined;
  const b = (v: number | bigint | undefined): bigint => BigInt(v ?? 0);
  return {
    connections: b(s.conns), packetsIn: b(s.inpkts), packetsOut: b(s.outpkts), bytesIn: b(s.inbytes), bytesOut: b(s.outbytes),
    cps: b(s.cps), inpps: b(s.inpps), outpps: b(s.outpps), inbps: b(s.inbps), outbps: b(s.outbps),
  };
}

export function timeoutsToWire(t: IpvsTimeouts): IpvsWireMessage {
  return { cmd: 'SET_CONFIG', attrs: { timeoutTcp: t.tcp, timeoutTcpFin: t.tcpFin, timeoutUdp: t.udp } };
}

export function timeoutsFromWire(m: IpvsWireMessage): IpvsTimeouts {
  return { tcp: m.attrs.timeoutTcp ?? 0, tcpFin: m.attrs.timeoutTcpFin ?? 0, udp: m.attrs.timeoutUdp ?? 0 };
}

const STATE_TO_NUM = { master: IP_VS_STATE.MASTER, backup: IP_VS_STATE.BACKUP } as const;

export function daemonToWire(d: IpvsSyncDaemon): WireDaemon {
  const w: WireDaemon = { state: STATE_TO_NUM[d.state], mcastIfn: d.interface, syncId: d.syncId };
  if (d.maxLength !== undefined) w.syncMaxlen = d.maxLength;
  if (d.port !== undefined) w.mcastPort = d.port;
  if (d.ttl !== undefined) w.mcastTtl = d.ttl;
  if (d.group !== undefined) {
    const b = ipToBytes(d.group);
    if (b.length === 4) w.mcastGroup = b; else w.mcastGroup6 = b;
  }
  return w;
}

export function daemonFromWire(w: WireDaemon): IpvsSyncDaemon {
  const state = w.state === IP_VS_STATE.MASTER ? 'master' : w.state === IP_VS_STATE.BACKUP ? 'backup' : undefined;
  if (!state) throw new RangeError(`kernel reported an unknown sync daemon state (${String(w.state)})`);
  const d: IpvsSyncDaemon = { state, interface: w.mcastIfn ?? '', syncId: w.syncId ?? 0 };
  if (w.syncMaxlen !== undefined) d.maxLength = w.syncMaxlen;
  if (w.mcastPort !== undefined) d.port = w.mcastPort;
  if (w.mcastTtl !== undefined) d.ttl = w.mcastTtl;
  if (w.mcastGroup6 !== undefined) d.group = bytesToIp(w.mcastGroup6);
  else if (w.mcastGroup !== undefined) d.group = bytesToIp(w.mcastGroup);
  return d;
}

/** Builds the wire message of a command over a full service spec (add/edit) or its key (delete, zero, get). */
export function serviceMessage(cmd: Extract<IpvsCmd, 'NEW_SERVICE' | 'SET_SERVICE'>, spec: IpvsServiceSpec): IpvsWireMessage;
export function serviceMessage(cmd: Extract<IpvsCmd, 'DEL_SERVICE' | 'GET_SERVICE' | 'ZERO' | 'GET_DEST'>, key: IpvsServiceKey): IpvsWireMessage;
export function serviceMessage(cmd: IpvsCmd, specOrKey: IpvsServiceSpec | IpvsServiceKey): IpvsWireMessage {
  const service = 'key' in specOrKey ? serviceSpecToWire(specOrKey) : serviceKeyToWire(specOrKey);
  return { cmd, attrs: { service } };
}

export function destMessage(cmd: Extract<IpvsCmd, 'NEW_DEST' | 'SET_DEST'>, key: IpvsServiceKey, dest: IpvsDestSpec): IpvsWireMessage {
  return { cmd, attrs: { service: serviceKeyToWire(key), dest: destToWire(dest) } };
}

/**
 * What the client sends for each IpvsClient operation (pure; golden-tested against ipvsadm).
 * Deletes and zero carry only the identity of the object, which is all the kernel reads.
 */
export const ipvsRequest = {
  info: (): IpvsWireMessage => ({ cmd: 'GET_INFO', attrs: {} }),
  listServices: (): IpvsWireMessage => ({ cmd: 'GET_SERVICE', attrs: {} }),
  getService: (key: IpvsServiceKey) => serviceMessage('GET_SERVICE', key),
  addService: (spec: IpvsServiceSpec) => serviceMessage('NEW_SERVICE', spec),
  editService: (spec: IpvsServiceSpec) => serviceMessage('SET_SERVICE', spec),
  deleteService: (key: IpvsServiceKey) => serviceMessage('DEL_SERVICE', key),
  listDestinations: (key: IpvsServiceKey) => serviceMessage('GET_DEST', key),
  addDestination: (key: IpvsServiceKey, d: IpvsDestSpec) => destMessage('NEW_DEST', key, d),
  editDestination: (key: IpvsServiceKey, d: IpvsDestSpec) => destMessage('SET_DEST', key, d),
  deleteDestination: (key: IpvsServiceKey, d: { address: string; port: number; family: IpvsFamily }): IpvsWireMessage =>
    ({ cmd: 'DEL_DEST', attrs: { service: serviceKeyToWire(key), dest: destKeyToWire(d) } }),
  flush: (): IpvsWireMessage => ({ cmd: 'FLUSH', attrs: {} }),
  zero: (key?: IpvsServiceKey): IpvsWireMessage => (key ? serviceMessage('ZERO', key) : { cmd: 'ZERO', attrs: {} }),
  getTimeouts: (): IpvsWireMessage => ({ cmd: 'GET_CONFIG', attrs: {} }),
  setTimeouts: (t: IpvsTimeouts) => timeoutsToWire(t),
  startDaemon: (d: IpvsSyncDaemon): IpvsWireMessage => ({ cmd: 'NEW_DAEMON', attrs: { daemon: daemonToWire(d) } }),
  stopDaemon: (d: Pick<IpvsSyncDaemon, 'state'>): IpvsWireMessage => ({ cmd: 'DEL_DAEMON', attrs: { daemon: { state: STATE_TO_NUM[d.state] } } }),
  listDaemons: (): IpvsWireMessage => ({ cmd: 'GET_DAEMON', attrs: {} }),
} as const;
