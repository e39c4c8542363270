import { checkInt, closedError } from './check.js';
import { lib } from './ffi.js';

/**
 * A kernel BPF object held by fd (a map or a program). `owned` fds are closed by close(); fds
 * borrowed from a BpfObject are closed by the object, which then calls invalidate().
 */
export abstract class FdHandle {
  #fd: number;
  readonly #owned: boolean;
  /** Names the object in errors, e.g. `map "vips"`. */
  protected readonly what: string;

  protected constructor(fd: number, owned: boolean, what: string) {
    this.#fd = fd;
    this.#owned = owned;
    this.what = what;
  }

  get fd(): number {
    if (this.#fd < 0) throw closedError(this.what);
    return this.#fd;
  }

  /** Pins the object at a bpffs path (it stays alive after every fd is closed). */
  pin(path: string): void {
    checkInt(`bpf_obj_pin(${this.what}, ${path})`, lib().bpf_obj_pin(this.fd, path));
  }

  close(): void {
    if (this.#fd < 0) return;
    if (this.#owned) lib().close(this.#fd);
    this.#fd = -1;
  }

  /** @internal the owning object closed: the fd is no longer ours to use. */
  invalidate(): void {
    this.#fd = -1;
  }
}
