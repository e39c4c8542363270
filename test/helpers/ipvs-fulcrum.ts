import { before, after } from 'node:test';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { parseDesiredState, type Service } from '../../src/model/index.js';
import { IpvsReconciler } from '../../src/ipvs/reconciler.js';
import { openIpvsClient } from '../../src/ipvs/client.js';
import { run } from './netns.js';
import { ipvsSkipReason, resetIpvs } from './ipvs-vm.js';
import { IpvsLab } from './ipvs-lab.js';

/** Fulcrum's own pieces for VM tests: a reconciler on the real client, the CLI as a child process. */

export const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

export function services(list: object[]): Service[] {
  return parseDesiredState({ services: list }).services;
}

export async function reconcilerIn(stateDir: string, opts: { drainTimeoutMs?: number } = {}): Promise<IpvsReconciler> {
  return new IpvsReconciler({ client: await openIpvsClient(), stateDir, ...opts });
}

export function tempDir(): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-vm-'));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export function writeConfig(dir: string, list: object[]): string {
  const path = join(dir, 'fulcrum.yaml');
  writeFileSync(path, stringify({ services: list }));
  return path;
}

/** `fulcrum ARGS...` in a new node process. */
export async function fulcrum(...args: string[]): Promise<string> {
  return (await run(process.execPath, [CLI, ...args], { timeoutMs: 120_000 })).stdout;
}

/**
 * A lab (client, backends, VIP) plus a reconciler with its own state dir, built before the file's
 * tests and torn down after them (IPVS reset on both sides). Read `lab` and `r` inside tests.
 */
export function labWithReconciler(mode: 'nat' | 'dr', backendCount: number): { skip: string | undefined; readonly lab: IpvsLab; readonly r: IpvsReconciler } {
  const skip = ipvsSkipReason();
  let lab: IpvsLab | undefined;
  let r: IpvsReconciler | undefined;
  let state: ReturnType<typeof tempDir> | undefined;
  before(async () => {
    if (skip) return;
    await resetIpvs();
    lab = await IpvsLab.create(mode, backendCount);
    state = tempDir();
    r = await reconcilerIn(state.dir);
  });
  after(async () => {
    if (skip) return;
    await r?.cleanup().catch(() => undefined);
    await r?.close();
    await lab?.cleanup();
    state?.remove();
    await resetIpvs();
  });
  return {
    skip,
    get lab() { if (!lab) throw new Error('lab not built'); return lab; },
    get r() { if (!r) throw new Error('reconciler not opened'); return r; },
  };
}
