/**
 * IpvsClient over generic netlink: the one module that opens a netlink socket to IPVS.
 *
 * Transport: the `netlink` package's RawNetlinkSocket (NETLINK_GENERIC). Framing, errors and dumps
 * are ours (netlink-wire.ts, codec.ts), so errno arrives as a number, not as text.
 *
 * Pipelining: requests issued in the same tick are packed into one datagram (the kernel runs the
 * messages of a datagram in order), with one ACK per datagram (see Transport), and up to `window`
 * requests are in flight. The window exists because answers wait in the socket's receive buffer:
 * more than it holds are lost (ENOBUFS). Concurrent calls pipeline by themselves; `batch()` is the
 * bulk path (no promise per operation) and reports each outcome.
 */
import { RawNetlinkSocket } from 'netlink';
import { FeatureMissingError, FulcrumError, KernelError } from '../errors.js';
import { IPVS_GENL_NAME, decodePayload, encode, type IpvsCmd, type IpvsWireMessage } from './codec.js';
import { describeKey, ipvsKernelError, opText, type IpvsOpContext } from './errors.js';
import {
  GENL_ID_CTRL, NLMSG_DONE, NLMSG_ERROR, NLMSG_NOOP, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST,
  decodeFamilyId, encodeGetFamily, encodeNlmsg, parseNlmsgErr, parseNlmsgs, type NlMessage,
} from './netlink-wire.js';
import type {
  IpvsClient, IpvsDest, IpvsListOptions, IpvsOperation, IpvsOperationResult, IpvsDestSpec, IpvsFamily, IpvsInfo, IpvsService, IpvsServiceKey, IpvsServiceSpec,
  IpvsSyncDaemon, IpvsTimeouts,
} from './types.js';
import { daemonFromWire, destFromWire, ipvsRequest, serviceFromWire, timeoutsFromWire } from './wire-convert.js';
import { runOperation } from './operation.js';

const NETLINK_GENERIC = 16;
/** Receive-buffer bytes one request may need for its answers: an error echoing the request, or a reply and an ACK (skb truesize included). */
const REPLY_BUDGET = 1536;
/** Commands the kernel answers with an ACK only. */
const NO_REPLY: ReadonlySet<IpvsCmd> = new Set<IpvsCmd>(['NEW_SERVICE', 'SET_SERVICE', 'DEL_SERVICE', 'NEW_DEST', 'SET_DEST', 'DEL_DEST', 'NEW_DAEMON', 'DEL_DAEMON', 'SET_CONFIG', 'ZERO', 'FLUSH']);
const ESRCH = 3;

export interface IpvsNetlinkOptions {
  /**
   * Most requests in flight (default 256), lowered to what the socket receive buffer can answer
   * if every request failed (about 208 with Linux defaults: 416 KiB, 1.5 KiB per answer).
   */
  window?: number;
  /** Extra sockets for destination dumps run in parallel (default 2; 0: everything on one socket). */
  dumpSockets?: number;
  /** Most messages per datagram (default 128). */
  maxBatchMessages?: number;
  /** Largest datagram we send (default 64 KiB, under the default send buffer). */
  maxBatchBytes?: number;
  /** A request without an answer after this long fails with ETIMEDOUT (default 60 s). */
  timeoutMs?: number;
}

export type { IpvsOperation, IpvsOperationResult } from './types.js';

interface Pending {
  ctx: IpvsOpContext;
  replies: NlMessage[];
  done: (error: Error | undefined, replies: NlMessage[]) => void;
  sentAt: number;
  /** Sent without NLM_F_ACK (see Transport): success is inferred from a later message. */
  ackless?: boolean;
}

/**
 * Opens a client: a generic netlink socket and the IPVS family id. A kernel without IPVS raises
 * FeatureMissingError('ipvs'). Library code: it never loads modules (the caller or the OS does).
 */
export async function openIpvsClient(options: IpvsNetlinkOptions = {}): Promise<NetlinkIpvsClient> {
  const transport = new Transport(options);
  try {
    const family = await transport.resolveFamily(IPVS_GENL_NAME);
    return new NetlinkIpvsClient(transport, family, options);
  } catch (e) {
    transport.close();
    throw e;
  }
}

