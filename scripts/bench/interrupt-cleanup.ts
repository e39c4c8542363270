/**
 * Cleanups that must also run when the benchmark is interrupted (SIGINT, SIGTERM): each one is
 * registered while its resources exist and runs once, whether from the caller's `finally` or
 * from the signal handler (which then exits with 130).
 */
const pending = new Set<() => Promise<void>>();
let installed = false;

function install(): void {
  if (installed) return;
  installed = true;
  const onSignal = (signal: NodeJS.Signals) => {
    process.stderr.write(`\n${signal}: cleaning up\n`);
    void (async () => {
      for (const fn of [...pending]) await fn().catch((e: unknown) => process.stderr.write(`cleanup failed: ${String(e)}\n`));
      process.exit(130);
    })();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
}

/** Registers `fn`; the returned function runs it (once; later calls share the same promise). */
export function cleanupOnInterrupt(fn: () => Promise<void>): () => Promise<void> {
  install();
  let done: Promise<void> | undefined;
  const once = () => {
    done ??= fn().finally(() => pending.delete(once));
    return done;
  };
  pending.add(once);
  return once;
}
