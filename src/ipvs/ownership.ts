import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FulcrumError } from '../errors.js';
import { writeFileAtomic } from '../util/atomic-file.js';
import type { DrainRecord } from './plan.js';

/**
 * Durable record of the IPVS services Fulcrum owns (by kernel key) and of the backends it is
 * draining. Written with a crash-safe replace. The reconciler records a key BEFORE it adds the
 * service to the kernel and forgets it only AFTER the kernel deleted it, so a crash can leave an
 * owned key with no kernel service (pruned later) but never a kernel service nobody owns.
 */
export interface OwnershipState {
  owned: Set<string>;
  drains: Map<string, DrainRecord>;
}

interface FileV1 {
  version: 1;
  owned: string[];
  drains: DrainRecord[];
}

export class OwnershipStore {
  readonly path: string;

  constructor(stateDir: string) {
    this.path = join(stateDir, 'ipvs-owned.json');
  }

  load(): OwnershipState {
    if (!existsSync(this.path)) return { owned: new Set(), drains: new Map() };
    let data: FileV1;
    try {
      data = JSON.parse(readFileSync(this.path, 'utf8')) as FileV1;
    } catch (e) {
      throw new FulcrumError('STORE_ERROR', `cannot read IPVS ownership record ${this.path}: ${(e as Error).message}`, { cause: e });
    }
    if (data?.version !== 1 || !Array.isArray(data.owned) || !Array.isArray(data.drains))
      throw new FulcrumError('STORE_ERROR', `IPVS ownership record ${this.path} has an unknown format (version ${String(data?.version)})`);
    return {
      owned: new Set(data.owned),
      drains: new Map(data.drains.map((d) => [`${d.key} ${d.dest}`, d])),
    };
  }

  save(state: OwnershipState): void {
    const body: FileV1 = { version: 1, owned: [...state.owned].sort(), drains: [...state.drains.values()] };
    writeFileAtomic(this.path, JSON.stringify(body, null, 1) + '\n');
  }
}
