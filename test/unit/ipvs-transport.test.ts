import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { existsSync } from 'node:fs';
import { NetlinkIpvsClient, openIpvsClient } from '../../src/ipvs/client.js';
import { runOperation } from '../../src/ipvs/executor.js';
import { NetlinkTransport, type DatagramSocket } from '../../src/ipvs/netlink-transport.js';
import { decode, encode } from '../../src/ipvs/codec.js';
import { NLMSG_DONE, NLMSG_ERROR, NLM_F_ACK, NLM_F_DUMP, NLM_F_MULTI, encodeNlmsg, parseNlmsgs } from '../../src/ipvs/netlink-wire.js';
import { FeatureMissingError, KernelError } from '../../src/errors.js';
import type { IpvsDestSpec, IpvsOperation, IpvsServiceKey } from '../../src/ipvs/types.js';

/**
 * The client's transport against a fake kernel (a DatagramSocket): ACK elision, per-request errors
 * inside a datagram, one dump at a time, and the receive-buffer window. Real-kernel behaviour is
 * covered in test/vm/ipvs-client.test.ts.
 */
const FAMILY = 0x20;
const EEXIST = 17, EBUSY = 16;

class FakeKernel extends EventEmitter implements DatagramSocket {
  datagrams = 0;
  messages = 0;
  acked = 0;
  maxOutstanding = 0;
  private outstanding = new Set<number>();
  private dumping = false;
  constructor(private readonly rcvbuf = 425984, private readonly failAddr = '') { super(); }

  send(data: Buffer, _o: { port: number }, cb: (e?: Error) => void): void {
    this.datagrams++;
    const out: Buffer[] = [];
    for (const m of parseNlmsgs(data)) {
      this.messages++;
      this.outstanding.add(m.seq);
      this.maxOutstanding = Math.max(this.maxOutstanding, this.outstanding.size);
      const msg = decode(m);
      const err = (errno: number): Buffer => {
        const p = Buffer.alloc(20); p.writeInt32LE(-errno, 0); data.copy(p, 4, 0, 16);
        return encodeNlmsg({ type: NLMSG_ERROR, flags: 0, seq: m.seq, pid: 0, payload: p });
      };
      if ((m.flags & NLM_F_DUMP) === NLM_F_DUMP) {
        if (this.dumping) { out.push(err(EBUSY)); continue; }
        this.dumping = true;
        const reply = encode({ cmd: 'NEW_DEST', attrs: { dest: { addrFamily: 2, addr: Buffer.alloc(16, 1), port: 80, fwdMethod: 0, weight: 1 } } }, { family: FAMILY, seq: m.seq, flags: NLM_F_MULTI });
        // The dump ends later, as the kernel's does when the reader comes back for more.
        setTimeout(() => {
          this.dumping = false;
          this.deliver([reply, encodeNlmsg({ type: NLMSG_DONE, flags: NLM_F_MULTI, seq: m.seq, pid: 0, payload: Buffer.alloc(4) })]);
        }, 1);
        continue;
      }
      const addr = msg.attrs.dest?.addr;
      if (this.failAddr && addr && addr.subarray(0, 4).join('.') === this.failAddr) out.push(err(EEXIST));
      else if (m.flags & NLM_F_ACK) { this.acked++; out.push(err(0)); }
      else this.outstanding.delete(m.seq);
    }
    setImmediate(() => this.deliver(out));
    cb();
  }
  private deliver(datagrams: Buffer[]): void {
    for (const d of datagrams) {
      for (const m of parseNlmsgs(d)) this.outstanding.delete(m.seq);
      this.emit('message', d);
    }
    // An ACK or error also completes the ACK-less messages before it: forget them all.
    if (datagrams.length) this.outstanding.clear();
  }
  getRecvBufferSize(): number { return this.rcvbuf; }
  ref(): void {}
  unref(): void {}
  close(): void {}
}

const key: IpvsServiceKey = { family: 'inet', protocol: 'tcp', address: '10.0.0.1', port: 80 };
const destSpec = (i: number): IpvsDestSpec =>
  ({ address: `10.1.${i >> 8}.${i & 255}`, port: 8080, family: 'inet', forward: 'masq', weight: 1, upperThreshold: 0, lowerThreshold: 0 });
const addDest = (i: number): IpvsOperation => ({ op: 'addDestination', key, dest: destSpec(i) });

test('a bulk batch shares datagrams and needs one ACK per datagram', async () => {
  const k = new FakeKernel();
  const client = new NetlinkIpvsClient(new NetlinkTransport({}, k), FAMILY, { dumpSockets: 0 });
  const results = await client.batch(Array.from({ length: 1000 }, (_, i) => addDest(i)));
  assert.equal(results.length, 1000);
  assert.ok(results.every((r) => r.ok));
  assert.equal(k.messages, 1000);
  assert.ok(k.datagrams <= 20, `${k.datagrams} datagrams for 1000 requests`);
  assert.equal(k.acked, k.datagrams, 'exactly the last message of each datagram asks for an ACK');
  await client.close();
});

test('an error inside a datagram fails that request only, with errno and meaning', async () => {
  const k = new FakeKernel(425984, '10.1.0.13');
  const client = new NetlinkIpvsClient(new NetlinkTransport({}, k), FAMILY, { dumpSockets: 0 });
  const results = await client.batch(Array.from({ length: 40 }, (_, i) => addDest(i)));
  assert.deepEqual(results.map((r, i) => (r.ok ? -1 : i)).filter((i) => i >= 0), [13]);
  const bad = results[13];
  assert.ok(bad && !bad.ok && bad.error instanceof KernelError);
  assert.equal(bad.error.errnoName, 'EEXIST');
  assert.match(bad.error.message, /add destination 10\.1\.0\.13:8080 to tcp 10\.0\.0\.1:80: EEXIST \(destination already exists\)/);
  // The promise API gives the same error.
  await assert.rejects(client.addDestination(key, destSpec(13)), /destination already exists/);
  await client.close();
});

test('concurrent lists never run two dumps at once on one socket', async () => {
  const k = new FakeKernel();
  const client = new NetlinkIpvsClient(new NetlinkTransport({}, k), FAMILY, { dumpSockets: 0 });
  const lists = await Promise.all(Array.from({ length: 20 }, () => client.listDestinations(key)));
  assert.deepEqual(lists.map((l) => l.length), Array(20).fill(1));
  assert.equal(lists[0]![0]!.address, '1.1.1.1');
  await client.close();
});

test('in-flight requests stay within what the receive buffer can answer', async () => {
  // Room for 10 answers of 1536 bytes at 75 %.
  const k = new FakeKernel(20480);
  const transport = new NetlinkTransport({ window: 1000 }, k);
  assert.equal(transport.effectiveWindow, 10);
  const client = new NetlinkIpvsClient(transport, FAMILY, { dumpSockets: 0 });
  await Promise.all(Array.from({ length: 100 }, (_, i) => runOperation(client, addDest(i))));
  assert.ok(k.maxOutstanding <= 10, `at most 10 in flight, saw ${k.maxOutstanding}`);
  await client.close();
  await assert.rejects(client.addDestination(key, destSpec(1)), /closed/);
});

test('a kernel without IPVS gives FeatureMissingError naming ipvs', { skip: existsSync('/proc/net/ip_vs') ? 'this kernel has IPVS loaded' : undefined }, async () => {
  await assert.rejects(openIpvsClient(), (e: unknown) => {
    assert.ok(e instanceof FeatureMissingError);
    assert.equal(e.feature, 'ipvs');
    assert.match(e.message, /generic netlink family "IPVS" not found/);
    return true;
  });
});
