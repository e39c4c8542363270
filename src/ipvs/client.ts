/**
 * IpvsClient over generic netlink: each IPVS command as a request on a NetlinkTransport
 * (netlink-transport.ts, the socket), its wire message built and its replies read back by
 * wire-messages.ts. Concurrent calls pipeline by themselves; `batch()` is the bulk path (no
 * promise per operation) and reports each outcome.
 */
import { FeatureMissingError, FulcrumError, KernelError } from '../errors.js';
import { IPVS_GENL_NAME, decodePayload, encode, type IpvsCmd, type IpvsWireMessage } from './codec.js';
import { describeKey, type IpvsOpContext } from './errors.js';
import { NetlinkTransport, type NetlinkTransportOptions } from './netlink-transport.js';
import type {
  IpvsClient, IpvsDest, IpvsListOptions, IpvsOperation, IpvsOperationResult, IpvsDestSpec, IpvsFamily, IpvsInfo, IpvsService, IpvsServiceKey, IpvsServiceSpec,
  IpvsSyncDaemon, IpvsTimeouts,
} from './types.js';
import { daemonFromWire, destFromWire, ipvsRequest, serviceFromWire, timeoutsFromWire } from './wire-messages.js';

/** Commands the kernel answers with an ACK only. */
const NO_REPLY: ReadonlySet<IpvsCmd> = new Set<IpvsCmd>(['NEW_SERVICE', 'SET_SERVICE', 'DEL_SERVICE', 'NEW_DEST', 'SET_DEST', 'DEL_DEST', 'NEW_DAEMON', 'DEL_DAEMON', 'SET_CONFIG', 'ZERO', 'FLUSH']);
const ENOENT = 2, ESRCH = 3;

export interface IpvsNetlinkOptions extends NetlinkTransportOptions {
  /** Extra sockets for destination dumps run in parallel (default 2; 0: everything on one socket). */
  dumpSockets?: number;
}

/**
 * Opens the kernel's IPVS: a generic netlink socket and the IPVS family id. A kernel without IPVS
 * raises FeatureMissingError('ipvs'). Library code: it never loads modules (the caller or the OS does).
 */
export async function openIpvsClient(options: IpvsNetlinkOptions = {}): Promise<NetlinkIpvsClient> {
  const transport = new NetlinkTransport(options);
  try {
    let family: number;
    try {
      family = await transport.resolveFamily(IPVS_GENL_NAME);
    } catch (e) {
      if (e instanceof KernelError && e.errno === ENOENT) {
        throw new FeatureMissingError('ipvs', `this kernel has no IPVS (generic netlink family "${IPVS_GENL_NAME}" not found): load the ip_vs module (modprobe ip_vs), or run the agent on a kernel built with CONFIG_IP_VS`, { cause: e });
      }
      throw e;
    }
    return new NetlinkIpvsClient(transport, family, options);
  } catch (e) {
    transport.close();
    throw e;
  }
}

export class NetlinkIpvsClient implements IpvsClient {
  /** Extra sockets that run destination dumps side by side (the kernel runs one dump per socket). */
  private readonly dumpers: NetlinkTransport[] = [];
  private readonly maxDumpers: number;

  constructor(private readonly transport: NetlinkTransport, readonly familyId: number, private readonly options: IpvsNetlinkOptions = {}) {
    this.maxDumpers = Math.max(0, options.dumpSockets ?? 2);
  }

  /**
   * Where a destination dump goes: the main socket while changes are outstanding on it (FIFO keeps
   * the list after them), else the least busy extra socket, so that many lists run in parallel.
   */
  private dumpTransport(): NetlinkTransport {
    if (this.maxDumpers === 0 || this.transport.outstanding > 0) return this.transport;
    let best: NetlinkTransport | undefined;
    for (const t of this.dumpers) if (!best || t.outstanding < best.outstanding) best = t;
    if ((!best || best.outstanding > 0) && this.dumpers.length < this.maxDumpers) {
      best = new NetlinkTransport(this.options);
      this.dumpers.push(best);
    }
    return best ?? this.transport;
  }

  /** Requests in flight at most (bounded by the socket receive buffer). */
  get window(): number { return this.transport.effectiveWindow; }

