import { bytesToIp, ipToBytes, familyOf, type Family } from '../../model/net.js';
import { ENUMS, IPPROTO, STRUCTS } from '../abi.js';

/**
 * One synced flow: the client's 5-tuple to a VIP and the backend it is on, by identity (address and
 * port), never by slot: slots differ between nodes, and the receiving node checks the backend
 * against its own set.
 */
export interface FlowRecord {
  family: Family;
  protocol: 'tcp' | 'udp';
  mode: 'nat' | 'dr';
  client: string;
  clientPort: number;
  vip: string;
  vipPort: number;
  backend: string;
  backendPort: number;
}

/** Bytes of a record on the wire. */
export const RECORD_BYTES = 60;

const AF = ENUMS.fl_family;

function familyByte(f: Family): number {
  return f === 'inet' ? AF.FL_FAMILY_INET : AF.FL_FAMILY_INET6;
}

/** Record layout: family, proto, mode, 0, client[16], client port, vip port, vip[16], backend[16], backend port, 0. */
export function encodeRecord(r: FlowRecord, out: Buffer, at: number): void {
  out.fill(0, at, at + RECORD_BYTES);
  out[at] = familyByte(r.family);
  out[at + 1] = IPPROTO[r.protocol];
  out[at + 2] = r.mode === 'dr' ? 1 : 0;
  out.set(ipToBytes(r.client), at + 4);
  out.writeUInt16BE(r.clientPort, at + 20);
  out.writeUInt16BE(r.vipPort, at + 22);
  out.set(ipToBytes(r.vip), at + 24);
  out.set(ipToBytes(r.backend), at + 40);
  out.writeUInt16BE(r.backendPort, at + 56);
}

function addrAt(b: Buffer, at: number, family: Family): string | undefined {
  const n = family === 'inet' ? 4 : 16;
  for (let i = at + n; i < at + 16; i++) if (b[i] !== 0) return undefined; // IPv4 in the first 4 bytes, the rest zero
  const ip = bytesToIp(b.subarray(at, at + n));
  return familyOf(ip) === family ? ip : undefined;
}

/** The record at `at`, or undefined when any field is out of range (family, protocol, mode, padding, zero ports). */
export function decodeRecord(b: Buffer, at: number): FlowRecord | undefined {
  const fam = b[at];
  const family: Family | undefined = fam === AF.FL_FAMILY_INET ? 'inet' : fam === AF.FL_FAMILY_INET6 ? 'inet6' : undefined;
  if (!family) return undefined;
  const proto = b[at + 1];
  const protocol = proto === IPPROTO.tcp ? 'tcp' : proto === IPPROTO.udp ? 'udp' : undefined;
  const modeByte = b[at + 2];
  if (!protocol || (modeByte !== 0 && modeByte !== 1) || b[at + 3] !== 0 || b[at + 58] !== 0 || b[at + 59] !== 0) return undefined;
  const client = addrAt(b, at + 4, family), vip = addrAt(b, at + 24, family), backend = addrAt(b, at + 40, family);
  const clientPort = b.readUInt16BE(at + 20), vipPort = b.readUInt16BE(at + 22), backendPort = b.readUInt16BE(at + 56);
  if (!client || !vip || !backend || clientPort === 0 || vipPort === 0) return undefined;
  return { family, protocol, mode: modeByte === 1 ? 'dr' : 'nat', client, clientPort, vip, vipPort, backend, backendPort };
}

/** A record of the program's flow_events ring (struct fl_flow_event); undefined for one this build does not understand. */
export function recordFromEvent(ev: Buffer): FlowRecord | undefined {
  const s = STRUCTS.fl_flow_event, k = STRUCTS.fl_flow_key;
  if (ev.length < s.size) return undefined;
  const fam = ev[k.fields.family.offset];
  const family: Family | undefined = fam === AF.FL_FAMILY_INET ? 'inet' : fam === AF.FL_FAMILY_INET6 ? 'inet6' : undefined;
  const proto = ev[k.fields.proto.offset];
  const protocol = proto === IPPROTO.tcp ? 'tcp' : proto === IPPROTO.udp ? 'udp' : undefined;
  if (!family || !protocol) return undefined;
  const n = family === 'inet' ? 4 : 16;
  const ip = (off: number) => bytesToIp(ev.subarray(off, off + n));
  return {
    family, protocol,
    mode: ev[s.fields.mode.offset] === ENUMS.fl_mode.FL_MODE_DR ? 'dr' : 'nat',
    client: ip(k.fields.src.offset), clientPort: ev.readUInt16BE(k.fields.sport.offset),
    vip: ip(k.fields.dst.offset), vipPort: ev.readUInt16BE(k.fields.dport.offset),
    backend: ip(s.fields.backend_addr.offset), backendPort: ev.readUInt16BE(s.fields.backend_port.offset),
  };
}
