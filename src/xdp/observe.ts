import { decodeBackend, decodeEndpoint, decodeVipKey, decodeVipMeta, decodeVipSlot, ENUMS, L, STRUCTS, type BackendValue } from './abi.js';
import type { Observed } from './plan.js';
import type { XdpKernel } from './kernel.js';

/** What the pinned maps hold now (the planner's view of the kernel). */
export function readObserved(k: XdpKernel): Observed {
  const vips = k.maps.vips.lookupBatch(1024);
  const empty = decodeBackend(Buffer.alloc(STRUCTS.fl_backend.size));
  const backends: BackendValue[] = new Array<BackendValue>(k.limits.maxBackends).fill(empty);
  const all = k.maps.backends.lookupBatch(4096);
  const flagsAt = STRUCTS.fl_backend.fields.flags.offset, genAt = STRUCTS.fl_backend.fields.gen.offset;
  all.keys.forEach((key, i) => {
    const v = all.values[i]!;
    // Inactive slots matter only for their generation: skip decoding the rest.
    const active = (v[flagsAt]! & ENUMS.fl_backend_flag.FL_BACKEND_ACTIVE) !== 0;
    const gen = v.readUInt32LE(genAt);
    if (active) backends[key.readUInt32LE(0)] = decodeBackend(v);
    else if (gen !== 0) backends[key.readUInt32LE(0)] = { ...empty, gen };
  });
  const filter = new BigUint64Array(L.FL_FILTER_WORDS);
  const f = k.maps.filter.lookupBatch(1024);
  f.keys.forEach((key, i) => {
    filter[key.readUInt32LE(0)] = f.values[i]!.readBigUInt64LE(0);
  });
  const eps = k.maps.nat_endpoints.lookupBatch(1024);
  const vipIndex: Observed['vipIndex'] = new Map();
  const idx = k.maps.vip_index.lookupBatch(4096);
  idx.keys.forEach((key, i) => {
    const v = decodeVipSlot(idx.values[i]!);
    if (v) vipIndex.set(key.readUInt32LE(0), v);
  });
  return {
    vipIndex,
    vips: vips.keys.map((key, i) => ({ key: decodeVipKey(key), meta: decodeVipMeta(vips.values[i]!) })),
    backends,
    filter,
    endpoints: eps.keys.map((key, i) => {
      const k2 = decodeVipKey(key);
      return { key: k2, value: decodeEndpoint(eps.values[i]!, k2.family) };
    }),
  };
}
