import { existsSync } from 'node:fs';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isBpffs, mountBpffs } from '../../src/bpf/index.js';
import { netnsSkipReason, uniqueName } from './netns.js';

export const XDP_OBJECT = fileURLToPath(new URL('../../../bpf/build/fulcrum_xdp.bpf.o', import.meta.url));
export const PASS_OBJECT = fileURLToPath(new URL('../../../bpf/build/fulcrum_peer_pass.bpf.o', import.meta.url));

/** Why XDP kernel tests cannot run here, or undefined (mounts bpffs when it is missing). */
export function xdpSkipReason(): string | undefined {
  const ns = netnsSkipReason();
  if (ns) return ns;
  if (!existsSync(XDP_OBJECT)) return `${XDP_OBJECT} is not built (scripts/build-bpf.sh)`;
  if (!existsSync('/sys/kernel/btf/vmlinux')) return 'the kernel has no BTF';
  try {
    if (!isBpffs('/sys/fs/bpf')) mountBpffs('/sys/fs/bpf');
  } catch (e) {
    return `no bpffs: ${(e as Error).message}`;
  }
  return undefined;
}

/** A unique bpffs pin directory and a unique state directory for one test. */
export function testDirs(): { pinDir: string; stateDir: string } {
  return { pinDir: `/sys/fs/bpf/${uniqueName('fltest')}-${Date.now() % 100000}`, stateDir: mkdtempSync(join(tmpdir(), 'fulcrum-xdp-')) };
}

/** Small tables so that tests load fast. */
export const SMALL = { maxVips: 8, maxBackends: 64, maglevTableSize: 251, conntrackSize: 4096 } as const;
