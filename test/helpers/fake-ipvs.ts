import { FulcrumError, KernelError } from '../../src/errors.js';
import type {
  IpvsClient, IpvsDest, IpvsDestSpec, IpvsFamily, IpvsInfo, IpvsOperation, IpvsOperationResult, IpvsService, IpvsServiceKey,
  IpvsServiceSpec, IpvsSyncDaemon, IpvsTimeouts,
} from '../../src/ipvs/types.js';
import { destId, keyString } from '../../src/ipvs/model-specs.js';
import { runOperation } from '../../src/ipvs/executor.js';

/**
 * An in-memory IpvsClient for pure tests: kernel-like errors (EEXIST, ENOENT, ESRCH), call
 * counting, and a hook to make chosen calls fail. Behind the IpvsClient interface only.
 * It has the optional `batch()` (each operation through the single call of the same name, every
 * one tried, outcomes in order, as the netlink client's); `withoutBatch()` gives one without it.
 */
export class FakeIpvsClient implements IpvsClient {
  readonly services = new Map<string, { spec: IpvsServiceSpec; dests: Map<string, IpvsDest> }>();
  readonly calls: string[] = [];
  /** Return an errno to make a call fail (op is the method name). */
  failWhen: ((op: string, key: IpvsServiceKey | undefined, dest?: { address: string; port: number }) => number | undefined) | undefined;
  closed = false;

  private check(op: string, key?: IpvsServiceKey, dest?: { address: string; port: number }): void {
    this.calls.push(op);
    const errno = this.failWhen?.(op, key, dest);
    if (errno !== undefined) throw new KernelError(op, errno, 'injected');
  }

  private svc(op: string, key: IpvsServiceKey) {
    const s = this.services.get(keyString(key));
    if (!s) throw new KernelError(op, 3, 'no such service'); // ESRCH, as the kernel answers
    return s;
  }

  async info(): Promise<IpvsInfo> { return { version: '1.2.1', connTableSize: 4096 }; }

  async listServices(): Promise<IpvsService[]> {
    this.check('listServices');
    return [...this.services.values()].map((s) => ({ ...s.spec, flags: s.spec.flags | 0x2 }));
  }

  async getService(key: IpvsServiceKey): Promise<IpvsService | undefined> {
    this.check('getService', key);
    const s = this.services.get(keyString(key));
    return s ? { ...s.spec, flags: s.spec.flags | 0x2 } : undefined;
  }

  async addService(spec: IpvsServiceSpec): Promise<void> {
    this.check('addService', spec.key);
    const k = keyString(spec.key);
    if (this.services.has(k)) throw new KernelError('addService', 17, 'service exists');
    this.services.set(k, { spec: { ...spec }, dests: new Map() });
  }

  async editService(spec: IpvsServiceSpec): Promise<void> {
    this.check('editService', spec.key);
    this.svc('editService', spec.key).spec = { ...spec };
  }

  async deleteService(key: IpvsServiceKey): Promise<void> {
    this.check('deleteService', key);
    this.svc('deleteService', key);
    this.services.delete(keyString(key));
  }

  async listDestinations(key: IpvsServiceKey): Promise<IpvsDest[]> {
    this.check('listDestinations', key);
    return [...this.svc('listDestinations', key).dests.values()].map((d) => ({ ...d }));
  }

  async addDestination(key: IpvsServiceKey, dest: IpvsDestSpec): Promise<void> {
    this.check('addDestination', key, dest);
    const s = this.svc('addDestination', key);
    if (s.dests.has(destId(dest))) throw new KernelError('addDestination', 17, 'destination exists');
    s.dests.set(destId(dest), { ...dest, activeConnections: 0, inactiveConnections: 0, persistentConnections: 0 });
  }

  async editDestination(key: IpvsServiceKey, dest: IpvsDestSpec): Promise<void> {
    this.check('editDestination', key, dest);
    const s = this.svc('editDestination', key);
    const d = s.dests.get(destId(dest));
    if (!d) throw new KernelError('editDestination', 2, 'no such destination');
    s.dests.set(destId(dest), { ...d, ...dest });
  }

  async deleteDestination(key: IpvsServiceKey, dest: { address: string; port: number; family: IpvsFamily }): Promise<void> {
    this.check('deleteDestination', key, dest);
    const s = this.svc('deleteDestination', key);
    if (!s.dests.delete(destId(dest))) throw new KernelError('deleteDestination', 2, 'no such destination');
  }

  /** Test hook: pretend a backend carries `n` active connections. */
  setActive(key: IpvsServiceKey, dest: { address: string; port: number }, n: number): void {
    const d = this.services.get(keyString(key))?.dests.get(destId(dest));
    if (!d) throw new Error(`no dest ${destId(dest)}`);
    d.activeConnections = n;
  }

  /** Batches run so far (each also counts its operations in `calls`). */
  batches = 0;

  async batch(ops: readonly IpvsOperation[]): Promise<IpvsOperationResult[]> {
    this.batches++;
    const out: IpvsOperationResult[] = [];
    for (const o of ops) {
      try {
        await this.run(o);
        out.push({ ok: true });
      } catch (e) {
        out.push({ ok: false, error: e instanceof FulcrumError ? e : new FulcrumError('INTERNAL', String(e)) });
      }
    }
    return out;
  }

  private run(o: IpvsOperation): Promise<void> {
    return runOperation(this, o);
  }

  /** Test hook: this client as one without the optional batch() (the executor's one-call-per-step path). */
  withoutBatch(): IpvsClient {
    const client: IpvsClient = this;
    return new Proxy(client, { get: (t, p) => (p === 'batch' ? undefined : Reflect.get(t, p, t)) });
  }

  async flush(): Promise<void> { this.check('flush'); this.services.clear(); }
  async zero(): Promise<void> { this.check('zero'); }
  async getTimeouts(): Promise<IpvsTimeouts> { return { tcp: 900, tcpFin: 120, udp: 300 }; }
  async setTimeouts(): Promise<void> { this.check('setTimeouts'); }
  /** Sync daemons as the kernel keeps them: one master and one backup at most (EEXIST, ESRCH otherwise). */
  readonly daemons = new Map<IpvsSyncDaemon['state'], IpvsSyncDaemon>();
  async startDaemon(d: IpvsSyncDaemon): Promise<void> {
    this.check('startDaemon');
    if (this.daemons.has(d.state)) throw new KernelError('startDaemon', 17, 'daemon exists'); // EEXIST
    this.daemons.set(d.state, { port: 8848, ttl: 1, group: '224.0.0.81', maxLength: 1472, ...d });
  }
  async stopDaemon(d: Pick<IpvsSyncDaemon, 'state'>): Promise<void> {
    this.check('stopDaemon');
    if (!this.daemons.delete(d.state)) throw new KernelError('stopDaemon', 3, 'no sync daemon'); // ESRCH
  }
  async listDaemons(): Promise<IpvsSyncDaemon[]> { this.check('listDaemons'); return [...this.daemons.values()]; }
  async close(): Promise<void> { this.closed = true; }
}