  private async send(msg: IpvsWireMessage, ctx: IpvsOpContext, opts: IpvsListOptions = {}, via: NetlinkTransport = this.transport): Promise<IpvsWireMessage[]> {
    const replies = await via.requestMessage(encode(msg, { family: this.familyId, seq: 0 }), ctx, NO_REPLY.has(msg.cmd));
    const out: IpvsWireMessage[] = [];
    for (const m of replies) if (m.type === this.familyId) out.push(decodePayload(m.payload, opts));
    return out;
  }

  async info(): Promise<IpvsInfo> {
    const [r] = await this.send(ipvsRequest.info(), { kind: 'info', text: 'get IPVS info' });
    const v = r?.info?.version ?? 0;
    return { version: `${(v >> 16) & 0xff}.${(v >> 8) & 0xff}.${v & 0xff}`, connTableSize: r?.info?.connTabSize ?? 0 };
  }

  /** All services; `{ stats: false }` skips decoding counters (faster for a reconciler's observe). */
  async listServices(opts: IpvsListOptions = {}): Promise<IpvsService[]> {
    const rs = await this.send(ipvsRequest.listServices(), { kind: 'listServices', text: 'list services' }, opts);
    return rs.flatMap((m) => (m.attrs.service ? [serviceFromWire(m.attrs.service)] : []));
  }

  async getService(key: IpvsServiceKey): Promise<IpvsService | undefined> {
    try {
      const [r] = await this.send(ipvsRequest.getService(key), { kind: 'getService', text: () => `get service ${describeKey(key)}` });
      return r?.attrs.service ? serviceFromWire(r.attrs.service) : undefined;
    } catch (e) {
      if (e instanceof KernelError && e.errno === ESRCH) return undefined;
      throw e;
    }
  }

  async addService(spec: IpvsServiceSpec): Promise<void> {
    await this.change({ op: 'addService', spec });
  }

  async editService(spec: IpvsServiceSpec): Promise<void> {
    await this.change({ op: 'editService', spec });
  }

  async deleteService(key: IpvsServiceKey): Promise<void> {
    await this.change({ op: 'deleteService', key });
  }

  /** The destinations of a service; empty for a service that does not exist (the kernel's dump is empty). */
  async listDestinations(key: IpvsServiceKey, opts: IpvsListOptions = {}): Promise<IpvsDest[]> {
    const rs = await this.send(ipvsRequest.listDestinations(key), { kind: 'listDestinations', text: () => `list destinations of ${describeKey(key)}` }, opts, this.dumpTransport());
    return rs.flatMap((m) => (m.attrs.dest ? [destFromWire(m.attrs.dest, key.family)] : []));
  }

  async addDestination(key: IpvsServiceKey, dest: IpvsDestSpec): Promise<void> {
    await this.change({ op: 'addDestination', key, dest });
  }

  async editDestination(key: IpvsServiceKey, dest: IpvsDestSpec): Promise<void> {
    await this.change({ op: 'editDestination', key, dest });
  }

  async deleteDestination(key: IpvsServiceKey, dest: { address: string; port: number; family: IpvsFamily }): Promise<void> {
    await this.change({ op: 'deleteDestination', key, dest });
  }

  async flush(): Promise<void> {
    await this.send(ipvsRequest.flush(), { kind: 'flush', text: 'flush IPVS' });
  }

  async zero(key?: IpvsServiceKey): Promise<void> {
    await this.send(ipvsRequest.zero(key), { kind: 'zero', text: key ? `zero counters of ${describeKey(key)}` : 'zero all counters' });
  }

  async getTimeouts(): Promise<IpvsTimeouts> {
    const [r] = await this.send(ipvsRequest.getTimeouts(), { kind: 'getTimeouts', text: 'get timeouts' });
    if (!r) throw new FulcrumError('INTERNAL', 'get timeouts: the kernel sent no reply');
    return timeoutsFromWire(r);
  }

  /** Sets the TCP, TCP FIN and UDP timeouts in seconds; 0 leaves a value unchanged (kernel rule). */
  async setTimeouts(t: IpvsTimeouts): Promise<void> {
    await this.send(ipvsRequest.setTimeouts(t), { kind: 'setTimeouts', text: 'set timeouts' });
  }

  async startDaemon(d: IpvsSyncDaemon): Promise<void> {
    await this.send(ipvsRequest.startDaemon(d), { kind: 'startDaemon', text: () => `start ${d.state} sync daemon on ${d.interface}` });
  }

