import { pino, type Logger, type LoggerOptions } from 'pino';

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
