import type { FulcrumError } from '../errors.js';

/**
 * Public, kernel-independent IPVS types (what `ipvsadm -Ln` shows). The wire layout lives in the
 * codec; converters between these and the model live beside the reconciler.
 */

export type IpvsFamily = 'inet' | 'inet6';
export type IpvsProtocol = 'tcp' | 'udp' | 'sctp';
/** IP_VS_CONN_F_FWD_MASK values: masq (NAT), local, tunnel, route (DR), bypass. */
export type IpvsForward = 'masq' | 'local' | 'tunnel' | 'route' | 'bypass';
export type IpvsTunnelType = 'ipip' | 'gue' | 'gre';

/** The kernel's identity of a virtual service: address/port/protocol or fwmark, within a family. */
export type IpvsServiceKey =
  | { family: IpvsFamily; protocol: IpvsProtocol; address: string; port: number; fwmark?: undefined }
  | { family: IpvsFamily; fwmark: number; protocol?: undefined; address?: undefined; port?: undefined };

export interface IpvsServiceSpec {
  key: IpvsServiceKey;
  scheduler: string;
  /** IP_VS_SVC_F_* (persistent, hashed, onepacket, sched flags 1-3). */
  flags: number;
  /** Persistence timeout in seconds (0 when not persistent). */
  timeout: number;
  /** IPv4: netmask as a u32 in host order of its dotted form; IPv6: prefix length. */
  netmask: number;
  /** Persistence engine name ("sip"), if any. */
  pe?: string | undefined;
}

export interface IpvsDestSpec {
  address: string;
  port: number;
  /** Address family of the destination (differs from the service only in tunnel mode). */
  family: IpvsFamily;
  forward: IpvsForward;
  weight: number;
  upperThreshold: number;
  lowerThreshold: number;
  tunnelType?: IpvsTunnelType | undefined;
  tunnelPort?: number | undefined;
  tunnelFlags?: number | undefined;
}

export interface IpvsStats {
  connections: bigint;
  packetsIn: bigint;
  packetsOut: bigint;
  bytesIn: bigint;
  bytesOut: bigint;
  cps: bigint;
  inpps: bigint;
  outpps: bigint;
  inbps: bigint;
  outbps: bigint;
}

export interface IpvsService extends IpvsServiceSpec {
  stats?: IpvsStats | undefined;
}

export interface IpvsDest extends IpvsDestSpec {
  activeConnections: number;
  inactiveConnections: number;
  persistentConnections: number;
  stats?: IpvsStats | undefined;
}

export interface IpvsInfo {
  version: string;
  connTableSize: number;
}

export interface IpvsTimeouts {
  tcp: number;
  tcpFin: number;
  udp: number;
}

export interface IpvsSyncDaemon {
  state: 'master' | 'backup';
  interface: string;
  syncId: number;
  /** Optional sync parameters (kernel defaults when omitted): max sync message length, */
  maxLength?: number | undefined;
  /** UDP port, */
  port?: number | undefined;
  /** multicast TTL, */
  ttl?: number | undefined;
  /** and IPv4/IPv6 multicast group. */
  group?: string | undefined;
}

/** Options of the list calls. */
export interface IpvsListOptions {
  /** Decode the 64-bit counters (default true); observers that compare only configuration skip them. */
  stats?: boolean | undefined;
}

/** One operation of a batch: the IpvsClient method name and its arguments. */
export type IpvsOperation =
  | { op: 'addService'; spec: IpvsServiceSpec }
  | { op: 'editService'; spec: IpvsServiceSpec }
  | { op: 'deleteService'; key: IpvsServiceKey }
  | { op: 'addDestination'; key: IpvsServiceKey; dest: IpvsDestSpec }
  | { op: 'editDestination'; key: IpvsServiceKey; dest: IpvsDestSpec }
  | { op: 'deleteDestination'; key: IpvsServiceKey; dest: { address: string; port: number; family: IpvsFamily } };

/** The outcome of one batched operation (a failure carries the kernel's errno, as the single calls do). */
export type IpvsOperationResult = { ok: true } | { ok: false; error: FulcrumError };

/**
 * The one way into IPVS. Implemented over generic netlink (family "IPVS"); a fake implements it
 * for pure tests. Every failure is a KernelError carrying errno; a kernel without IPVS raises
 * FeatureMissingError.
 */
export interface IpvsClient {
  info(): Promise<IpvsInfo>;
  listServices(opts?: IpvsListOptions): Promise<IpvsService[]>;
  getService(key: IpvsServiceKey): Promise<IpvsService | undefined>;
  addService(spec: IpvsServiceSpec): Promise<void>;
  editService(spec: IpvsServiceSpec): Promise<void>;
  deleteService(key: IpvsServiceKey): Promise<void>;
  /** The destinations of a service (empty when the service does not exist). */
  listDestinations(key: IpvsServiceKey, opts?: IpvsListOptions): Promise<IpvsDest[]>;
  addDestination(key: IpvsServiceKey, dest: IpvsDestSpec): Promise<void>;
  editDestination(key: IpvsServiceKey, dest: IpvsDestSpec): Promise<void>;
  deleteDestination(key: IpvsServiceKey, dest: { address: string; port: number; family: IpvsFamily }): Promise<void>;
  /** Flushes every service. Fulcrum itself never calls this on a live node; it is here for tests and tooling. */
  flush(): Promise<void>;
  /** Zeroes counters of one service, or of all when key is omitted. */
  zero(key?: IpvsServiceKey): Promise<void>;
  getTimeouts(): Promise<IpvsTimeouts>;
  setTimeouts(t: IpvsTimeouts): Promise<void>;
  startDaemon(d: IpvsSyncDaemon): Promise<void>;
  stopDaemon(d: Pick<IpvsSyncDaemon, 'state'>): Promise<void>;
  listDaemons(): Promise<IpvsSyncDaemon[]>;
  /**
   * Optional bulk path: runs every operation (pipelined, no promise per operation) and reports each
   * outcome in order; one failing does not stop the others. Clients without it get one call per operation.
   */
  batch?(ops: readonly IpvsOperation[]): Promise<IpvsOperationResult[]>;
  close(): Promise<void>;
}
