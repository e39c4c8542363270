import * as koffi from 'koffi';

/**
 * The one koffi binding of libc.so.6 in Fulcrum: libbpf-ts's calls (fd handles, bpffs, setns,
 * mmap, CPU affinity, libbpf's print callback) and src/net's AF_PACKET socket. It lives here, not
 * in src/net, so that src/bpf stays a standalone library (libbpf-ts imports nothing of Fulcrum but
 * its error catalogue and a logger type); src/net imports it from here. It loads apart from
 * libbpf.so.1, so a host without libbpf still sends Ethernet frames.
 */
function declare(libc: koffi.LibraryHandle) {
  const f = (sig: string) => libc.func(sig);
  return {
    vasprintf: f('int vasprintf(void *strp, const char *fmt, void *ap)'),
    free: f('void free(void *p)'),
    close: f('int close(int fd)'),
    open: f('int open(const char *path, int flags, uint32_t mode)'),
    setns: f('int setns(int fd, int nstype)'),
    if_nametoindex: f('uint32_t if_nametoindex(const char *name)'),
    mount: f('int mount(const char *src, const char *target, const char *fstype, unsigned long flags, void *data)'),
    statfs: f('int statfs(const char *path, void *buf)'),
    sched_setaffinity: f('int sched_setaffinity(int pid, size_t size, void *mask)'),
    sched_getaffinity: f('int sched_getaffinity(int pid, size_t size, void *mask)'),
    gettid: f('int gettid(void)'),
    mmap: f('void *mmap(void *addr, size_t len, int prot, int flags, int fd, int64_t off)'),
    munmap: f('int munmap(void *addr, size_t len)'),
    socket: f('int socket(int domain, int type, int protocol)'),
    sendto: f('long sendto(int fd, const void *buf, size_t len, int flags, const void *addr, uint32_t addrlen)'),
  };
}

export type Libc = ReturnType<typeof declare>;

let table: Libc | undefined;

/** The libc function table, loaded on first use. */
export function libc(): Libc {
  table ??= declare(koffi.load('libc.so.6'));
  return table;
}

/** errno as the last foreign call through koffi left it. */
export function errno(): number {
  return koffi.errno();
}
