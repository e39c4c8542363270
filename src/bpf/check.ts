import { FeatureMissingError, FulcrumError, KernelError } from '../errors.js';
import { lib, type Ptr } from './ffi.js';
import { errno } from './libc.js';
import { recentLibbpfLog } from './log.js';

/** libbpf's own text for an error (it knows its private LIBBPF_ERRNO__* codes as well as errno). */
export function describeErrno(err: number): string {
  const buf = Buffer.alloc(128);
  lib().libbpf_strerror(err, buf, buf.length);
  const end = buf.indexOf(0);
  return buf.subarray(0, end < 0 ? buf.length : end).toString();
}

export interface FailOptions {
  /** errno values that mean "this kernel/device lacks the feature": raised as FeatureMissingError. */
  featureMissing?: { errnos: number[]; feature: string; message: string };
  /** Attach the recent libbpf log (e.g. the verifier's complaint) to the error details. */
  withLog?: boolean;
}

export function failure(operation: string, err: number, opts: FailOptions = {}): FulcrumError {
  const e = Math.abs(err);
  const details = opts.withLog ? { libbpfLog: recentLibbpfLog() } : undefined;
  if (opts.featureMissing && opts.featureMissing.errnos.includes(e)) {
    return new FeatureMissingError(opts.featureMissing.feature, `${operation}: ${opts.featureMissing.message}`, { errno: e, details });
  }
  return new KernelError(operation, e, describeErrno(e), { details });
}

/** Throws for a negative libbpf return (libbpf 1.x returns -errno). */
export function checkInt(operation: string, ret: number, opts?: FailOptions): number {
  if (ret < 0) throw failure(operation, -ret, opts);
  return ret;
}

/** Throws for a NULL pointer return (libbpf 1.x sets errno). */
export function checkPtr(operation: string, ptr: Ptr | null, opts?: FailOptions): Ptr {
  if (ptr === null || ptr === 0n) throw failure(operation, errno() || 22, opts);
  return ptr;
}

export function notFound(what: string): FulcrumError {
  return new FulcrumError('NOT_FOUND', what);
}

export function closedError(what: string): FulcrumError {
  return new FulcrumError('INTERNAL', `${what} is closed`);
}
