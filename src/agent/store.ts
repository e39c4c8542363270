import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FulcrumError } from '../errors.js';
import { parseDesiredState, type DesiredState } from '../model/index.js';
import { writeFileAtomic } from '../util/atomic-file.js';

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

/** Canonical JSON (sorted keys) so that equal states compare and hash equal. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => {
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      return Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    }
    return v;
  });
}

export function stateDigest(state: DesiredState): string {
  return createHash('sha256').update(canonicalJson(state)).digest('hex');
}

/**
 * Deep equality of JSON-like values, key order ignored and undefined-valued keys treated as
 * absent (as in JSON). Allocation-free, so comparing two 1,000-service states costs little.
 */
export function sameValue(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!sameValue(a[i], b[i])) return false;
    return true;
  }
  if (Array.isArray(b)) return false;
  const ao = a as Record<string, unknown>, bo = b as Record<string, unknown>;
  let na = 0;
  for (const k in ao) {
    if (ao[k] === undefined) continue;
    na++;
    if (!sameValue(ao[k], bo[k])) return false;
  }
  let nb = 0;
  for (const k in bo) if (bo[k] !== undefined) nb++;
  return na === nb;
}
