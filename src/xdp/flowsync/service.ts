import { readFileSync } from 'node:fs';
import { RingBuffer } from '../../bpf/index.js';
import { bindUdpSocket, type BoundUdpSocket } from '../../net/index.js';
import type { Report } from '../../dataplane/types.js';
import { FulcrumError } from '../../errors.js';
import { canonicalIp } from '../../model/net.js';
import type { XdpSync } from '../../model/xdp.js';
import { u32 } from '../abi.js';
import type { XdpKernel } from '../kernel.js';
import { decodeMessage, encodeMessage, MAX_RECORDS, ReplayWindow, secretFrom, Sequence, type DropReason, type MessageKind } from './codec.js';
import type { FlowSyncMetrics } from './metrics.js';
import { recordFromEvent, type FlowRecord } from './record.js';
import { KernelFlowTable } from './table.js';

export interface PeerStatus {
  address: string;
  sentFlows: number;
  receivedFlows: number;
  keptLocal: number;
  sendErrors: number;
  lastReceivedAt?: string;
  /** Age of the last flows message when it arrived, ms. */
  lagMs?: number;
  snapshot: 'pending' | 'received' | 'timeout';
  snapshotFlows: number;
}

export interface FlowSyncStatus {
  address: string;
  port: number;
  export: boolean;
  ring: { exported: number; lost: number };
  peers: PeerStatus[];
  dropped: Partial<Record<DropReason, number>>;
}

export interface FlowSyncOptions {
  kernel: XdpKernel;
  settings: XdpSync;
  report: Report;
  metrics?: FlowSyncMetrics | undefined;
  /** How often the export ring is drained and new flows are sent, ms. Default 10. */
  pollMs?: number;
  now?: () => number;
}

interface Peer {
  address: string;
  window: ReplayWindow;
  status: PeerStatus;
  serving: boolean;
}

const SNAPSHOT_RETRY_MS = 300;
/**
 * Serving a snapshot: SNAPSHOT_BURST datagrams, then a pause, about 64,000 flows/s, what a receiver
 * inserts (scripts/bench/xdp-flowsync.ts); faster would only overflow its socket buffer.
 */
const SNAPSHOT_BURST = 32;
const SNAPSHOT_PAUSE_MS = 10;
/** Received records held until the dataplane's first reconcile made the VIPs and backends known. */
const MAX_PENDING = 1_000_000;

/**
 * XDP flow sync (docs/ha.md): drains the program's export ring and sends the new flows to every
 * peer; receives the peers' flows into this node's connection table; asks the peers for a snapshot
 * of their tables at start and serves theirs. Never logs: notes go to `report`.
 */
export class FlowSync {
  readonly #key: Buffer;
  readonly #socket: BoundUdpSocket;
  readonly #table: KernelFlowTable;
  readonly #ring: RingBuffer | undefined;
  readonly #peers = new Map<string, Peer>();
  readonly #seq: Sequence;
  readonly #now: () => number;
  readonly #dropped: Partial<Record<DropReason, number>> = {};
  #outgoing: FlowRecord[] = [];
  #timer: NodeJS.Timeout | undefined;
  #retry: NodeJS.Timeout | undefined;
  #tablesReady = false;
  #pending: Array<{ peer: Peer; records: FlowRecord[] }> = [];
  #pendingCount = 0;
  #ringTotals = { exported: 0, lost: 0 };
  #snapshotWaiters: Array<() => void> = [];
  #snapshotDeadline = 0;
  #closed = false;

