import { test } from 'node:test';
import assert from 'node:assert/strict';
import { attachXdp, detachXdp, loadObject, queryXdp, withNetnsSync, type BpfObject } from '../../src/bpf/index.js';
import { FeatureMissingError, KernelError } from '../../src/errors.js';
import { readlinkSync, statSync } from 'node:fs';
import { Netns, vethPair } from '../helpers/netns.js';
import { bpfSkipReason, bpftool, objectPath, u32 } from '../helpers/bpf.js';

const skip = bpfSkipReason('test_maps');

interface NetShow { xdp: Array<{ devname: string; ifindex: number; mode: string; id: number }> }

async function xdpOf(ns: Netns, dev: string): Promise<Array<{ mode: string; id: number }>> {
  const shown = (await bpftool(['net', 'show', 'dev', dev], ns.name)) as NetShow[];
  return (shown[0]?.xdp ?? []).map((x) => ({ mode: x.mode, id: x.id }));
}

async function ipLinkXdp(ns: Netns, dev: string): Promise<{ mode?: number; id?: number }> {
  const r = await ns.exec('ip', ['-d', '-j', 'link', 'show', 'dev', dev]);
  const link = (JSON.parse(r.stdout) as Array<{ xdp?: { mode: number; prog?: { id: number } } }>)[0];
  return { mode: link?.xdp?.mode, id: link?.xdp?.prog?.id };
}

async function setup(): Promise<{ a: Netns; b: Netns; obj: BpfObject; close: () => Promise<void> }> {
  const a = await Netns.create('fla');
  const b = await Netns.create('flb');
  await vethPair(a, 'eth0', ['10.9.0.1/24'], b, 'eth0', ['10.9.0.2/24']);
  const obj = loadObject(objectPath('test_maps'));
  return {
    a, b, obj,
    close: async () => {
      obj.close();
      await a.delete();
      await b.delete();
    },
  };
}

const ping = (ns: Netns, to: string) => ns.exec('ping', ['-c', '1', '-W', '1', to], { allowFail: true });
// After a drop program has eaten ARP, the first echo waits for neighbour resolution, which can take
// over a second on a loaded host: a "traffic passes" check waits up to 4 s for 3 replies.
const pingPasses = (ns: Netns, to: string) => ns.exec('ping', ['-c', '3', '-i', '0.5', '-w', '4', to], { allowFail: true });

test('native XDP on a veth in a netns: attach, no-replace guard, atomic replace, detach; read back by bpftool and ip', { skip }, async () => {
  const { a, b, obj, close } = await setup();
  try {
    const pass = obj.program('xdp_pass'), drop = obj.program('xdp_drop'), count = obj.program('xdp_count');
    assert.equal((await ping(a, '10.9.0.2')).code, 0, 'traffic flows before XDP');

    withNetnsSync(b.name, () => attachXdp('eth0', drop, { mode: 'native', existing: 'fail-if-attached' }));
    assert.deepEqual(await xdpOf(b, 'eth0'), [{ mode: 'driver', id: drop.id }]);
    assert.deepEqual(await ipLinkXdp(b, 'eth0'), { mode: 1, id: drop.id });
    assert.deepEqual(withNetnsSync(b.name, () => queryXdp('eth0')), { attachMode: 'native', progId: drop.id, nativeProgId: drop.id, genericProgId: 0, offloadProgId: 0 });
    assert.notEqual((await ping(a, '10.9.0.2')).code, 0, 'XDP_DROP on the receiver drops the ping');

    assert.throws(
      () => withNetnsSync(b.name, () => attachXdp('eth0', pass, { mode: 'native', existing: 'fail-if-attached' })),
      (e: unknown) => e instanceof KernelError && e.errno === 16 && /already attached/.test(e.message),
    );
    assert.throws(
      () => withNetnsSync(b.name, () => attachXdp('eth0', pass, { mode: 'native', existing: pass })),
      (e: unknown) => e instanceof KernelError && e.errno === 17 && /not the one to replace/.test(e.message),
    );
    withNetnsSync(b.name, () => attachXdp('eth0', count, { mode: 'native', existing: drop }));
    assert.deepEqual(await xdpOf(b, 'eth0'), [{ mode: 'driver', id: count.id }]);
    assert.equal((await pingPasses(a, '10.9.0.2')).code, 0, 'after the atomic replace the ping passes');
    const counted = obj.map('pcpu').lookupPerCpu(u32(0))!.reduce((s, v) => s + v.readBigUInt64LE(0), 0n);
    assert.ok(counted >= 1n, `the program saw the packets (${counted})`);

    assert.throws(() => withNetnsSync(b.name, () => detachXdp('eth0', { mode: 'native', expected: drop })), (e: unknown) => e instanceof KernelError && e.errno === 17);
    withNetnsSync(b.name, () => detachXdp('eth0', { mode: 'native', expected: count }));
    assert.deepEqual(await xdpOf(b, 'eth0'), []);
    assert.equal(withNetnsSync(b.name, () => queryXdp('eth0')).attachMode, 'none');
  } finally {
    await close();
  }
});

