import { mkdirSync, rmSync } from 'node:fs';
import { failure } from './check.js';
import { errno, lib } from './ffi.js';
import { BpfMap } from './map.js';
import { BpfProgram } from './program.js';
import { isBpffs } from './sys.js';
import { FeatureMissingError } from '../errors.js';

function objGet(path: string, what: string): number {
  const fd = lib().bpf_obj_get(path);
  if (fd < 0) throw failure(`bpf_obj_get(${what} ${path})`, -fd || errno());
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
  const fd = objGet(path, 'program');
  const p = new BpfProgram(fd, true, `pinned program ${path}`);
  try {
    void p.info; // fails here when the pin is not a program
    return p;
  } catch (e) {
    p.close();
    throw e;
  }
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
