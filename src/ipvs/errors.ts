/**
 * Kernel errno -> KernelError with the meaning an operator needs, per IPVS operation. The errnos
 * are what net/netfilter/ipvs/ip_vs_ctl.c returns for each command.
 */
import { KernelError } from '../errors.js';
import { formatEndpoint } from '../model/net.js';
import type { IpvsServiceKey } from './types.js';

export type IpvsOpKind =
  | 'info' | 'listServices' | 'getService' | 'addService' | 'editService' | 'deleteService'
  | 'listDestinations' | 'addDestination' | 'editDestination' | 'deleteDestination'
  | 'flush' | 'zero' | 'getTimeouts' | 'setTimeouts' | 'startDaemon' | 'stopDaemon' | 'listDaemons';

export interface IpvsOpContext {
  kind: IpvsOpKind;
  /** Human text of the operation, e.g. "add service tcp 10.0.0.1:80" (a function: built only when needed). */
  text: string | (() => string);
  scheduler?: string | undefined;
  pe?: string | undefined;
}

const EPERM = 1, ENOENT = 2, ESRCH = 3, EEXIST = 17, EINVAL = 22, EAFNOSUPPORT = 97, EOPNOTSUPP = 95, ENOBUFS = 105;

const SERVICE_OPS: ReadonlySet<IpvsOpKind> = new Set(['getService', 'editService', 'deleteService', 'addDestination', 'editDestination', 'deleteDestination', 'zero', 'listDestinations']);

export function ipvsMeaning(ctx: IpvsOpContext, errno: number): string | undefined {
  switch (errno) {
    case EEXIST:
      if (ctx.kind === 'addService') return 'service already exists';
      if (ctx.kind === 'addDestination') return 'destination already exists';
      if (ctx.kind === 'startDaemon') return 'a sync daemon in this state is already running';
      return 'already exists';
    case ESRCH:
      if (ctx.kind === 'stopDaemon') return 'no sync daemon in this state is running';
      if (SERVICE_OPS.has(ctx.kind)) return 'no such service';
      return 'no such object';
    case ENOENT:
      if (ctx.kind === 'addService' || ctx.kind === 'editService') {
        const what = `scheduler "${ctx.scheduler ?? '?'}"${ctx.pe ? ` or persistence engine "${ctx.pe}"` : ''}`;
        return `${what} not available: this kernel has no module ip_vs_${ctx.scheduler ?? '?'}${ctx.pe ? ` / ip_vs_pe_${ctx.pe}` : ''}`;
      }
      if (ctx.kind === 'editDestination' || ctx.kind === 'deleteDestination') return 'no such destination';
      return 'not found';
    case EINVAL:
      if (ctx.kind === 'addDestination' || ctx.kind === 'editDestination') {
        return 'invalid destination: the address must be unicast and routable from this host, fwmark services take port 0, and NAT needs the service port family';
      }
      if (ctx.kind === 'addService' || ctx.kind === 'editService') {
        return 'invalid service: check protocol, netmask/prefix (persistence), one-packet (UDP only) and scheduler name';
      }
      return 'invalid argument';
    case EAFNOSUPPORT:
      return 'address family not supported here (IPv6 IPVS, or a destination family that differs from the service outside tunnel mode)';
    case EPERM:
      return 'needs CAP_NET_ADMIN (run as root)';
    case EOPNOTSUPP:
      return 'not supported by this kernel';
    case ENOBUFS:
      return 'netlink receive buffer overrun: replies were lost (lower the request window)';
    default:
      return undefined;
  }
}

export function opText(ctx: IpvsOpContext): string {
  return typeof ctx.text === 'string' ? ctx.text : ctx.text();
}

export function ipvsKernelError(ctx: IpvsOpContext, errno: number): KernelError {
  return new KernelError(opText(ctx), errno, ipvsMeaning(ctx, errno), { details: { operation: ctx.kind } });
}

export function describeKey(key: IpvsServiceKey): string {
  if (key.fwmark !== undefined) return `fwmark ${key.fwmark} (${key.family})`;
  return `${key.protocol} ${formatEndpoint(key.address, key.port)}`;
}
