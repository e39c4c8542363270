/**
 * Runs tasks one at a time, in the order they were queued. A task that fails rejects its own
 * promise only: the next task still runs.
 */
export class SerialQueue {
  #tail: Promise<unknown> = Promise.resolve();

  run<T>(fn: () => T | Promise<T>): Promise<T> {
    const run = this.#tail.then(fn, fn);
    this.#tail = run.catch(() => undefined);
    return run;
  }

  /** Resolves once every task queued so far has finished (never rejects). */
  idle(): Promise<void> {
    return this.#tail.then(() => undefined);
  }
}
