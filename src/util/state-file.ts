import { readFileSync } from 'node:fs';
import type { z } from 'zod';
import { FulcrumError } from '../errors.js';
import { writeFileAtomic } from './atomic-file.js';

/**
 * A small JSON file the agent keeps for itself (ownership records, saved runtime state):
 * versioned, validated with its schema when read, replaced crash-safely when written. A file that
 * is missing reads as undefined; one that is unreadable, of another version or invalid is an
 * error that names the file, never a silent reset.
 */
export class StateFile<S extends z.ZodType> {
  constructor(
    readonly path: string,
    private readonly version: number,
    private readonly schema: S,
    /** What it holds, for errors ("IPVS sync daemon ownership record"). */
    private readonly what: string,
    /**
     * For a file that had an unversioned form before (nodes may still hold one): its data from such
     * a document (one without `version`), validated as usual; the next save writes the versioned form.
     */
    private readonly fromUnversioned?: (doc: unknown) => unknown,
  ) {}

  load(): z.output<S> | undefined {
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new FulcrumError('STORE_ERROR', `cannot read the ${this.what} ${this.path}: ${(e as Error).message}`, { cause: e });
    }
    let doc: { version?: unknown; data?: unknown };
    try {
      doc = JSON.parse(text) as typeof doc;
    } catch (e) {
      throw new FulcrumError('STORE_ERROR', `the ${this.what} ${this.path} is not valid JSON: ${(e as Error).message}`, { cause: e });
    }
    if (this.fromUnversioned && !(doc !== null && typeof doc === 'object' && 'version' in doc)) doc = { version: this.version, data: this.fromUnversioned(doc) };
    if (doc?.version !== this.version)
      throw new FulcrumError('STORE_ERROR', `the ${this.what} ${this.path} has version ${String(doc?.version)}; this agent reads version ${this.version}`);
    const parsed = this.schema.safeParse(doc.data);
    if (!parsed.success)
      throw new FulcrumError('STORE_ERROR', `the ${this.what} ${this.path} is invalid: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`);
    return parsed.data;
  }

  save(data: z.input<S>): void {
    writeFileAtomic(this.path, JSON.stringify({ version: this.version, data }, null, 1) + '\n');
  }
}