/** What the transport needs of a netlink datagram socket (RawNetlinkSocket; a fake kernel in unit tests). */
export interface DatagramSocket {
  send(data: Buffer, options: { port: number }, callback: (error?: Error & { errno?: number }) => void): void;
  on(event: 'message', listener: (data: Buffer) => void): unknown;
  on(event: 'error', listener: (error: Error & { errno?: number }) => void): unknown;
  getRecvBufferSize(): number;
  ref(): void;
  unref(): void;
  close(): void;
}

interface Queued { seq: number; bytes: Buffer; dump: boolean; noReply: boolean; pending: Pending }

/**
 * Datagram transport: sequence matching, batching, a bounded window, one dump at a time.
 *
 * ACK elision: a request with no reply of its own (add/edit/delete...) is sent without NLM_F_ACK
 * when another message follows it in the same datagram. The kernel runs a datagram's messages in
 * order and always answers an error, so once anything for a later message of that datagram
 * arrives, every earlier ACK-less one without an error has succeeded. One ACK per datagram instead
 * of one per request: receiving datagrams is what costs most here.
 */
export class Transport {
  private readonly socket: DatagramSocket;
  private readonly window: number;
  private readonly maxBatchBytes: number;
  private readonly maxBatchMessages: number;
  /** The window in effect (after the receive-buffer bound), for tools and benchmarks. */
  get effectiveWindow(): number { return this.window; }
  private readonly timeoutMs: number;
  private seq = Math.floor(Math.random() * 0x7fffffff);
  private queue: Queued[] = [];
  private queueHead = 0;
  private readonly inflight = new Map<number, Pending>();
  /** For each in-flight datagram, its sequence numbers in order (keyed by each of them). */
  private readonly datagramOf = new Map<number, number[]>();
  /** Sequence number of the dump in flight: the kernel runs one dump per socket (else EBUSY). */
  private dumpSeq: number | undefined;
  private pumpScheduled = false;
  private watchdog: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(options: IpvsNetlinkOptions, socket?: DatagramSocket) {
    this.window = Math.max(1, options.window ?? 256);
    this.maxBatchBytes = options.maxBatchBytes ?? 64 * 1024;
    this.maxBatchMessages = Math.max(1, Math.min(this.window, options.maxBatchMessages ?? 128));
    this.timeoutMs = options.timeoutMs ?? 60_000;
    // Buffer sizes are capped by net.core.{r,w}mem_max (the kernel doubles what it grants).
    this.socket = socket ?? (new RawNetlinkSocket(NETLINK_GENERIC, { recvBufferSize: 1 << 20, sendBufferSize: 1 << 20 }) as DatagramSocket);
    // Never more in flight than the receive buffer can answer: netlink 0.3.0 aborts the process
    // (an exception thrown in its native receive callback) when the kernel reports ENOBUFS.
    this.window = Math.max(1, Math.min(this.window, Math.floor((this.socket.getRecvBufferSize() * 0.75) / REPLY_BUDGET)));
    this.maxBatchMessages = Math.min(this.maxBatchMessages, this.window);
    // These run inside the addon's native callbacks: an exception escaping them aborts the process.
    this.socket.on('message', (buf: Buffer) => guard(() => this.onDatagram(buf), (e) => this.failAll(e)));
    this.socket.on('error', (err: Error & { errno?: number }) => guard(() => this.failAll(new KernelError('netlink socket', Math.abs(err.errno ?? 5), err.message, { cause: err })), () => undefined));
    this.socket.unref();
  }

  /**
   * Sends one netlink message (payload after the 16-byte header); resolves with its reply messages
   * (none for a plain ACK). `noReply`: the request answers only with an ACK (eligible for elision).
   */
  request(type: number, flags: number, payload: Buffer, ctx: IpvsOpContext, noReply = false): Promise<NlMessage[]> {
    return this.requestMessage(encodeNlmsg({ type, flags, seq: 0, pid: 0, payload }), ctx, noReply);
  }

  /** Like request() with a whole encoded message; its sequence number is written in place. */
  requestMessage(bytes: Buffer, ctx: IpvsOpContext, noReply = false): Promise<NlMessage[]> {
    return new Promise<NlMessage[]>((resolve, reject) => {
      this.submit(bytes, ctx, noReply, (error, replies) => (error ? reject(error) : resolve(replies)));
    });
  }

