/**
 * The one catalogue of coded errors. Every error Fulcrum raises on purpose is a FulcrumError with a
 * code from this table; the REST API maps the code to its HTTP status, the CLI prints `code: message`.
 * Kernel failures keep their errno (`errno`, `errnoName`) and the underlying error as `cause`.
 */

export const ERROR_CATALOGUE = {
  INVALID_CONFIG: { status: 400, title: 'The desired state is invalid' },
  INVALID_REQUEST: { status: 400, title: 'The request is invalid' },
  UNAUTHORIZED: { status: 401, title: 'Authentication required' },
  FORBIDDEN: { status: 403, title: 'Not allowed for this token' },
  NOT_FOUND: { status: 404, title: 'No such resource' },
  CONFLICT: { status: 409, title: 'Conflicts with the current state' },
  PRECONDITION_FAILED: { status: 412, title: 'The revision does not match (If-Match)' },
  PAYLOAD_TOO_LARGE: { status: 413, title: 'Request body too large' },
  RATE_LIMITED: { status: 429, title: 'Too many requests' },
  KERNEL_ERROR: { status: 502, title: 'The kernel rejected a change' },
  FEATURE_MISSING: { status: 503, title: 'A required kernel feature is missing' },
  APPLY_FAILED: { status: 500, title: 'The change could not be applied and was rolled back' },
  STORE_ERROR: { status: 500, title: 'The state store failed' },
  STORE_UNAVAILABLE: { status: 503, title: 'The shared state store (etcd) is unreachable; writes are refused, reads answer from the last known state' },
  SPEAKER_ERROR: { status: 502, title: 'The BGP speaker (BIRD) is unreachable or refused its configuration' },
  INTERNAL: { status: 500, title: 'Internal error' },
} as const;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;

export interface FulcrumErrorOptions {
  cause?: unknown;
  /** Positive errno as the kernel reports it (e.g. 17 for EEXIST). */
  errno?: number;
  /** Extra machine-readable detail (e.g. the zod issues, the failing step). */
  details?: unknown;
}

export class FulcrumError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly errno: number | undefined;
  readonly errnoName: string | undefined;
  readonly details: unknown;

  constructor(code: ErrorCode, message: string, options: FulcrumErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'FulcrumError';
    this.code = code;
    this.status = ERROR_CATALOGUE[code].status;
    this.errno = options.errno;
    this.errnoName = options.errno === undefined ? undefined : errnoName(options.errno);
    this.details = options.details;
  }

  toJSON(): Record<string, unknown> {
    const body: Record<string, unknown> = { code: this.code, message: this.message };
    if (this.errno !== undefined) body.errno = this.errno;
    if (this.errnoName !== undefined) body.errnoName = this.errnoName;
    if (this.details !== undefined) body.details = this.details;
    return body;
  }
}

/** A kernel feature (IPVS, native XDP, BTF...) is not available; says what is needed. */
export class FeatureMissingError extends FulcrumError {
  readonly feature: string;
  constructor(feature: string, message: string, options: FulcrumErrorOptions = {}) {
    super('FEATURE_MISSING', message, options);
    this.name = 'FeatureMissingError';
    this.feature = feature;
  }
}

/** A kernel call failed; keeps errno and names the operation. */
export class KernelError extends FulcrumError {
  readonly operation: string;
  constructor(operation: string, errno: number, meaning?: string, options: Omit<FulcrumErrorOptions, 'errno'> = {}) {
    const name = errnoName(errno) ?? `errno ${errno}`;
    super('KERNEL_ERROR', `${operation}: ${name}${meaning ? ` (${meaning})` : ''}`, { ...options, errno });
    this.name = 'KernelError';
    this.operation = operation;
  }
}

// Linux errno numbers (asm-generic/errno-base.h, errno.h) for the names we map and print.
const ERRNO_NAMES: Record<number, string> = {
  1: 'EPERM', 2: 'ENOENT', 3: 'ESRCH', 4: 'EINTR', 5: 'EIO', 6: 'ENXIO', 7: 'E2BIG', 9: 'EBADF',
  11: 'EAGAIN', 12: 'ENOMEM', 13: 'EACCES', 14: 'EFAULT', 16: 'EBUSY', 17: 'EEXIST', 19: 'ENODEV',
  22: 'EINVAL', 24: 'EMFILE', 28: 'ENOSPC', 34: 'ERANGE', 61: 'ENODATA', 71: 'EPROTO', 75: 'EOVERFLOW',
  90: 'EMSGSIZE', 93: 'EPROTONOSUPPORT', 95: 'EOPNOTSUPP', 97: 'EAFNOSUPPORT', 98: 'EADDRINUSE', 99: 'EADDRNOTAVAIL',
  100: 'ENETDOWN', 101: 'ENETUNREACH', 105: 'ENOBUFS', 110: 'ETIMEDOUT', 111: 'ECONNREFUSED', 113: 'EHOSTUNREACH',
  524: 'ENOTSUPP',
};
const ERRNO_NUMBERS: Record<string, number> = Object.fromEntries(
  Object.entries(ERRNO_NAMES).map(([n, name]) => [name, Number(n)]),
);

export function errnoName(errno: number): string | undefined {
  return ERRNO_NAMES[Math.abs(errno)];
}

export function errnoFromName(name: string): number | undefined {
  return ERRNO_NUMBERS[name];
}

export function isFulcrumError(e: unknown): e is FulcrumError {
  return e instanceof FulcrumError;
}

/** An error as log or event fields: a FulcrumError's JSON form, else its message. */
export function errorFields(e: unknown): Record<string, unknown> {
  if (isFulcrumError(e)) return e.toJSON();
  return { message: (e as Error)?.message ?? String(e) };
}
