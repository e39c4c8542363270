import { join } from 'node:path';
import { z } from 'zod';
import { StateFile } from '../util/state-file.js';

/**
 * The service name of each VIP the maps hold (the maps know VIP keys only), kept in
 * <stateDir>/xdp-services.json so that stats name services after a restart. Earlier agents wrote
 * the bare map `{ "<vip key>": "<service name>" }`; that form is still read.
 */
const NamesSchema = z.record(z.string(), z.string());
const VERSION = 1;
export const NAMES_FILE = 'xdp-services.json';

export class ServiceNames {
  readonly #file: StateFile<typeof NamesSchema>;
  #names: Record<string, string>;
  /** The file is in the unversioned form: the next set() rewrites it even if no name changed. */
  #unversioned = false;

  constructor(stateDir: string) {
    this.#file = new StateFile(join(stateDir, NAMES_FILE), VERSION, NamesSchema, 'XDP service names', (doc) => {
      this.#unversioned = true;
      return doc;
    });
    this.#names = this.#file.load() ?? {};
  }

  /** The service of a VIP (by vipKeyString), or the key itself for a VIP with no name on record. */
  nameOf(vipKey: string): string {
    return this.#names[vipKey] ?? vipKey;
  }

  /** Records exactly these names (written only when they changed). */
  set(names: Record<string, string>): void {
    if (!this.#unversioned && JSON.stringify(names) === JSON.stringify(this.#names)) return;
    this.#file.save(names);
    this.#names = names;
    this.#unversioned = false;
  }

  clear(): void {
    this.#file.save({});
    this.#names = {};
    this.#unversioned = false;
  }
}