  /** Callback form (no promise per request: bulk loads). `done` runs exactly once. */
  submit(bytes: Buffer, ctx: IpvsOpContext, noReply: boolean, done: Pending['done']): void {
    if (this.closed) {
      done(new FulcrumError('INTERNAL', `${opText(ctx)}: the IPVS client is closed`), []);
      return;
    }
    const seq = this.nextSeq();
    bytes.writeUInt32LE(seq, 8);
    const dump = (bytes.readUInt16LE(6) & NLM_F_DUMP) === NLM_F_DUMP;
    this.queue.push({ seq, bytes, dump, noReply: noReply && !dump, pending: { ctx, replies: [], done, sentAt: 0 } });
    this.schedulePump();
  }

  /** Requests queued or in flight. */
  get outstanding(): number {
    return this.queued() + this.inflight.size;
  }

  async resolveFamily(name: string): Promise<number> {
    let replies: NlMessage[];
    try {
      replies = await this.request(GENL_ID_CTRL, NLM_F_REQUEST | NLM_F_ACK, encodeGetFamily(name), { kind: 'info', text: () => `resolve generic netlink family ${name}` });
    } catch (e) {
      if (e instanceof KernelError && e.errno === 2) {
        throw new FeatureMissingError('ipvs', `this kernel has no IPVS (generic netlink family "${name}" not found): load the ip_vs module (modprobe ip_vs), or run the agent on a kernel built with CONFIG_IP_VS`, { cause: e });
      }
      throw e;
    }
    const id = replies.map((m) => decodeFamilyId(m.payload)).find((x) => x !== undefined);
    if (id === undefined) throw new FulcrumError('INTERNAL', `nlctrl answered without a family id for ${name}`);
    return id;
  }

  close(): void {
    if (this.closed) return;
    this.failAll(new FulcrumError('INTERNAL', 'the IPVS client was closed with requests in flight'));
    this.closed = true;
    if (this.watchdog) { clearInterval(this.watchdog); this.watchdog = undefined; }
    this.socket.close();
  }

  private nextSeq(): number {
    this.seq = (this.seq % 0xfffffffe) + 1;
    return this.seq;
  }

  private queued(): number {
    return this.queue.length - this.queueHead;
  }

  private schedulePump(): void {
    if (this.pumpScheduled || this.closed) return;
    this.pumpScheduled = true;
    // setImmediate: every request issued in this tick (and every reply read in this poll phase)
    // is seen before we send, so they share datagrams.
    setImmediate(() => { this.pumpScheduled = false; guard(() => this.pump(), (e) => this.failAll(e)); });
  }

  private pump(): void {
    if (this.closed) return;
    // FIFO: a dump waits for the previous dump to finish and everything behind it waits too, so a
    // reply always reflects every request issued before it.
    while (this.queued() > 0 && this.inflight.size < this.window && !(this.queue[this.queueHead]!.dump && this.dumpSeq !== undefined)) {
      const batch: Queued[] = [];
      let bytes = 0;
      while (this.queued() > 0 && this.inflight.size + batch.length < this.window && batch.length < this.maxBatchMessages) {
        const next = this.queue[this.queueHead]!;
        if (batch.length > 0 && bytes + next.bytes.length > this.maxBatchBytes) break;
        if (next.dump && (this.dumpSeq !== undefined || batch.some((b) => b.dump))) break;
        this.queueHead++;
        batch.push(next);
        bytes += next.bytes.length;
      }
      if (this.queueHead > 4096 && this.queueHead * 2 > this.queue.length) {
        this.queue = this.queue.slice(this.queueHead);
        this.queueHead = 0;
      }
      const seqs = batch.map((b) => b.seq);
      const now = Date.now();
      batch.forEach((b, i) => {
        if (b.noReply && i < batch.length - 1) b.bytes.writeUInt16LE(b.bytes.readUInt16LE(6) & ~NLM_F_ACK, 6);
        if (b.dump) this.dumpSeq = b.seq;
        b.pending.sentAt = now;
        b.pending.ackless = b.noReply && i < batch.length - 1;
        this.inflight.set(b.seq, b.pending);
        this.datagramOf.set(b.seq, seqs);
      });
      const data = batch.length === 1 ? batch[0]!.bytes : Buffer.concat(batch.map((b) => b.bytes), bytes);
      const failed = (err?: Error & { errno?: number }): void => {
        if (!err) return;
        const e = new KernelError('netlink send', Math.abs(err.errno ?? 5), err.message, { cause: err });
        for (const s of seqs) this.settle(s, e);
      };
      try {
        this.socket.send(data, { port: 0 }, (err?: Error & { errno?: number }) => guard(() => failed(err), () => undefined));
      } catch (e) {
        failed(e as Error & { errno?: number });
      }
    }
    if (this.inflight.size > 0) {
      this.socket.ref();
      this.watchdog ??= setInterval(() => guard(() => this.expire(), (e) => this.failAll(e)), Math.min(1000, this.timeoutMs)).unref();
    } else {
      this.socket.unref();
      if (this.watchdog) { clearInterval(this.watchdog); this.watchdog = undefined; }
    }
  }

