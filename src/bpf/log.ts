import type { Logger } from '../log.js';
import { lib, readCString, register, type Ptr } from './ffi.js';

/**
 * libbpf's diagnostics (libbpf_set_print). libbpf calls the print function with a printf format and
 * a va_list; on x86-64 and arm64 a va_list parameter is passed as a pointer, so glibc's vasprintf
 * formats it into a buffer of the right size (a verifier log can be megabytes), which we free. The callback only runs during synchronous libbpf calls on the main thread.
 *
 * Messages always go into a small ring (attached to load errors as details); they go to pino only
 * after routeLibbpfLog(logger).
 */

const LEVELS = ['warn', 'info', 'debug'] as const; // enum libbpf_print_level: WARN, INFO, DEBUG
const RING = 64;
const ring: string[] = [];
let logger: Logger | undefined;
let installed: bigint | undefined;
const slot = Buffer.alloc(8);

function onPrint(level: number, fmt: string, ap: Ptr): number {
  try {
    const n = lib().vasprintf(slot, fmt, ap);
    if (n < 0) return 0;
    const p = slot.readBigUInt64LE(0);
    let text: string;
    try {
      text = readCString(p, n).replace(/\n$/, '');
    } finally {
      lib().free(p);
    }
    if (level <= 1) {
      ring.push(text);
      if (ring.length > RING) ring.shift();
    }
    const method = LEVELS[level] ?? 'debug';
    logger?.[method]({ component: 'libbpf' }, text);
  } catch {
    // never throw into C
  }
  return 0;
}

/** Installs the print hook (idempotent). Called by every entry point that may make libbpf print. */
export function ensurePrintHook(): void {
  if (installed !== undefined) return;
  installed = register(onPrint);
  lib().libbpf_set_print(installed);
}

/** Sends libbpf's log to `target` (warn/info as is, debug as debug). Returns a function that stops it. */
export function routeLibbpfLog(target: Logger): () => void {
  ensurePrintHook();
  logger = target;
  return () => {
    if (logger === target) logger = undefined;
  };
}

/** The last warn/info lines libbpf printed (e.g. the verifier log of a failed load). */
export function recentLibbpfLog(): string[] {
  return [...ring];
}

/** Empties the ring so an error carries only the lines of its own operation. */
export function clearLibbpfLog(): void {
  ring.length = 0;
}