  async stopDaemon(d: Pick<IpvsSyncDaemon, 'state'>): Promise<void> {
    await this.send(ipvsRequest.stopDaemon(d), { kind: 'stopDaemon', text: () => `stop ${d.state} sync daemon` });
  }

  async listDaemons(): Promise<IpvsSyncDaemon[]> {
    const rs = await this.send(ipvsRequest.listDaemons(), { kind: 'listDaemons', text: 'list sync daemons' });
    return rs.flatMap((m) => (m.attrs.daemon ? [daemonFromWire(m.attrs.daemon)] : []));
  }

  /**
   * Runs every operation, pipelined, and reports each outcome in order (one failing does not stop
   * the others: the kernel runs each message of a datagram independently).
   */
  async batch(ops: readonly IpvsOperation[]): Promise<IpvsOperationResult[]> {
    const results = new Array<IpvsOperationResult>(ops.length);
    if (ops.length === 0) return results;
    // Encodes lazily, as the window drains: no promise per operation and little live garbage, which
    // is what bulk loads of 100,000 destinations spend their time on otherwise.
    const high = this.transport.effectiveWindow * 2;
    return new Promise((resolve) => {
      let next = 0;
      let left = ops.length;
      let filling = false;
      const fill = (): void => {
        if (filling) return; // re-entered from a callback run synchronously: the loop below goes on
        filling = true;
        while (next < ops.length && this.transport.outstanding < high) {
          const i = next++;
          const o = ops[i]!;
          let msg: IpvsWireMessage;
          try {
            msg = operationMessage(o);
          } catch (e) {
            results[i] = { ok: false, error: new FulcrumError('INVALID_REQUEST', `${o.op}: ${(e as Error).message}`, { cause: e }) };
            if (--left === 0) resolve(results);
            continue;
          }
          this.transport.submit(encode(msg, { family: this.familyId, seq: 0 }), operationContext(o), true, (error) => {
            results[i] = error ? { ok: false, error: asFulcrumError(error) } : OK;
            if (--left === 0) resolve(results);
            else if (next < ops.length) fill();
          });
        }
        filling = false;
      };
      fill();
    });
  }

  /** One change with a promise: the message and error context that batch() uses for it. */
  private async change(o: IpvsOperation): Promise<void> {
    await this.send(operationMessage(o), operationContext(o));
  }

  async close(): Promise<void> {
    this.transport.close();
    for (const t of this.dumpers.splice(0)) t.close();
  }
}

const OK: IpvsOperationResult = Object.freeze({ ok: true });

function operationMessage(o: IpvsOperation): IpvsWireMessage {
  switch (o.op) {
    case 'addService': return ipvsRequest.addService(o.spec);
    case 'editService': return ipvsRequest.editService(o.spec);
    case 'deleteService': return ipvsRequest.deleteService(o.key);
    case 'addDestination': return ipvsRequest.addDestination(o.key, o.dest);
    case 'editDestination': return ipvsRequest.editDestination(o.key, o.dest);
    case 'deleteDestination': return ipvsRequest.deleteDestination(o.key, o.dest);
  }
}

function operationContext(o: IpvsOperation): IpvsOpContext {
  switch (o.op) {
    case 'addService': return { kind: o.op, text: () => `add service ${describeKey(o.spec.key)}`, scheduler: o.spec.scheduler, pe: o.spec.pe };
    case 'editService': return { kind: o.op, text: () => `edit service ${describeKey(o.spec.key)}`, scheduler: o.spec.scheduler, pe: o.spec.pe };
    case 'deleteService': return { kind: o.op, text: () => `delete service ${describeKey(o.key)}` };
    case 'addDestination': return { kind: o.op, text: () => `add destination ${endpoint(o.dest)} to ${describeKey(o.key)}` };
    case 'editDestination': return { kind: o.op, text: () => `edit destination ${endpoint(o.dest)} of ${describeKey(o.key)}` };
    case 'deleteDestination': return { kind: o.op, text: () => `delete destination ${endpoint(o.dest)} of ${describeKey(o.key)}` };
  }
}

function endpoint(d: { address: string; port: number; family: IpvsFamily }): string {
  return d.family === 'inet6' ? `[${d.address}]:${d.port}` : `${d.address}:${d.port}`;
}

function asFulcrumError(e: unknown): FulcrumError {
  return e instanceof FulcrumError ? e : new FulcrumError('INTERNAL', String((e as Error)?.message ?? e), { cause: e });
}
