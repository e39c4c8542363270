import { createHmac, timingSafeEqual } from 'node:crypto';
import { decodeRecord, encodeRecord, RECORD_BYTES, type FlowRecord } from './record.js';

/**
 * The flow sync wire format (docs/ha.md, "XDP flow sync"), one UDP datagram per message:
 *
 *   0  magic "FLSY"      4  version (1)      5  type      6  record count (u16)
 *   8  reserved (0)     12  sequence (u64)  20  timestamp, ms since the epoch (u64)
 *  28  records (60 bytes each)              end - 32  HMAC-SHA256 over everything before it
 *
 * All integers big-endian. Types: flows (new flows of the sender), snapshot (flows of the sender's
 * table, asked for), snapshot-request (no records), snapshot-end (no records; ends a snapshot).
 * The decoder is strict: any length, field or MAC that is not exactly right drops the message with
 * a reason (DropReason), which the receiver counts.
 */

export const MAGIC = 0x464c5359; // "FLSY"
export const VERSION = 1;
export const HEADER_BYTES = 28;
export const MAC_BYTES = 32;
/** Records per datagram: 28 + 20 x 60 + 32 = 1260 bytes, under any usual MTU. */
export const MAX_RECORDS = 20;

export const MessageType = { flows: 1, snapshotRequest: 2, snapshot: 3, snapshotEnd: 4 } as const;
export type MessageKind = keyof typeof MessageType;
const KIND_OF = new Map<number, MessageKind>(Object.entries(MessageType).map(([k, v]) => [v, k as MessageKind]));

export interface Message {
  kind: MessageKind;
  seq: bigint;
  /** Sender's clock, ms since the epoch. */
  timestamp: number;
  records: FlowRecord[];
}

/** Why a datagram or a record was dropped (the label of fulcrum_xdp_sync_dropped_total). */
export type DropReason =
  | 'truncated' | 'bad-magic' | 'bad-version' | 'bad-type' | 'bad-length' | 'bad-mac' | 'malformed'
  | 'replayed' | 'stale' | 'unknown-peer' | 'unknown-vip' | 'unknown-backend' | 'table-error';

export type Decoded = { ok: true; message: Message } | { ok: false; reason: DropReason };

export function encodeMessage(key: Buffer, m: Message): Buffer {
  if (m.records.length > MAX_RECORDS) throw new RangeError(`${m.records.length} records in one message (at most ${MAX_RECORDS})`);
  if ((m.kind === 'snapshotRequest' || m.kind === 'snapshotEnd') && m.records.length > 0) throw new RangeError(`a ${m.kind} message carries no records`);
  const body = HEADER_BYTES + m.records.length * RECORD_BYTES;
  const b = Buffer.alloc(body + MAC_BYTES);
  b.writeUInt32BE(MAGIC, 0);
  b[4] = VERSION;
  b[5] = MessageType[m.kind];
  b.writeUInt16BE(m.records.length, 6);
  b.writeBigUInt64BE(m.seq, 12);
  b.writeBigUInt64BE(BigInt(Math.max(0, Math.floor(m.timestamp))), 20);
  m.records.forEach((r, i) => encodeRecord(r, b, HEADER_BYTES + i * RECORD_BYTES));
  createHmac('sha256', key).update(b.subarray(0, body)).digest().copy(b, body);
  return b;
}

/** Checks framing, then the MAC, then every record; replay and clock checks are the receiver's (ReplayWindow). */
export function decodeMessage(key: Buffer, b: Buffer): Decoded {
  if (b.length < HEADER_BYTES + MAC_BYTES) return { ok: false, reason: 'truncated' };
  if (b.readUInt32BE(0) !== MAGIC) return { ok: false, reason: 'bad-magic' };
  if (b[4] !== VERSION) return { ok: false, reason: 'bad-version' };
  const kind = KIND_OF.get(b[5]!);
  if (!kind) return { ok: false, reason: 'bad-type' };
  const count = b.readUInt16BE(6);
  const body = HEADER_BYTES + count * RECORD_BYTES;
  if (b.length < body + MAC_BYTES) return { ok: false, reason: 'truncated' };
  if (b.length !== body + MAC_BYTES || count > MAX_RECORDS || b.readUInt32BE(8) !== 0) return { ok: false, reason: 'bad-length' };
  const mac = createHmac('sha256', key).update(b.subarray(0, body)).digest();
  if (!timingSafeEqual(mac, b.subarray(body))) return { ok: false, reason: 'bad-mac' };
  if ((kind === 'snapshotRequest' || kind === 'snapshotEnd') && count > 0) return { ok: false, reason: 'malformed' };
  const records: FlowRecord[] = [];
  for (let i = 0; i < count; i++) {
    const r = decodeRecord(b, HEADER_BYTES + i * RECORD_BYTES);
    if (!r) return { ok: false, reason: 'malformed' };
    records.push(r);
  }
  const ts = b.readBigUInt64BE(20);
  if (ts > BigInt(Number.MAX_SAFE_INTEGER)) return { ok: false, reason: 'stale' };
  return { ok: true, message: { kind, seq: b.readBigUInt64BE(12), timestamp: Number(ts), records } };
}

/**
 * Replay protection for one peer: a message is fresh when its timestamp is within maxSkewMs of this
 * node's clock and its sequence number was not seen (a sliding window of the 64 below the highest).
 * Senders start their sequence at their clock in microseconds, so a restarted sender is ahead of
 * what it sent before.
 */
export class ReplayWindow {
  #highest = -1n;
  #bits = 0n; // bit i: highest - i was seen

  constructor(private readonly maxSkewMs: number) {}

  /** Accepts (and records) the message, or says why not. Call only after the MAC checked out. */
  check(seq: bigint, timestamp: number, now: number): 'ok' | 'replayed' | 'stale' {
    if (Math.abs(now - timestamp) > this.maxSkewMs) return 'stale';
    if (seq > this.#highest) {
      const shift = seq - this.#highest;
      this.#bits = shift >= 64n ? 1n : ((this.#bits << shift) | 1n) & 0xffffffffffffffffn;
      this.#highest = seq;
      return 'ok';
    }
    const back = this.#highest - seq;
    if (back >= 64n) return 'replayed';
    const bit = 1n << back;
    if (this.#bits & bit) return 'replayed';
    this.#bits |= bit;
    return 'ok';
  }
}

/** A sender's sequence numbers: start at its clock in microseconds, then one up per message. */
export class Sequence {
  #next: bigint;
  constructor(nowMs: number) {
    this.#next = BigInt(Math.floor(nowMs)) * 1000n;
  }
  next(): bigint {
    return this.#next++;
  }
}

/** A shared secret from its file's bytes: a trailing newline is not part of it; too short is an error. */
export function secretFrom(bytes: Buffer, field: string): Buffer {
  let end = bytes.length;
  while (end > 0 && (bytes[end - 1] === 0x0a || bytes[end - 1] === 0x0d)) end--;
  if (end < 16) throw new RangeError(`${field}: the secret is ${end} bytes; at least 16 are needed`);
  return Buffer.from(bytes.subarray(0, end));
}
