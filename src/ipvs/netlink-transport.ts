/**
 * The generic netlink socket under the IPVS client: the one IPVS module that imports `netlink`.
 *
 * The socket is the `netlink` package's RawNetlinkSocket (NETLINK_GENERIC); framing, errors and
 * dumps are ours (netlink-wire.ts), so errno arrives as a number, not as text.
 *
 * Pipelining: requests issued in the same tick are packed into one datagram (the kernel runs the
 * messages of a datagram in order), with one ACK per datagram (see NetlinkTransport), and up to
 * `window` requests are in flight. The window exists because answers wait in the socket's receive
 * buffer: more than it holds are lost (ENOBUFS).
 */
import { RawNetlinkSocket } from 'netlink';
import { FulcrumError, KernelError } from '../errors.js';
import { ipvsKernelError, opText, type IpvsOpContext } from './errors.js';
import {
  GENL_ID_CTRL, NLMSG_DONE, NLMSG_ERROR, NLMSG_NOOP, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST,
  decodeFamilyId, encodeGetFamily, encodeNlmsg, parseNlmsgErr, parseNlmsgs, type NlMessage,
} from './netlink-wire.js';

const NETLINK_GENERIC = 16;
/** Receive-buffer bytes one request may need for its answers: an error echoing the request, or a reply and an ACK (skb truesize included). */
const REPLY_BUDGET = 1536;

export interface NetlinkTransportOptions {
  /**
   * Most requests in flight (default 256), lowered to what the socket receive buffer can answer
   * if every request failed (about 208 with Linux defaults: 416 KiB, 1.5 KiB per answer).
   */
  window?: number;
  /** Most messages per datagram (default 128). */
  maxBatchMessages?: number;
  /** Largest datagram we send (default 64 KiB, under the default send buffer). */
  maxBatchBytes?: number;
  /** A request without an answer after this long fails with ETIMEDOUT (default 60 s). */
  timeoutMs?: number;
}

interface Pending {
  ctx: IpvsOpContext;
  replies: NlMessage[];
  done: (error: Error | undefined, replies: NlMessage[]) => void;
  sentAt: number;
  /** Sent without NLM_F_ACK (see NetlinkTransport): success is inferred from a later message. */
  ackless?: boolean;
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
export class NetlinkTransport {
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

  constructor(options: NetlinkTransportOptions = {}, socket?: DatagramSocket) {
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

  /** The id of a generic netlink family; a family the kernel lacks fails with KernelError ENOENT. */
  async resolveFamily(name: string): Promise<number> {
    const replies = await this.request(GENL_ID_CTRL, NLM_F_REQUEST | NLM_F_ACK, encodeGetFamily(name), { kind: 'info', text: () => `resolve generic netlink family ${name}` });
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
