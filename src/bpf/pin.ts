import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { failure } from './check.js';
import { lib } from './ffi.js';
import { errno } from './libc.js';
import { BpfMap } from './map.js';
import { BpfProgram } from './program.js';
import { isBpffs } from './sys.js';
import { FeatureMissingError, FulcrumError } from '../errors.js';

/** What kind of BPF object an fd refers to, from /proc/self/fdinfo (bpf_obj_get_info_by_fd would accept any). */
function fdKind(fd: number): 'map' | 'prog' | 'other' {
  const info = readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8');
  if (/^map_type:/m.test(info)) return 'map';
  if (/^prog_type:/m.test(info)) return 'prog';
  return 'other';
}

function objGet(path: string, kind: 'map' | 'prog'): number {
  const fd = lib().bpf_obj_get(path);
  if (fd < 0) throw failure(`bpf_obj_get(${kind} ${path})`, -fd || errno());
  const actual = fdKind(fd);
  if (actual !== kind) {
    lib().close(fd);
    throw new FulcrumError('INVALID_REQUEST', `${path} is pinned ${actual === 'other' ? 'BPF object' : actual}, not a ${kind}`);
  }
  return fd;
}

/** Reopens a pinned map; the returned handle owns its fd (close() it). */
export function openPinnedMap(path: string): BpfMap {
  const fd = objGet(path, 'map');
  try {
    return new BpfMap(fd, true, `pinned map ${path}`);
  } catch (e) {
    lib().close(fd);
    throw e;
  }
}

/** Reopens a pinned program; the returned handle owns its fd (close() it). */
export function openPinnedProgram(path: string): BpfProgram {
  return new BpfProgram(objGet(path, 'prog'), true, `pinned program ${path}`);
}

/**
 * Throws FeatureMissingError('bpffs') unless `path` (or, when it does not exist yet, its nearest
 * existing ancestor) is on a mounted bpf filesystem: pins can live nowhere else.
 */
export function requireBpffs(path: string): void {
  let p = resolve(path);
  while (!existsSync(p) && dirname(p) !== p) p = dirname(p);
  if (!isBpffs(p)) throw new FeatureMissingError('bpffs', `${path} is not on a mounted bpf filesystem (${p} is not bpffs; mount -t bpf bpf /sys/fs/bpf)`);
}

/** Creates a pin directory (and its parents) at an absolute path inside a mounted bpffs. */
export function ensurePinPath(path: string): string {
  requireBpffs(path);
  mkdirSync(path, { recursive: true, mode: 0o700 });
  return path;
}

/**
 * Makes a directory for pins inside a mounted bpffs (FeatureMissingError when `root` is not bpffs:
 * call mountBpffs() first, explicitly).
 */
export function ensurePinDir(root: string, sub?: string): string {
  if (!isBpffs(root)) throw new FeatureMissingError('bpffs', `${root} is not a mounted bpf filesystem (mount -t bpf bpf ${root})`);
  const dir = sub ? `${root.replace(/\/$/, '')}/${sub}` : root;
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return dir;
}

/** Removes a pin (or a directory of pins); the kernel object dies when nothing else holds it. */
export function unpin(path: string): void {
  rmSync(path, { recursive: true, force: true });
}