  private constructor(private readonly o: FlowSyncOptions, key: Buffer, socket: BoundUdpSocket) {
    this.#key = key;
    this.#socket = socket;
    this.#now = o.now ?? Date.now;
    this.#seq = new Sequence(this.#now());
    this.#table = new KernelFlowTable(o.kernel);
    for (const a of o.settings.peers) {
      this.#peers.set(canonicalIp(a), {
        address: a, window: new ReplayWindow(o.settings.maxClockSkewSeconds * 1000), serving: false,
        status: { address: a, sentFlows: 0, receivedFlows: 0, keptLocal: 0, sendErrors: 0, snapshot: 'pending', snapshotFlows: 0 },
      });
      o.metrics?.snapshot.set({ peer: a }, 0);
    }
    this.#ring = o.kernel.flowExport ? RingBuffer.open(o.kernel.maps.flow_events, (ev) => this.#onEvent(ev)) : undefined;
    if (!this.#ring) o.report({ level: 'warn', fields: { pinDir: o.kernel.pinDir }, message: 'the pinned XDP program was loaded without flow export: this node receives flows but sends none until fulcrum agent --cleanup reloads it' });
  }

  /** Reads the secret, binds the socket, starts draining the ring and asks every peer for a snapshot. */
  static async start(o: FlowSyncOptions): Promise<FlowSync> {
    let key: Buffer;
    try {
      key = secretFrom(readFileSync(o.settings.secretFile), 'xdp.sync.secretFile');
    } catch (e) {
      throw new FulcrumError('INVALID_CONFIG', `xdp.sync.secretFile: cannot use ${o.settings.secretFile}: ${(e as Error).message}`, { cause: e });
    }
    let socket: BoundUdpSocket;
    try {
      socket = await bindUdpSocket(o.settings.address, o.settings.port, 4 * 1024 * 1024);
    } catch (e) {
      throw new FulcrumError('INVALID_CONFIG', `xdp.sync: cannot bind UDP ${o.settings.address}:${o.settings.port}: ${(e as Error).message}`, { cause: e });
    }
    let s: FlowSync;
    try {
      s = new FlowSync(o, key, socket);
    } catch (e) {
      await socket.close();
      throw e;
    }
    socket.onMessage((msg, from) => s.#onDatagram(msg, from));
    socket.onError((e) => o.report({ level: 'warn', fields: { err: e }, message: 'xdp flow sync socket error' }));
    s.#timer = setInterval(() => s.#poll(), o.pollMs ?? 10);
    s.#snapshotDeadline = s.#now() + o.settings.snapshotTimeoutSeconds * 1000;
    s.#askSnapshots();
    return s;
  }

  #drop(reason: DropReason, n = 1): void {
    this.#dropped[reason] = (this.#dropped[reason] ?? 0) + n;
    this.o.metrics?.dropped.inc({ reason }, n);
  }

  #onEvent(ev: Buffer): void {
    const r = recordFromEvent(ev);
    if (r) this.#outgoing.push(r);
    else this.#drop('malformed');
  }

  #poll(): void {
    if (this.#closed) return;
    try {
      this.#ring?.consume();
    } catch (e) {
      this.o.report({ level: 'warn', fields: { err: e }, message: 'draining the xdp flow export ring failed' });
    }
    this.#flush();
    this.#readRingCounters();
  }

  #readRingCounters(): void {
    if (!this.#ring) return;
    const per = this.o.kernel.maps.flow_export_stats.lookupPerCpu(u32(0));
    if (!per) return;
    let exported = 0, lost = 0;
    for (const v of per) { exported += Number(v.readBigUInt64LE(0)); lost += Number(v.readBigUInt64LE(8)); }
    if (exported > this.#ringTotals.exported) this.o.metrics?.ringExported.inc(exported - this.#ringTotals.exported);
    if (lost > this.#ringTotals.lost) this.o.metrics?.ringLost.inc(lost - this.#ringTotals.lost);
    this.#ringTotals = { exported, lost };
  }

  #flush(): void {
    while (this.#outgoing.length > 0) {
      const batch = this.#outgoing.splice(0, MAX_RECORDS);
      for (const p of this.#peers.values()) this.#send(p, 'flows', batch);
    }
  }

  #send(p: Peer, kind: MessageKind, records: FlowRecord[]): void {
    const msg = encodeMessage(this.#key, { kind, seq: this.#seq.next(), timestamp: this.#now(), records });
    this.#socket.send(msg, this.o.settings.port, p.address, (e) => {
      if (e) {
        p.status.sendErrors++;
        this.o.metrics?.sendErrors.inc({ peer: p.address });
      }
    });
    p.status.sentFlows += records.length;
    this.o.metrics?.sentFlows.inc({ peer: p.address }, records.length);
    this.o.metrics?.sentMessages.inc({ peer: p.address, kind });
  }

  #askSnapshots(): void {
    if (this.#closed) return;
    const waiting = [...this.#peers.values()].filter((p) => p.status.snapshot === 'pending');
    if (this.#now() >= this.#snapshotDeadline) {
      for (const p of waiting) {
        p.status.snapshot = 'timeout';
        this.o.metrics?.snapshot.set({ peer: p.address }, 2);
      }
      if (waiting.length > 0) this.o.report({ level: 'warn', fields: { peers: waiting.map((p) => p.address) }, message: 'no flow snapshot from these peers in time: this node goes on without their flows' });
      this.#snapshotsSettled();
      return;
    }
    if (waiting.length === 0) { this.#snapshotsSettled(); return; }
    for (const p of waiting) this.#send(p, 'snapshotRequest', []);
    this.#retry = setTimeout(() => this.#askSnapshots(), SNAPSHOT_RETRY_MS);
  }

  #snapshotsSettled(): void {
    for (const w of this.#snapshotWaiters.splice(0)) w();
  }

  /** Resolves once every peer sent its snapshot, or snapshotTimeoutSeconds after start. */
  snapshotsDone(): Promise<void> {
    if ([...this.#peers.values()].every((p) => p.status.snapshot !== 'pending')) return Promise.resolve();
    return new Promise((resolve) => this.#snapshotWaiters.push(resolve));
  }

  /**
   * The dataplane applied a desired state: VIPs and backends may have changed. Received records are
   * held until the first time (before it, this node's VIPs are not in the kernel yet).
   */
  tablesChanged(): void {
    this.#table.invalidate();
    if (this.#tablesReady) return;
    this.#tablesReady = true;
    for (const { peer, records } of this.#pending.splice(0)) this.#apply(peer, records);
    this.#pendingCount = 0;
  }

  #onDatagram(msg: Buffer, from: string): void {
    if (this.#closed) return;
    const peer = this.#peers.get(canonicalIp(from.replace(/^::ffff:(?=\d+\.)/, '')));
    if (!peer) return this.#drop('unknown-peer');
    const d = decodeMessage(this.#key, msg);
    if (!d.ok) return this.#drop(d.reason);
    const m = d.message;
    const fresh = peer.window.check(m.seq, m.timestamp, this.#now());
    if (fresh !== 'ok') return this.#drop(fresh);
    this.o.metrics?.receivedMessages.inc({ peer: peer.address, kind: m.kind });
    peer.status.lastReceivedAt = new Date(this.#now()).toISOString();
    switch (m.kind) {
      case 'flows':
        peer.status.lagMs = Math.max(0, this.#now() - m.timestamp);
        this.o.metrics?.lag.set({ peer: peer.address }, peer.status.lagMs / 1000);
        this.#receive(peer, m.records);
        break;
      case 'snapshot':
        peer.status.snapshotFlows += m.records.length;
        this.#receive(peer, m.records);
        break;
      case 'snapshotEnd':
        if (peer.status.snapshot !== 'received') {
          peer.status.snapshot = 'received';
          this.o.metrics?.snapshot.set({ peer: peer.address }, 1);
          if ([...this.#peers.values()].every((p) => p.status.snapshot !== 'pending')) this.#snapshotsSettled();
        }
        break;
      case 'snapshotRequest':
        void this.#serveSnapshot(peer);
        break;
    }
  }

  #receive(peer: Peer, records: FlowRecord[]): void {
    if (records.length === 0) return;
    if (this.#tablesReady) return this.#apply(peer, records);
    if (this.#pendingCount + records.length > MAX_PENDING) return this.#drop('table-error', records.length);
    this.#pending.push({ peer, records });
    this.#pendingCount += records.length;
  }

  #apply(peer: Peer, records: FlowRecord[]): void {
    let results;
    try {
      results = this.#table.apply(records);
    } catch (e) {
      this.#drop('table-error', records.length);
      this.o.report({ level: 'warn', fields: { err: e, peer: peer.address }, message: 'writing synced flows into the connection table failed' });
      return;
    }
    let applied = 0, kept = 0;
    for (const r of results) {
      if (r === 'applied') applied++;
      else if (r === 'kept-local') kept++;
      else this.#drop(r);
    }
    peer.status.receivedFlows += applied;
    peer.status.keptLocal += kept;
    if (applied) this.o.metrics?.receivedFlows.inc({ peer: peer.address, result: 'applied' }, applied);
    if (kept) this.o.metrics?.receivedFlows.inc({ peer: peer.address, result: 'kept_local' }, kept);
  }

  async #serveSnapshot(peer: Peer): Promise<void> {
    if (peer.serving) return; // a retried request while this one is under way
    peer.serving = true;
    try {
      const flows = this.#table.snapshot();
      for (let i = 0, n = 0; i < flows.length; i += MAX_RECORDS, n++) {
        if (this.#closed) return;
        this.#send(peer, 'snapshot', flows.slice(i, i + MAX_RECORDS));
        if (n % SNAPSHOT_BURST === SNAPSHOT_BURST - 1) await new Promise((r) => setTimeout(r, SNAPSHOT_PAUSE_MS));
      }
      this.#send(peer, 'snapshotEnd', []);
    } catch (e) {
      this.o.report({ level: 'warn', fields: { err: e, peer: peer.address }, message: 'serving a flow snapshot failed' });
    } finally {
      peer.serving = false;
    }
  }

  status(): FlowSyncStatus {
    return {
      address: this.o.settings.address,
      port: this.o.settings.port,
      export: this.#ring !== undefined,
      ring: { ...this.#ringTotals },
      peers: [...this.#peers.values()].map((p) => ({ ...p.status })),
      dropped: { ...this.#dropped },
    };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer) clearInterval(this.#timer);
    if (this.#retry) clearTimeout(this.#retry);
    this.#snapshotsSettled();
    try { this.#ring?.consume(); this.#flush(); } catch { /* closing anyway */ }
    this.#ring?.close();
    await this.#socket.close();
  }
}
