import { existsSync, readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { release } from 'node:os';
import { fileURLToPath } from 'node:url';
import { dirname, join, resolve } from 'node:path';
import {
  attachXdp, detachXdp, queryXdp, isBpffs, mountBpffs, loadObject, openPinnedMap, openPinnedProgram, ensurePinDir, unpin, layoutMismatches,
  type BpfMap, type BpfProgram, type BpfObject, type MappedRegion,
} from '../bpf/index.js';
import { FeatureMissingError, FulcrumError } from '../errors.js';
import type { XdpSettings } from '../model/xdp.js';
import { ENUMS, L, MAPS, PROGRAM_NAME, STRUCTS, maglevStride, u32, type MapName } from './abi.js';

/**
 * The XDP dataplane's one way into the kernel (STYLE #1): load or reopen the pinned program and maps,
 * attach/detach, unpin. Everything else in src/xdp works on the handles this returns.
 */

export const DEFAULT_OBJECT = fileURLToPath(new URL('../../../bpf/build/fulcrum_xdp.bpf.o', import.meta.url));
const PROG_PIN = 'prog';
/** The flow_events ring of a program loaded without flow export (never written). */
const OFF_RING_BYTES = 4096;

export interface XdpLimits { maxVips: number; maxBackends: number; maglevTableSize: number; conntrackSize: number }

export interface XdpKernel {
  readonly maps: Record<MapName, BpfMap>;
  readonly program: BpfProgram;
  readonly limits: XdpLimits;
  /** The maglev map's values mapped into this process (undefined when the map is not mmapable). */
  readonly maglevMemory: MappedRegion | undefined;
  /** The flow_export knob the program was loaded with (pinned programs keep theirs). */
  readonly flowExport: boolean;
  /** True when this start reused pins (the program kept running through the restart). */
  readonly reopened: boolean;
  readonly pinDir: string;
  /** The clock of conntrack `seen` stamps now: (jiffies >> FL_CT_SEEN_SHIFT) as a u32, and its ticks per second. */
  conntrackClock(): { now: number; perSecond: number };
  /** Attaches to every interface in `interfaces` that does not run this program yet. */
  attach(interfaces: XdpSettings['interfaces']): Array<{ name: string; action: 'attached' | 'kept' | 'replaced' }>;
  /** Detaches this program from the interfaces (only where it is the attached one). */
  detach(interfaces: XdpSettings['interfaces']): void;
  close(): void;
  /** Detaches, closes and removes the pins (the maps and program then die with their last user). */
  destroy(interfaces: XdpSettings['interfaces']): void;
}

/** conntrackSize rounds up to whole sets of FL_CT_WAYS entries. */
export function limitsFromSettings(s: XdpSettings): XdpLimits {
  const ways = ENUMS.fl_limits.FL_CT_WAYS;
  return { maxVips: s.maxVips, maxBackends: s.maxBackends, maglevTableSize: s.maglevTableSize, conntrackSize: Math.ceil(s.conntrackSize / ways) * ways };
}

/**
 * The kernel's CONFIG_HZ (jiffies per second) from its config (/proc/config.gz or
 * /boot/config-<release>). Without one, 100, the lowest value a kernel can have: the next-hop
 * cache then expires sooner than asked, never later.
 */
export function kernelHz(sources: Array<() => string> = [
  () => gunzipSync(readFileSync('/proc/config.gz')).toString('latin1'),
  () => readFileSync(`/boot/config-${release()}`, 'latin1'),
]): number {
  for (const read of sources) {
    try {
      const m = /^CONFIG_HZ=(\d+)$/m.exec(read());
      if (m) return Number(m[1]);
    } catch { /* try the next source */ }
  }
  return 100;
}

/**
 * The kernel's jiffies now. No syscall returns them; /proc/timer_list (root only) prints them
 * ("jiffies: N", once per tick device, all equal).
 */
export function kernelJiffies(read: () => string = () => readFileSync('/proc/timer_list', 'latin1')): bigint {
  let text: string;
  try {
    text = read();
  } catch (e) {
    throw new FeatureMissingError('timer-list', `cannot read /proc/timer_list for the kernel's jiffies (draining xdp backends needs it): ${(e as Error).message}`);
  }
  const m = /^jiffies: (\d+)$/m.exec(text);
  if (!m) throw new FeatureMissingError('timer-list', '/proc/timer_list shows no "jiffies:" line (draining xdp backends needs it)');
  return BigInt(m[1]!);
}

function encodeConfig(l: XdpLimits): Buffer {
  const c = STRUCTS.fl_config, b = Buffer.alloc(c.size);
  b.writeUInt32LE(l.maglevTableSize, c.fields.maglev_size.offset);
  b.writeUInt32LE(maglevStride(l.maglevTableSize), c.fields.maglev_stride.offset);
  b.writeUInt32LE(l.maxVips, c.fields.max_vips.offset);
  b.writeUInt32LE(l.maxBackends, c.fields.max_backends.offset);
  return b;
}

/** The compiled object must agree with src/xdp/abi.ts; a drifted build is refused here. */
function checkAbi(obj: BpfObject): void {
  const problems: string[] = [];
  for (const [name, layout] of Object.entries(STRUCTS)) {
    const members = Object.entries(layout.fields).map(([n, f]) => ({ name: n, offset: f.offset, size: f.size }));
    for (const p of layoutMismatches({ size: layout.size, members, exact: true }, obj.btf.structLayout(name))) problems.push(`struct ${name}: ${p}`);
  }
  for (const [name, values] of Object.entries(ENUMS)) {
    const actual = obj.btf.enumValues(name);
    for (const [k, v] of Object.entries(values)) if ((actual[k]! >>> 0) !== v) problems.push(`enum ${name}.${k} is ${actual[k]}, expected ${v}`);
  }
  if (problems.length > 0) throw new FulcrumError('INTERNAL', `the XDP object does not match src/xdp/abi.ts:\n${problems.join('\n')}`);
}

/** loadObject, with "not allowed" turned into the missing capability it means. */
function loadOrExplain(...args: Parameters<typeof loadObject>): BpfObject {
  try {
    return loadObject(...args);
  } catch (e) {
    const errno = (e as FulcrumError).errno;
    if (errno === 1 || errno === 13)
      throw new FeatureMissingError('bpf', `loading the XDP program needs root (CAP_BPF and CAP_NET_ADMIN): ${(e as Error).message}`, { cause: e });
    throw e;
  }
}

export const BPFFS_MOUNT_POINT = '/sys/fs/bpf';

/**
 * Mounts bpffs at /sys/fs/bpf when `pinDir` is under it and nothing is mounted there (a host
 * without systemd's mount, or a process started by `ip netns exec`, which mounts a fresh /sys), as
 * systemd and Cilium do. True when it mounted. A pinDir elsewhere must already be on bpffs.
 */
export function mountDefaultBpffs(pinDir: string): boolean {
  const abs = resolve(pinDir);
  if (abs !== BPFFS_MOUNT_POINT && !abs.startsWith(`${BPFFS_MOUNT_POINT}/`)) return false;
  if (!existsSync(BPFFS_MOUNT_POINT) || isBpffs(BPFFS_MOUNT_POINT)) return false;
  try {
    return mountBpffs(BPFFS_MOUNT_POINT).mounted;
  } catch (e) {
    throw new FeatureMissingError('bpffs', `${BPFFS_MOUNT_POINT} is not a bpf filesystem and mounting one there failed (${(e as Error).message}): mount -t bpf bpf ${BPFFS_MOUNT_POINT}, or set agent.xdp.pinDir inside a mounted bpffs`, { cause: e });
  }
}

/** Creates pinDir inside the bpffs that holds it (the nearest existing ancestor must be bpffs). */
function makePinDir(pinDir: string): string {
  const abs = resolve(pinDir);
  let root = abs;
  while (!existsSync(root) && dirname(root) !== root) root = dirname(root);
  if (!isBpffs(root)) throw new FeatureMissingError('bpffs', `${abs} is not inside a mounted bpf filesystem (mount -t bpf bpf ${BPFFS_MOUNT_POINT}, or set agent.xdp.pinDir inside one)`);
  return root === abs ? ensurePinDir(abs) : ensurePinDir(root, abs.slice(root.length).replace(/^\//, ''));
}

function pinsExist(dir: string): boolean {
  return existsSync(join(dir, PROG_PIN)) && Object.keys(MAPS).every((m) => existsSync(join(dir, m)));
}

export interface OpenKernelOptions {
  settings: XdpSettings;
  pinDir: string;
  objectPath?: string;
}

export function openXdpKernel(opts: OpenKernelOptions): XdpKernel {
  const pinDir = makePinDir(opts.pinDir);
  let maps: Record<MapName, BpfMap>;
  let program: BpfProgram;
  let limits: XdpLimits;
  let reopened: boolean;

  if (pinsExist(pinDir)) {
    // A previous agent left the program running: reuse it as is (sizes included), never reload.
    const opened: Partial<Record<MapName, BpfMap>> = {};
    try {
      for (const m of Object.keys(MAPS) as MapName[]) opened[m] = openPinnedMap(join(pinDir, m));
      program = openPinnedProgram(join(pinDir, PROG_PIN));
    } catch (e) {
      for (const m of Object.values(opened)) m?.close();
      throw e;
    }
    maps = opened as Record<MapName, BpfMap>;
    if (program.info.name !== PROGRAM_NAME.slice(0, 15)) {
      for (const m of Object.values(maps)) m.close();
      program.close();
      throw new FulcrumError('CONFLICT', `${pinDir}/${PROG_PIN} is not a Fulcrum XDP program (${program.info.name})`);
    }
    for (const [name, m] of Object.entries(maps)) {
      const spec = MAPS[name as MapName];
      const want = (t: string) => (t === 'none' ? 0 : t === 'u32' ? 4 : t === 'u64' ? 8 : STRUCTS[t as keyof typeof STRUCTS].size);
      if (m.info.keySize !== want(spec.key) || m.info.valueSize !== want(spec.value)) {
        for (const x of Object.values(maps)) x.close();
        program.close();
        throw new FulcrumError('CONFLICT', `pinned map ${pinDir}/${name} has key/value ${m.info.keySize}/${m.info.valueSize} bytes, this build expects ${want(spec.key)}/${want(spec.value)}: run fulcrum agent --cleanup`);
      }
    }
    const config = maps.config.lookup(u32(0));
    const maglevTableSize = config?.readUInt32LE(STRUCTS.fl_config.fields.maglev_size.offset) ?? 0;
    if (maglevTableSize === 0) {
      for (const m of Object.values(maps)) m.close();
      program.close();
      throw new FulcrumError('CONFLICT', `${pinDir}/config does not say what the pinned program was loaded with: run fulcrum agent --cleanup`);
    }
    limits = {
      maxVips: maps.vips.info.maxEntries,
      maxBackends: maps.backends.info.maxEntries,
      maglevTableSize,
      conntrackSize: maps.conntrack.info.maxEntries * ENUMS.fl_limits.FL_CT_WAYS,
    };
    reopened = true;
  } else {
    // A program pin without all of this build's maps: another Fulcrum version runs there.
    if (existsSync(join(pinDir, PROG_PIN)))
      throw new FulcrumError('CONFLICT', `${pinDir} holds the pins of another Fulcrum XDP version: run fulcrum agent --cleanup (forceCleanupXdp) first`);
    // Map pins without the program pin are what a crash during a first load leaves: nothing uses them.
    for (const name of Object.keys(MAPS)) unpin(join(pinDir, name));
    const objectPath = opts.objectPath ?? DEFAULT_OBJECT;
    if (!existsSync(objectPath)) throw new FeatureMissingError('xdp-object', `the XDP program ${objectPath} is missing: Fulcrum's installation is incomplete (in its source tree, scripts/build-bpf.sh builds it; it needs clang and libbpf-dev)`);
    limits = limitsFromSettings(opts.settings);
    const obj = loadOrExplain(objectPath, {
      rodata: {
        maglev_size: limits.maglevTableSize, maglev_stride: maglevStride(limits.maglevTableSize), max_vips: limits.maxVips, max_backends: limits.maxBackends,
        ct_sets: limits.conntrackSize / ENUMS.fl_limits.FL_CT_WAYS, nexthop_ttl_jiffies: BigInt(kernelHz()),
        flow_export: opts.settings.sync ? 1 : 0,
      },
      maxEntries: {
        vips: limits.maxVips,
        maglev: (limits.maxVips * ENUMS.fl_limits.FL_MAGLEV_SLOTS * maglevStride(limits.maglevTableSize)) / ENUMS.fl_limits.FL_MAGLEV_LINE,
        backends: limits.maxBackends,
        conntrack: limits.conntrackSize / ENUMS.fl_limits.FL_CT_WAYS,
        reverse_nat: limits.conntrackSize,
        stats: limits.maxVips,
        backend_pcpu: limits.maxBackends,
        nat_endpoints: limits.maxBackends,
        // Without sync the ring is never written: one page.
        flow_events: opts.settings.sync?.ringBytes ?? OFF_RING_BYTES,
      },
    });
    try {
      checkAbi(obj);
      obj.map('config').update(u32(0), encodeConfig(limits));
      for (const m of Object.keys(MAPS)) obj.pinMap(m, join(pinDir, m));
      // The program pin goes last: its presence means "everything is pinned" to the next start.
      obj.pinProgram(PROGRAM_NAME, join(pinDir, PROG_PIN));
      const opened: Partial<Record<MapName, BpfMap>> = {};
      for (const m of Object.keys(MAPS) as MapName[]) opened[m] = openPinnedMap(join(pinDir, m));
      maps = opened as Record<MapName, BpfMap>;
      program = openPinnedProgram(join(pinDir, PROG_PIN));
    } catch (e) {
      obj.close();
      unpin(pinDir);
      throw e;
    }
    obj.close();
    reopened = false;
  }

  // Tables are written straight into the map's memory when it allows (this build's maps do).
  let maglevMemory: MappedRegion | undefined;
  try {
    if (maps.maglev.isMmapable) maglevMemory = maps.maglev.mmap();
  } catch {
    maglevMemory = undefined; // the dataplane then writes lines with batch updates
  }

  const hz = kernelHz();
  return {
    maps,
    // Loaded with export off, the ring is one page; with it on, at least two (XdpSyncSchema.ringBytes).
    flowExport: maps.flow_events.info.maxEntries > OFF_RING_BYTES,
    program,
    limits,
    maglevMemory,
    reopened,
    pinDir,
    conntrackClock: () => ({ now: Number((kernelJiffies() >> BigInt(L.FL_CT_SEEN_SHIFT)) & 0xffffffffn), perSecond: hz / 2 ** L.FL_CT_SEEN_SHIFT }),
    attach(interfaces) {
      return interfaces.map((i) => {
        const current = queryXdp(i.name);
        const currentId = i.mode === 'native' ? current.nativeProgId : current.genericProgId;
        if (currentId === program.id) return { name: i.name, action: 'kept' as const };
        const other = current.nativeProgId || current.genericProgId || current.progId;
        // Never replace a program we did not pin: it belongs to someone else (or to a cleaned-up Fulcrum).
        if (other) throw new FulcrumError('CONFLICT', `${i.name} already runs XDP program id ${other}, which is not the pinned Fulcrum program; detach it first (ip link set dev ${i.name} xdp off)`);
        attachXdp(i.name, program, { mode: i.mode, existing: 'fail-if-attached' });
        return { name: i.name, action: 'attached' as const };
      });
    },
    detach(interfaces) {
      for (const i of interfaces) {
        try {
          const q = queryXdp(i.name);
          if (q.nativeProgId === program.id || q.genericProgId === program.id) detachXdp(i.name, { mode: i.mode, expected: program });
        } catch (e) {
          if ((e as FulcrumError).errno === 19) continue; // the interface is gone: nothing to detach
          throw e;
        }
      }
    },
    close() {
      for (const m of Object.values(maps)) m.close();
      program.close();
    },
    destroy(interfaces) {
      this.detach(interfaces);
      this.close();
      unpin(pinDir);
    },
  };
}

/**
 * Cleanup that needs no working maps (e.g. the pins of another version): detaches the pinned
 * program from `interfaces` where it is the attached one, then removes the pin directory.
 */
export function forceCleanupXdp(pinDir: string, interfaces: XdpSettings['interfaces']): void {
  const progPath = join(pinDir, PROG_PIN);
  if (existsSync(progPath)) {
    const prog = openPinnedProgram(progPath);
    try {
      for (const i of interfaces) {
        let q;
        try { q = queryXdp(i.name); } catch { continue; } // the interface is gone
        if (q.nativeProgId === prog.id || q.genericProgId === prog.id) detachXdp(i.name, { mode: i.mode, expected: prog });
      }
    } finally {
      prog.close();
    }
  }
  unpin(pinDir);
}
