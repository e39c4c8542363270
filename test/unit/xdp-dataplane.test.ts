import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BpfMap, BpfProgram } from '../../src/bpf/index.js';
import { parseDesiredState } from '../../src/model/index.js';
import { XdpSettingsSchema } from '../../src/model/xdp.js';
import { FulcrumError } from '../../src/errors.js';
import { decodeBackend, MAPS, STRUCTS, type MapName } from '../../src/xdp/abi.js';
import { DEFAULT_DRAIN, xdpDataplaneOver } from '../../src/xdp/dataplane.js';
import { ManualClock } from '../helpers/fake-clock.js';
import type { NeighbourTable } from '../../src/xdp/neighbours.js';
import type { XdpKernel } from '../../src/xdp/kernel.js';

/** In-memory stand-in for the kernel maps (behind the XdpKernel interface); can fail on demand. */
class FakeMap {
  readonly data = new Map<string, Buffer>();
  failOn: ((op: string) => boolean) | undefined;
  constructor(readonly name: string, readonly keySize: number, readonly valueSize: number, readonly maxEntries: number, readonly perCpu = false) {}
  get info() { return { keySize: this.keySize, valueSize: this.valueSize, maxEntries: this.maxEntries }; }
  #check(op: string) { if (this.failOn?.(op)) throw new FulcrumError('KERNEL_ERROR', `${this.name}: injected ${op} failure`); }
  // An array map always has every key (zeros until written); a hash map only what was inserted.
  lookup(k: Buffer) { return this.data.get(k.toString('hex')) ?? (this.isArray ? Buffer.alloc(this.valueSize) : undefined); }
  get isArray() { return ['maglev', 'backends', 'stats', 'filter', 'backend_pcpu', 'vip_index', 'conntrack'].includes(this.name); }
  /** Every update in order (key hex, value hex). */
  readonly history: Array<[string, string]> = [];
  update(k: Buffer, v: Buffer) { this.#check('update'); this.data.set(k.toString('hex'), Buffer.from(v)); this.history.push([k.toString('hex'), v.toString('hex')]); }
  delete(k: Buffer) { this.#check('delete'); return this.data.delete(k.toString('hex')); }
  updateBatch(keys: Buffer[], values: Buffer[]) { this.#check('updateBatch'); keys.forEach((k, i) => this.data.set(k.toString('hex'), Buffer.from(values[i]!))); return keys.length; }
  lookupBatch() {
    const keys: Buffer[] = [], values: Buffer[] = [];
    for (const [k, v] of this.data) { keys.push(Buffer.from(k, 'hex')); values.push(v); }
    return { keys, values };
  }
  lookupPerCpu(k: Buffer) { const v = this.data.get(k.toString('hex')); return v ? [v] : undefined; }
  updatePerCpu(k: Buffer, vs: Buffer[]) { this.data.set(k.toString('hex'), vs[0]!); }
  snapshot() { return new Map([...this.data].map(([k, v]) => [k, v.toString('hex')])); }
}

/** Conntrack ticks of the fake kernel: jiffies >> 3 at HZ 1000, from the test's clock. */
const TICKS_PER_SECOND = 125;

function fakeKernel(clock: ManualClock = new ManualClock()): { kernel: XdpKernel; maps: Record<MapName, FakeMap> } {
  const limits = { maxVips: 4, maxBackends: 16, maglevTableSize: 251, conntrackSize: 1024 };
  const size = (t: string) => (t === 'none' ? 0 : t === 'u32' ? 4 : t === 'u64' ? 8 : STRUCTS[t as keyof typeof STRUCTS].size);
  const maps = Object.fromEntries(Object.entries(MAPS).map(([n, s]) => [n, new FakeMap(n, size(s.key), size(s.value), 1024, n === 'stats' || n === 'backend_pcpu' || n === 'flow_export_stats')])) as Record<MapName, FakeMap>;
  const kernel: XdpKernel = {
    maps: maps as unknown as Record<MapName, BpfMap>,
    program: { id: 1 } as unknown as BpfProgram,
    limits, maglevMemory: undefined, reopened: false, pinDir: '/fake', flowExport: false,
    attach: () => [], detach: () => undefined, close: () => undefined, destroy: () => undefined,
    conntrackClock: () => ({ now: Math.floor((clock.now() * TICKS_PER_SECOND) / 1000), perSecond: TICKS_PER_SECOND }),
  };
  return { kernel, maps };
}

const noNeighbours: NeighbourTable = { macs: async () => new Map(), solicit: () => undefined, close: () => undefined };

/** A dataplane over fake maps and a state directory, both gone after `fn`. */
async function withDataplane(fn: (t: { dp: ReturnType<typeof xdpDataplaneOver>; maps: Record<MapName, FakeMap> }) => Promise<void>, neighbours = noNeighbours): Promise<void> {
  const stateDir = mkdtempSync(join(tmpdir(), 'fulcrum-xdp-unit-'));
  try {
    const { kernel, maps } = fakeKernel();
    await fn({ dp: xdpDataplaneOver(kernel, XdpSettingsSchema.parse({}), stateDir, () => undefined, neighbours), maps });
  } finally {
    rmSync(stateDir, { recursive: true, force: true });
  }
}

const svc = (name: string, addr: string, backends: string[]) => ({ name, dataplane: 'xdp', address: addr, port: 80, backends: backends.map((b) => ({ address: b, port: 8080 })) });

test('a step that fails mid-way rolls back every step before it (VIPs, backends, filter)', () => withDataplane(async ({ dp, maps }) => {
  await dp.reconcile(parseDesiredState({ services: [svc('a', '10.0.0.1', ['10.1.0.1'])] }).services);
  const before = { vips: maps.vips.snapshot(), backends: maps.backends.snapshot(), filter: maps.filter.snapshot(), endpoints: maps.nat_endpoints.snapshot() };
  // The second VIP's table write fails: its backends were written, the first VIP changed already.
  let batches = 0;
  maps.maglev.failOn = (op) => op === 'updateBatch' && ++batches === 2;
  const next = parseDesiredState({ services: [svc('a', '10.0.0.1', ['10.1.0.1', '10.1.0.2']), svc('b', '10.0.0.2', ['10.1.0.3'])] }).services;
  await assert.rejects(dp.reconcile(next), (e: unknown) => e instanceof FulcrumError && e.code === 'APPLY_FAILED' && /\+ b .*injected updateBatch failure/.test(e.message));
  assert.deepEqual(maps.vips.snapshot(), before.vips, 'vips as before');
  const zero = '00'.repeat(STRUCTS.fl_backend.size);
  const live = new Map([...maps.backends.snapshot()].filter(([, v]) => v !== zero));
  assert.deepEqual(live, before.backends, 'backend slots as before (rolled-back slots are zero again)');
  assert.deepEqual(maps.filter.snapshot(), before.filter, 'filter as before');
  assert.deepEqual(maps.nat_endpoints.snapshot(), before.endpoints, 'nat reply entries as before');
  // Once the fault is gone the same change applies, planned from a fresh read-back.
  maps.maglev.failOn = undefined;
  const r = await dp.reconcile(next);
  assert.equal(r.applied, true);
  assert.equal(maps.vips.data.size, 2);
  assert.deepEqual((await dp.reconcile(next)).steps, []);
  const stats = await dp.stats();
  assert.deepEqual(stats.map((s) => [s.service, s.backends.length]).sort(), [['a', 2], ['b', 1]]);
}));

test('dryRun plans without touching the maps', () => withDataplane(async ({ dp, maps }) => {
  const r = await dp.reconcile(parseDesiredState({ services: [svc('a', '10.0.0.1', ['10.1.0.1'])] }).services, { dryRun: true });
  assert.equal(r.applied, false);
  assert.deepEqual(r.steps.map((s) => s.kind), ['set-filter', 'add-backend', 'set-endpoint', 'publish', 'set-vip-index']);
  assert.match(r.steps[3]!.description, /\+ a \(tcp 10.0.0.1:80\) nat id 0 with 1 backends/);
  assert.equal(maps.vips.data.size, 0);
  assert.equal(maps.backends.data.size, 0);
}));

test('capacity errors are INVALID_CONFIG naming the setting, and nothing is applied', () => withDataplane(async ({ dp, maps }) => {
  const many = Array.from({ length: 5 }, (_, i) => svc(`s${i}`, `10.0.0.${i + 1}`, ['10.1.0.1']));
  await assert.rejects(dp.reconcile(parseDesiredState({ services: many }).services), /INVALID_CONFIG|xdp.maxVips is 4/);
  assert.equal(maps.vips.data.size, 0);
}));

test('a dr backend without a MAC gets the one learned from the neighbour table; a configured MAC wins', () => {
  const known = new Map<string, string>();
  const solicited: string[] = [];
  const table = { macs: async () => new Map(known), solicit: (a: string) => void solicited.push(a), close: () => undefined };
  return withDataplane(async ({ dp, maps }) => {
    const dr = parseDesiredState({ services: [{ name: 'd', dataplane: 'xdp', address: '10.0.0.9', port: 80, forwarding: 'dr', backends: [{ address: '10.1.0.1' }, { address: '10.1.0.2', mac: '02:00:00:00:00:22' }] }] }).services;
    const macs = () => [...maps.backends.data.values()].map((v) => decodeBackend(v)).filter((b) => b.active).map((b) => [b.address, b.mac]).sort();
    await dp.reconcile(dr);
    assert.deepEqual(solicited, ['10.1.0.1'], 'only the backend without a MAC is solicited');
    assert.deepEqual(macs(), [['10.1.0.1', undefined], ['10.1.0.2', '02:00:00:00:00:22']]);
    known.set('10.1.0.1', '02:00:00:00:00:11');
    known.set('10.1.0.2', '02:00:00:00:00:99');
    const r = await dp.reconcile(dr);
    assert.deepEqual(r.steps.map((s) => s.kind), ['update-backend']);
    assert.deepEqual(macs(), [['10.1.0.1', '02:00:00:00:00:11'], ['10.1.0.2', '02:00:00:00:00:22']]);
  }, table);
});

test('vip_index writes: a copy becomes matchable (or stops being) only by its family byte; a table swap is one write', () => withDataplane(async ({ dp, maps }) => {
  const familyAt = STRUCTS.fl_vip_slot.fields.key.offset + STRUCTS.fl_vip_key.fields.family.offset;
  const writes = () => maps.vip_index.history.splice(0).map(([, v]) => Buffer.from(v, 'hex'));
  /** Each write differs from the one before in at most the family byte, unless the entry was unmatchable (family 0) before or after. */
  const safe = (ws: Buffer[], first: Buffer) => {
    let prev = first;
    for (const w of ws) {
      const diff = [...w.keys()].filter((i) => w[i] !== prev[i]);
      assert.ok(prev[familyAt] === 0 || w[familyAt] === 0 || diff.every((i) => i >= STRUCTS.fl_vip_slot.fields.meta.offset), `unsafe write ${prev.toString('hex')} -> ${w.toString('hex')}`);
      prev = w;
    }
  };
  const svc = (backends: string[], forwarding = 'nat') => parseDesiredState({ services: [{ name: 'a', dataplane: 'xdp', address: '10.0.0.1', port: 80, forwarding, backends: backends.map((b) => ({ address: b, port: 80, ...(forwarding === 'dr' ? { mac: '02:00:00:00:00:01' } : {}) })) }] }).services;
  const zero = Buffer.alloc(STRUCTS.fl_vip_slot.size);

  await dp.reconcile(svc(['10.1.0.1']));
  const add = writes();
  assert.deepEqual(add.map((w) => w[familyAt]), [0, 2], 'written unmatchable first, then its family byte');
  safe(add, zero);

  await dp.reconcile(svc(['10.1.0.1', '10.1.0.2']));
  const swap = writes();
  assert.equal(swap.length, 1, 'a table swap is one write');
  safe(swap, add.at(-1)!);

  await dp.reconcile(svc(['10.1.0.1', '10.1.0.2'], 'dr'));
  const mode = writes();
  assert.deepEqual(mode.map((w) => w[familyAt]), [0, 0, 0, 2], 'mode change: hidden, cleared, rewritten hidden, shown');
  safe(mode, swap.at(-1)!);

  await dp.reconcile([]);
  const gone = writes();
  assert.deepEqual(gone.map((w) => w[familyAt]), [0, 0]);
  assert.ok(gone.at(-1)!.equals(zero));
}));

// --- draining ---

const DRAIN = { ...DEFAULT_DRAIN, timeoutSeconds: 300, pollSeconds: 5, flowIdleSeconds: 30 };
const web = (backends: string[]) => parseDesiredState({ services: [svc('web', '10.0.0.1', backends)] }).services;

/** Live backends by address: slot, weight. */
function programmed(maps: Record<MapName, FakeMap>): Map<string, { slot: number; weight: number; gen: number }> {
  const out = new Map<string, { slot: number; weight: number; gen: number }>();
  for (const [k, v] of maps.backends.data) {
    const b = decodeBackend(v);
    if (b.active) out.set(b.address, { slot: Buffer.from(k, 'hex').readUInt32LE(0), weight: b.weight, gen: b.gen });
  }
  return out;
}

/** Writes `n` conntrack entries on (slot, gen) seen at `ticks`, from set `first` on. */
function putFlows(maps: Record<MapName, FakeMap>, first: number, n: number, slot: number, gen: number, ticks: number): void {
  const e = STRUCTS.fl_ct_entry;
  for (let i = 0; i < n; i++) {
    const set = Buffer.alloc(STRUCTS.fl_ct_set.size);
    set[e.fields.key.offset + STRUCTS.fl_flow_key.fields.family.offset] = 2;
    set.writeUInt32LE(slot, e.fields.backend.offset);
    set.writeUInt16LE(gen & 0xffff, e.fields.gen.offset);
    set.writeUInt32LE(ticks >>> 0, e.fields.seen.offset);
    const key = Buffer.alloc(4);
    key.writeUInt32LE(first + i, 0);
    maps.conntrack.data.set(key.toString('hex'), set);
  }
}

async function withDrainingDataplane(fn: (t: { dp: ReturnType<typeof xdpDataplaneOver>; maps: Record<MapName, FakeMap>; clock: ManualClock; ticks: () => number; reopen: () => ReturnType<typeof xdpDataplaneOver>; notes: string[]; kernel: XdpKernel }) => Promise<void>): Promise<void> {
  const stateDir = mkdtempSync(join(tmpdir(), 'fulcrum-xdp-drain-'));
  const clock = new ManualClock();
  const notes: string[] = [];
  const { kernel, maps } = fakeKernel(clock);
  const open = () => xdpDataplaneOver(kernel, XdpSettingsSchema.parse({}), stateDir, (n) => void notes.push(n.message), noNeighbours, { ...DRAIN, clock });
  const dp = open();
  try {
    await fn({ dp, maps, clock, ticks: () => kernel.conntrackClock().now, reopen: open, notes, kernel });
  } finally {
    await dp.close();
    rmSync(stateDir, { recursive: true, force: true });
  }
}

test('a removed backend with active flows drains: weight 0, out of the table, flows kept, reported until idle', () => withDrainingDataplane(async ({ dp, maps, clock, ticks }) => {
  await dp.reconcile(web(['10.1.0.1', '10.1.0.2']));
  const b2 = programmed(maps).get('10.1.0.2')!;
  putFlows(maps, 0, 3, b2.slot, b2.gen, ticks());
  putFlows(maps, 10, 2, b2.slot, b2.gen + 1, ticks()); // another generation: flows of a slot's former backend
  const start = clock.wallNow();
  const r = await dp.reconcile(web(['10.1.0.1']));
  assert.ok(!r.steps.some((s) => s.kind === 'remove-backend' || s.kind === 'remove-endpoint'), 'nothing of the draining backend is removed');
  assert.deepEqual(programmed(maps).get('10.1.0.2'), { ...b2, weight: 0 }, 'same slot and generation, weight 0');
  assert.match(r.steps.find((s) => s.kind === 'publish')!.description, /with 1 backends/, 'the live table is built without the draining backend');
  assert.equal([...maps.nat_endpoints.data.values()].length, 2, 'its nat reply entry stays');
  assert.deepEqual(dp.drains(), [{ service: 'web', address: '10.1.0.2', port: 8080, startedAt: new Date(start).toISOString(), deadline: new Date(start + 300_000).toISOString(), activeConnections: 3 }]);

  // Two flows go idle; one keeps sending (its entry is refreshed) until it stops too.
  for (let t = 0; t < 40; t += 5) {
    putFlows(maps, 0, 1, b2.slot, b2.gen, ticks());
    await clock.advance(5000);
  }
  assert.equal(dp.drains()[0]?.activeConnections, 1);
  assert.ok(programmed(maps).has('10.1.0.2'));
  await clock.advance(35_000);
  assert.deepEqual(dp.drains(), [], 'idle for flowIdleSeconds: drained');
  assert.deepEqual([...programmed(maps).keys()], ['10.1.0.1'], 'then removed');
  assert.equal(maps.nat_endpoints.data.size, 1);
}));

test('a removed backend without active flows is removed at once; one still busy at its deadline is removed then', () => withDrainingDataplane(async ({ dp, maps, clock, ticks, notes }) => {
  await dp.reconcile(web(['10.1.0.1', '10.1.0.2', '10.1.0.3']));
  const b2 = programmed(maps).get('10.1.0.2')!, b3 = programmed(maps).get('10.1.0.3')!;
  putFlows(maps, 0, 1, b2.slot, b2.gen, ticks() - 30 * TICKS_PER_SECOND - 1); // idle too long already
  putFlows(maps, 1, 1, b3.slot, b3.gen, ticks());
  const r = await dp.reconcile(web(['10.1.0.1']));
  assert.deepEqual(r.steps.filter((s) => s.kind === 'remove-backend').map((s) => s.description), [`- backend 10.1.0.2:8080 slot ${b2.slot} of web`]);
  assert.deepEqual(dp.drains().map((d) => d.address), ['10.1.0.3']);
  for (let t = 0; t < 300; t += 5) {
    putFlows(maps, 1, 1, b3.slot, b3.gen, ticks());
    await clock.advance(5000);
  }
  assert.deepEqual(dp.drains(), []);
  assert.deepEqual([...programmed(maps).keys()], ['10.1.0.1']);
  assert.ok(notes.includes('xdp backend removed at its drain deadline'));
}));

test('a drain survives a restart (same start and deadline, flows kept); a backend re-added during its drain is normal again', () => withDrainingDataplane(async ({ dp, maps, clock, ticks, reopen }) => {
  await dp.reconcile(web(['10.1.0.1', '10.1.0.2']));
  const b2 = programmed(maps).get('10.1.0.2')!;
  putFlows(maps, 0, 2, b2.slot, b2.gen, ticks());
  await dp.reconcile(web(['10.1.0.1']));
  const before = dp.drains();
  await dp.close();
  await clock.advance(10_000);
  putFlows(maps, 0, 2, b2.slot, b2.gen, ticks());

  const again = reopen();
  try {
    assert.deepEqual(again.drains().map((d) => [d.startedAt, d.deadline]), before.map((d) => [d.startedAt, d.deadline]), 'known before the first reconcile');
    const r = await again.reconcile(web(['10.1.0.1']));
    assert.deepEqual(r.steps, [], 'the restarted agent changes nothing of the drain');
    assert.deepEqual(again.drains(), before);
    assert.deepEqual(programmed(maps).get('10.1.0.2'), { ...b2, weight: 0 });

    const back = await again.reconcile(web(['10.1.0.1', '10.1.0.2']));
    assert.ok(back.steps.some((s) => s.kind === 'update-backend' && /weight 0 -> 1/.test(s.description)));
    assert.deepEqual(programmed(maps).get('10.1.0.2'), b2, 'weight back, same slot');
    assert.match(back.steps.find((s) => s.kind === 'publish')!.description, /with 2 backends/, 'in the table again');
    assert.deepEqual(again.drains(), []);
    await clock.advance(400_000);
    assert.deepEqual(programmed(maps).get('10.1.0.2'), b2, 'no drain deadline applies any more');
  } finally {
    await again.close();
  }
}));

test('flows that cannot be counted hold a drain until its deadline, with a warning', () => withDrainingDataplane(async ({ dp, maps, clock, kernel, notes }) => {
  await dp.reconcile(web(['10.1.0.1', '10.1.0.2']));
  kernel.conntrackClock = () => { throw new FulcrumError('FEATURE_MISSING', 'no /proc/timer_list'); };
  await dp.reconcile(web(['10.1.0.1']));
  assert.equal(programmed(maps).get('10.1.0.2')?.weight, 0);
  assert.deepEqual(dp.drains().map((d) => [d.address, d.activeConnections]), [['10.1.0.2', 1]]);
  assert.ok(notes.includes('cannot count the flows of draining xdp backends: they are kept until their drain deadline'));
  await clock.advance(299_000);
  assert.equal(dp.drains().length, 1);
  await clock.advance(6000);
  assert.deepEqual(dp.drains(), []);
  assert.deepEqual([...programmed(maps).keys()], ['10.1.0.1']);
}));