  private onDatagram(buf: Buffer): void {
    if (this.closed) return;
    let msgs: NlMessage[];
    try {
      msgs = parseNlmsgs(buf);
    } catch (e) {
      this.failAll(new FulcrumError('INTERNAL', `malformed netlink datagram from the kernel: ${(e as Error).message}`, { cause: e }));
      return;
    }
    for (const m of msgs) {
      const p = this.inflight.get(m.seq);
      if (!p) continue; // late ACK of a finished dump, or not ours
      this.completeEarlier(m.seq);
      if (m.type === NLMSG_ERROR) {
        const { errno } = parseNlmsgErr(m.payload);
        // An ACK-less request only hears back on error: that error is its answer.
        if (!(p.ackless && errno === 0)) this.settle(m.seq, errno === 0 ? undefined : ipvsKernelError(p.ctx, errno));
      } else if (m.type === NLMSG_DONE) {
        // A dump's DONE may carry the dump's own error as a negative int.
        const err = m.payload.length >= 4 ? Math.abs(m.payload.readInt32LE(0)) : 0;
        this.settle(m.seq, err === 0 ? undefined : ipvsKernelError(p.ctx, err));
      } else if (m.type !== NLMSG_NOOP) {
        p.replies.push(m);
      }
    }
    // A dump waiting for the one that just ended goes out now (list-heavy reads are round trips
    // back to back); everything else waits for the end of this poll phase to share datagrams.
    if (this.queued() > 0 && this.queue[this.queueHead]!.dump && this.dumpSeq === undefined) this.pump();
    else if (this.queued() > 0) this.schedulePump();
    else if (this.inflight.size === 0) this.pump();
  }

  /** Anything heard for `seq` proves every earlier ACK-less request of its datagram succeeded. */
  private completeEarlier(seq: number): void {
    const seqs = this.datagramOf.get(seq);
    if (!seqs) return;
    for (const s of seqs) {
      if (s === seq) break;
      const p = this.inflight.get(s);
      if (p?.ackless) this.settle(s, undefined);
    }
  }

  private settle(seq: number, error: Error | undefined): void {
    const p = this.inflight.get(seq);
    if (!p) return;
    this.inflight.delete(seq);
    this.datagramOf.delete(seq);
    if (seq === this.dumpSeq) this.dumpSeq = undefined;
    p.done(error, p.replies);
  }

  private expire(): void {
    const now = Date.now();
    for (const [seq, p] of this.inflight) {
      if (now - p.sentAt > this.timeoutMs) this.settle(seq, new KernelError(opText(p.ctx), 110, `no answer from the kernel within ${this.timeoutMs} ms`));
    }
    if (this.inflight.size === 0) this.pump();
  }

  private failAll(e: Error): void {
    for (const seq of [...this.inflight.keys()]) this.settle(seq, e);
    const rest = this.queue.slice(this.queueHead);
    this.queue = [];
    this.queueHead = 0;
    for (const q of rest) q.pending.done(e, []);
  }
}

/** Runs f; an exception goes to onError instead of up into a native callback (which would abort). */
function guard(f: () => void, onError: (e: Error) => void): void {
  try {
    f();
  } catch (e) {
    try { onError(e instanceof Error ? e : new Error(String(e))); } catch { /* nothing left to tell */ }
  }
}

