import { FulcrumError, type FulcrumErrorOptions } from '../errors.js';

/** etcd cannot be reached (refused, timed out, no leader): a write answers 503, the node runs on. */
export class StoreUnavailableError extends FulcrumError {
  constructor(message: string, options: FulcrumErrorOptions = {}) {
    super('STORE_UNAVAILABLE', message, options);
    this.name = 'StoreUnavailableError';
  }
}

export function isStoreUnavailable(e: unknown): e is StoreUnavailableError {
  return e instanceof StoreUnavailableError;
}

/** The If-Match revision lost the race: 412 with the current revision, as the file store answers. */
export function revisionConflict(expected: number, current: number): FulcrumError {
  return new FulcrumError('PRECONDITION_FAILED', `If-Match revision ${expected} does not match the current revision ${current}`, {
    details: { current },
  });
}
