import { pino, type Logger, type LoggerOptions } from 'pino';
import type { Report } from './dataplane/types.js';

/**
 * The one root logger. Components take a child bound to `{ component }` (and `{ service }` where
 * it applies); library modules never log on their own, they return errors.
 */
export type { Logger };

export function createRootLogger(options: LoggerOptions = {}): Logger {
  return pino({ name: 'fulcrum', level: process.env.FULCRUM_LOG_LEVEL ?? 'info', ...options });
}

/** A logger that drops everything: for tests and for library callers that pass none. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

/** A dataplane's `Report` that logs each note on `log` (bound once by the caller). */
export function reportTo(log: Logger): Report {
  return (note) => log[note.level](note.fields ?? {}, note.message);
}
