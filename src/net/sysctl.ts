import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * A sysctl of this process's network namespace (/proc/sys/net is per netns), named by its path
 * segments: ['net', 'ipv4', 'conf', 'bond0.100', 'accept_local'] (an interface name may hold a
 * dot, so a dotted key would be ambiguous). Errors are the file system's, for the caller to word.
 */
const path = (segments: readonly string[]) => join('/proc/sys', ...segments);

/** The value without its trailing newline, or undefined when the sysctl does not exist. */
export function readSysctl(segments: readonly string[]): string | undefined {
  try {
    return readFileSync(path(segments), 'utf8').trim();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

export function writeSysctl(segments: readonly string[], value: string): void {
  writeFileSync(path(segments), `${value}\n`);
}
