import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { FulcrumError } from '../errors.js';
import { StateFile } from '../util/state-file.js';
import { drainId, type DrainRecord } from './plan.js';

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

const DrainRecordSchema = z.object({
  key: z.string(), dest: z.string(), service: z.string(), startedAt: z.number(), deadline: z.number(),
}).strict();
const OwnershipSchema = z.object({ owned: z.array(z.string()), drains: z.array(DrainRecordSchema) }).strict();
/**
 * Version 1 had no state-file envelope: `{ version: 1, owned, drains }`. Agents before version 2
 * wrote it; it is still read, and the next save rewrites it as version 2.
 */
const VersionOneSchema = OwnershipSchema.extend({ version: z.literal(1) }).strict();
const VERSION = 2;
const WHAT = 'IPVS ownership record';

export class OwnershipStore {
  private readonly file: StateFile<typeof OwnershipSchema>;

  constructor(stateDir: string) {
    this.file = new StateFile(join(stateDir, 'ipvs-owned.json'), VERSION, OwnershipSchema, WHAT);
  }

  get path(): string {
    return this.file.path;
  }

  load(): OwnershipState {
    const data = this.loadVersionOne() ?? this.file.load() ?? { owned: [], drains: [] };
    return {
      owned: new Set(data.owned),
      drains: new Map(data.drains.map((d) => [drainId(d.key, d.dest), d])),
    };
  }

  save(state: OwnershipState): void {
    this.file.save({ owned: [...state.owned].sort(), drains: [...state.drains.values()] });
  }

  /** The record when the file holds version 1; undefined for anything else (the state file reads it). */
  private loadVersionOne(): z.output<typeof OwnershipSchema> | undefined {
    let doc: unknown;
    try {
      doc = JSON.parse(readFileSync(this.path, 'utf8'));
    } catch {
      return undefined; // missing or unreadable: the state file says which
    }
    if ((doc as { version?: unknown } | null)?.version !== 1) return undefined;
    const parsed = VersionOneSchema.safeParse(doc);
    if (!parsed.success)
      throw new FulcrumError('STORE_ERROR', `the ${WHAT} ${this.path} (version 1) is invalid: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`);
    const { version: _, ...data } = parsed.data;
    return data;
  }
}
