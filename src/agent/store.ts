import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FulcrumError } from '../errors.js';
import { parseDesiredState, type DesiredState } from '../model/index.js';
import { writeFileAtomic } from '../util/atomic-file.js';
import { canonicalJson } from '../util/json-value.js';

/**
 * The agent's embedded store of the desired state. One JSON document replaced crash-safely
 * (temp file, fsync, rename, fsync of the directory): after a kill -9 or a power cut it holds the
 * last acknowledged revision or the one before it was acknowledged, never a torn mix.
 */
export interface StoredState {
  /** Bumped by every change that was applied; 0 for a store that was never written. */
  revision: number;
  state: DesiredState;
  /** sha256 of the config file's desired state that last seeded the store (see Agent.start). */
  seedDigest?: string | undefined;
  /** ISO time of the last write. */
  updatedAt?: string | undefined;
}

export interface StateStore {
  /** The stored state, or undefined when nothing was stored yet. */
  load(): StoredState | undefined;
  /** Returns only once the state is durable. */
  save(stored: StoredState): void;
  readonly location: string;
}

const FORMAT = 1;

export class FileStateStore implements StateStore {
  readonly location: string;

  constructor(stateDir: string) {
    this.location = join(stateDir, 'desired-state.json');
  }

  load(): StoredState | undefined {
    let text: string;
    try {
      text = readFileSync(this.location, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new FulcrumError('STORE_ERROR', `cannot read ${this.location}: ${(e as Error).message}`, { cause: e });
    }
    let doc: { format?: unknown; revision?: unknown; state?: unknown; seedDigest?: unknown; updatedAt?: unknown };
    try {
      doc = JSON.parse(text) as typeof doc;
    } catch (cause) {
      throw new FulcrumError('STORE_ERROR', `${this.location} is not valid JSON: ${(cause as Error).message}`, { cause });
    }
    if (doc.format !== FORMAT || typeof doc.revision !== 'number')
      throw new FulcrumError('STORE_ERROR', `${this.location}: unknown format ${String(doc.format)}`);
    let state: DesiredState;
    try {
      state = parseDesiredState(doc.state);
    } catch (e) {
      throw new FulcrumError('STORE_ERROR', `${this.location}: ${(e as Error).message}`, { cause: e });
    }
    return {
      revision: doc.revision,
      state,
      seedDigest: typeof doc.seedDigest === 'string' ? doc.seedDigest : undefined,
      updatedAt: typeof doc.updatedAt === 'string' ? doc.updatedAt : undefined,
    };
  }

  save(stored: StoredState): void {
    const doc = { format: FORMAT, ...stored };
    try {
      writeFileAtomic(this.location, JSON.stringify(doc, null, 1) + '\n');
    } catch (e) {
      throw new FulcrumError('STORE_ERROR', `cannot write ${this.location}: ${(e as Error).message}`, { cause: e });
    }
  }
}

export function stateDigest(state: DesiredState): string {
  return createHash('sha256').update(canonicalJson(state)).digest('hex');
}