test('generic (skb) XDP: attach, traffic sees it, detach', { skip }, async () => {
  const { a, b, obj, close } = await setup();
  try {
    const drop = obj.program('xdp_drop');
    withNetnsSync(b.name, () => attachXdp('eth0', drop, { mode: 'generic' }));
    assert.deepEqual(await xdpOf(b, 'eth0'), [{ mode: 'generic', id: drop.id }]);
    assert.deepEqual(await ipLinkXdp(b, 'eth0'), { mode: 2, id: drop.id });
    assert.equal(withNetnsSync(b.name, () => queryXdp('eth0')).genericProgId, drop.id);
    assert.notEqual((await ping(a, '10.9.0.2')).code, 0);
    assert.throws(
      () => withNetnsSync(b.name, () => attachXdp('eth0', drop, { mode: 'native' })),
      (e: unknown) => e instanceof KernelError && e.errno === 17 && /Native and generic XDP can't be active at the same time/.test(e.message),
      "the kernel's extack reaches the error",
    );
    withNetnsSync(b.name, () => detachXdp('eth0', { mode: 'generic' }));
    assert.equal((await pingPasses(a, '10.9.0.2')).code, 0, 'after the detach the ping passes');
    assert.deepEqual(await xdpOf(b, 'eth0'), []);
  } finally {
    await close();
  }
});

test('a device without native XDP is a FeatureMissingError; unknown device and netns are KernelErrors', { skip }, async () => {
  const { b, obj, close } = await setup();
  try {
    assert.throws(
      () => withNetnsSync(b.name, () => attachXdp('lo', obj.program('xdp_pass'), { mode: 'native' })),
      (e: unknown) => e instanceof FeatureMissingError && e.feature === 'xdp-native' && e.errno === 95,
    );
    assert.throws(() => withNetnsSync(b.name, () => queryXdp('nosuchdev0')), (e: unknown) => e instanceof KernelError && e.errno === 19);
    assert.throws(() => withNetnsSync('fl-no-such-netns', () => 1), (e: unknown) => e instanceof KernelError && e.errno === 2);
    assert.throws(() => withNetnsSync(b.name, () => Promise.resolve(1)), /returned a promise/);
    // Inside, the main thread is in b's namespace; afterwards it is back where it was, also after a throw.
    const self = () => readlinkSync('/proc/thread-self/ns/net');
    const before = self();
    const inside = withNetnsSync(b.name, self);
    assert.notEqual(inside, before);
    assert.equal(inside, `net:[${statSync(`/run/netns/${b.name}`).ino}]`, 'the namespace file ip netns made');
    assert.throws(() => withNetnsSync(b.name, () => { throw new Error('boom'); }), /boom/);
    assert.equal(self(), before);
  } finally {
    await close();
  }
});