export class NetlinkIpvsClient implements IpvsClient {
  /** Extra sockets that run destination dumps side by side (the kernel runs one dump per socket). */
  private readonly dumpers: Transport[] = [];
  private readonly maxDumpers: number;

  constructor(private readonly transport: Transport, readonly familyId: number, private readonly options: IpvsNetlinkOptions = {}) {
    this.maxDumpers = Math.max(0, options.dumpSockets ?? 2);
  }

  /**
   * Where a destination dump goes: the main socket while changes are outstanding on it (FIFO keeps
   * the list after them), else the least busy extra socket, so that many lists run in parallel.
   */
  private dumpTransport(): Transport {
    if (this.maxDumpers === 0 || this.transport.outstanding > 0) return this.transport;
    let best: Transport | undefined;
    for (const t of this.dumpers) if (!best || t.outstanding < best.outstanding) best = t;
    if ((!best || best.outstanding > 0) && this.dumpers.length < this.maxDumpers) {
      best = new Transport(this.options);
      this.dumpers.push(best);
    }
    return best ?? this.transport;
  }

  /** Requests in flight at most (bounded by the socket receive buffer). */
  get window(): number { return this.transport.effectiveWindow; }

  private async send(msg: IpvsWireMessage, ctx: IpvsOpContext, opts: IpvsListOptions = {}, via: Transport = this.transport): Promise<IpvsWireMessage[]> {
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
    await this.send(ipvsRequest.addService(spec), { kind: 'addService', text: () => `add service ${describeKey(spec.key)}`, scheduler: spec.scheduler, pe: spec.pe });
  }

  async editService(spec: IpvsServiceSpec): Promise<void> {
    await this.send(ipvsRequest.editService(spec), { kind: 'editService', text: () => `edit service ${describeKey(spec.key)}`, scheduler: spec.scheduler, pe: spec.pe });
  }

  async deleteService(key: IpvsServiceKey): Promise<void> {
    await this.send(ipvsRequest.deleteService(key), { kind: 'deleteService', text: () => `delete service ${describeKey(key)}` });
  }

  /** The destinations of a service; empty for a service that does not exist (the kernel's dump is empty). */
  async listDestinations(key: IpvsServiceKey, opts: IpvsListOptions = {}): Promise<IpvsDest[]> {
    const rs = await this.send(ipvsRequest.listDestinations(key), { kind: 'listDestinations', text: () => `list destinations of ${describeKey(key)}` }, opts, this.dumpTransport());
    return rs.flatMap((m) => (m.attrs.dest ? [destFromWire(m.attrs.dest, key.family)] : []));
  }

  async addDestination(key: IpvsServiceKey, dest: IpvsDestSpec): Promise<void> {
    await this.send(ipvsRequest.addDestination(key, dest), { kind: 'addDestination', text: () => `add destination ${endpoint(dest)} to ${describeKey(key)}` });
  }

  async editDestination(key: IpvsServiceKey, dest: IpvsDestSpec): Promise<void> {
    await this.send(ipvsRequest.editDestination(key, dest), { kind: 'editDestination', text: () => `edit destination ${endpoint(dest)} of ${describeKey(key)}` });
  }

  async deleteDestination(key: IpvsServiceKey, dest: { address: string; port: number; family: IpvsFamily }): Promise<void> {
    await this.send(ipvsRequest.deleteDestination(key, dest), { kind: 'deleteDestination', text: () => `delete destination ${endpoint(dest)} of ${describeKey(key)}` });
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
            msg = this.operationMessage(o);
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

  private operationMessage(o: IpvsOperation): IpvsWireMessage {
    switch (o.op) {
      case 'addService': return ipvsRequest.addService(o.spec);
      case 'editService': return ipvsRequest.editService(o.spec);
      case 'deleteService': return ipvsRequest.deleteService(o.key);
      case 'addDestination': return ipvsRequest.addDestination(o.key, o.dest);
      case 'editDestination': return ipvsRequest.editDestination(o.key, o.dest);
      case 'deleteDestination': return ipvsRequest.deleteDestination(o.key, o.dest);
    }
  }

  run(o: IpvsOperation): Promise<void> {
    return runOperation(this, o);
  }

  async close(): Promise<void> {
    this.transport.close();
    for (const t of this.dumpers.splice(0)) t.close();
  }
}

const OK: IpvsOperationResult = Object.freeze({ ok: true });

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
