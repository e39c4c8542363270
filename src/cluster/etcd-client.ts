import http from 'node:http';
import https from 'node:https';
import { FulcrumError } from '../errors.js';
import { StoreUnavailableError } from './errors.js';

/**
 * A small etcd v3 client over etcd's JSON gateway (grpc-gateway, HTTP/1.1): `/v3/kv/*`,
 * `/v3/watch`, `/v3/lease/*`, `/v3/auth/authenticate` as served by etcd 3.4. Keys and values are
 * base64 in JSON, int64 fields are decimal strings, enum fields at their default (PUT, EQUAL) are
 * left out of answers. No npm dependency on purpose: watch resume is ours (see watch-core.ts).
 *
 * Each request goes to the current endpoint; a connection failure moves on to the next one, and
 * only when every endpoint failed does the call fail, with StoreUnavailableError naming them.
 */

export interface EtcdTlsOptions {
  /** PEM contents (not paths; src/cluster/config.ts reads the files). */
  ca?: string | Buffer | undefined;
  cert?: string | Buffer | undefined;
  key?: string | Buffer | undefined;
}

export interface EtcdClientOptions {
  endpoints: readonly string[];
  tls?: EtcdTlsOptions | undefined;
  auth?: { username: string; password: string } | undefined;
  /** Per unary request (not for watch streams); default 5000 ms. */
  requestTimeoutMs?: number | undefined;
}

export interface KeyValue {
  key: string;
  value: Buffer;
  createRevision: number;
  modRevision: number;
  /** Puts since the key was (re)created: 1 for the first; 0 in a delete event. */
  version: number;
  lease: string | undefined;
}

export interface RangeResult { revision: number; kvs: KeyValue[]; count: number }

export type Compare =
  | { key: string; target: 'MOD' | 'CREATE' | 'VERSION'; result: 'EQUAL' | 'GREATER' | 'LESS' | 'NOT_EQUAL'; value: number };

export type TxnOp =
  | { put: { key: string; value: string | Buffer; lease?: string | undefined } }
  | { range: { key: string; prefix?: boolean } }
  | { delete: { key: string; prefix?: boolean } };

export interface TxnResult {
  succeeded: boolean;
  revision: number;
  /** The range answers of the branch that ran, in op order (puts and deletes give undefined). */
  ranges: Array<RangeResult | undefined>;
}

export interface WatchEvent { type: 'put' | 'delete'; kv: KeyValue }

/** What a watch stream reports; `closed` comes exactly once, last. */
export interface WatchListener {
  created(): void;
  events(events: WatchEvent[]): void;
  /** etcd cancelled the watch; compactRevision is set when the start revision was compacted. */
  canceled(compactRevision: number | undefined, reason: string): void;
  closed(error: Error | undefined): void;
}

export interface WatchHandle { cancel(): void }

/** gRPC status codes etcd answers with (google.golang.org/grpc/codes). */
export const GrpcCode = { Canceled: 1, InvalidArgument: 3, DeadlineExceeded: 4, NotFound: 5, PermissionDenied: 7, FailedPrecondition: 9, OutOfRange: 11, Unavailable: 14, Unauthenticated: 16 } as const;

/** etcd answered with an error (as opposed to not answering: StoreUnavailableError). */
export class EtcdRequestError extends FulcrumError {
  constructor(readonly endpoint: string, readonly path: string, readonly grpcCode: number | undefined, readonly etcdMessage: string) {
    super('STORE_ERROR', `etcd at ${endpoint} refused ${path}: ${etcdMessage}`, { details: { endpoint, path, grpcCode } });
    this.name = 'EtcdRequestError';
  }
}

const b64 = (s: string | Buffer): string => (typeof s === 'string' ? Buffer.from(s, 'utf8') : s).toString('base64');

/** range_end for "every key with this prefix": the prefix with its last byte incremented. */
export function prefixEnd(prefix: string): string {
  const buf = Buffer.from(prefix, 'utf8');
  for (let i = buf.length - 1; i >= 0; i--) {
    if (buf[i]! < 0xff) {
      const end = Buffer.from(buf.subarray(0, i + 1));
      end[i] = end[i]! + 1;
      return end.toString('base64');
    }
  }
  return Buffer.from([0]).toString('base64'); // all 0xff: every key from prefix on
}

/** int64 as etcd's JSON gives it (a decimal string, absent for 0). */
export function int64(v: unknown, what = 'int64'): number {
  if (v === undefined || v === null) return 0;
  const n = typeof v === 'number' ? v : Number(v);
  if (!Number.isSafeInteger(n)) throw new FulcrumError('STORE_ERROR', `etcd sent ${what} ${String(v)}, which is not an integer this client can hold`);
  return n;
}

interface WireKv { key?: string; value?: string; create_revision?: string; mod_revision?: string; version?: string; lease?: string }

export function decodeKv(w: WireKv): KeyValue {
  return {
    key: Buffer.from(w.key ?? '', 'base64').toString('utf8'),
    value: Buffer.from(w.value ?? '', 'base64'),
    createRevision: int64(w.create_revision, 'create_revision'),
    modRevision: int64(w.mod_revision, 'mod_revision'),
    version: int64(w.version, 'version'),
    lease: w.lease && w.lease !== '0' ? w.lease : undefined,
  };
}

function decodeRange(w: { header?: { revision?: string }; kvs?: WireKv[]; count?: string }): RangeResult {
  return { revision: int64(w.header?.revision, 'revision'), kvs: (w.kvs ?? []).map(decodeKv), count: int64(w.count, 'count') };
}

function encodeOp(op: TxnOp): unknown {
  if ('put' in op) return { request_put: { key: b64(op.put.key), value: b64(op.put.value), ...(op.put.lease ? { lease: op.put.lease } : {}) } };
  if ('range' in op) return { request_range: { key: b64(op.range.key), ...(op.range.prefix ? { range_end: prefixEnd(op.range.key) } : {}) } };
  return { request_delete_range: { key: b64(op.delete.key), ...(op.delete.prefix ? { range_end: prefixEnd(op.delete.key) } : {}) } };
}

/** Node's connection errors, as an operator reads them: "ECONNREFUSED", "timed out after 5000 ms". */
function networkReason(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  const code = err?.code ?? err?.message ?? String(e);
  // A TLS failure is a configuration problem, not a dead etcd: say which side and what to check.
  if (/^ERR_SSL_|_ALERT_/.test(code)) return `the TLS handshake failed: etcd refused our client certificate or its absence (${code}); check agent.store.tls cert and key`;
  if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS_/.test(code)) return `the TLS handshake failed: etcd's certificate is not trusted (${code}: ${err.message}); check agent.store.tls.ca`;
  return code;
}

class NetworkError extends Error {}

export class EtcdClient {
  readonly endpoints: readonly string[];
  private current = 0;
  private token: string | undefined;
  private authenticating: Promise<void> | undefined;
  private readonly agents = new Map<string, http.Agent>();
  private readonly timeoutMs: number;
  private readonly watches = new Set<http.ClientRequest>();
  private closed = false;

  constructor(private readonly options: EtcdClientOptions) {
    if (options.endpoints.length === 0) throw new FulcrumError('INVALID_CONFIG', 'etcd: no endpoints given');
    this.endpoints = options.endpoints.map((e) => {
      let u: URL;
      try { u = new URL(e); } catch { throw new FulcrumError('INVALID_CONFIG', `etcd endpoint ${e} is not a URL (http://host:2379 or https://host:2379)`); }
      if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new FulcrumError('INVALID_CONFIG', `etcd endpoint ${e}: the scheme must be http or https`);
      return u.origin;
    });
    this.timeoutMs = options.requestTimeoutMs ?? 5000;
  }

  /** The endpoint requests go to now (the last one that answered). */
  get endpoint(): string {
    return this.endpoints[this.current]!;
  }

  async range(key: string, opts: { prefix?: boolean; revision?: number; limit?: number } = {}): Promise<RangeResult> {
    const body: Record<string, unknown> = { key: b64(key) };
    if (opts.prefix) body.range_end = prefixEnd(key);
    if (opts.revision) body.revision = String(opts.revision);
    if (opts.limit) body.limit = String(opts.limit);
    return decodeRange(await this.call('/v3/kv/range', body) as Parameters<typeof decodeRange>[0]);
  }

  async put(key: string, value: string | Buffer, opts: { lease?: string | undefined } = {}): Promise<{ revision: number }> {
    const r = await this.call('/v3/kv/put', { key: b64(key), value: b64(value), ...(opts.lease ? { lease: opts.lease } : {}) }) as { header?: { revision?: string } };
    return { revision: int64(r.header?.revision, 'revision') };
  }

  async deleteRange(key: string, opts: { prefix?: boolean } = {}): Promise<{ revision: number; deleted: number }> {
    const r = await this.call('/v3/kv/deleterange', { key: b64(key), ...(opts.prefix ? { range_end: prefixEnd(key) } : {}) }) as { header?: { revision?: string }; deleted?: string };
    return { revision: int64(r.header?.revision, 'revision'), deleted: int64(r.deleted, 'deleted') };
  }

  async txn(compare: readonly Compare[], success: readonly TxnOp[], failure: readonly TxnOp[] = []): Promise<TxnResult> {
    const field = { MOD: 'mod_revision', CREATE: 'create_revision', VERSION: 'version' } as const;
    const r = await this.call('/v3/kv/txn', {
      compare: compare.map((c) => ({ key: b64(c.key), target: c.target, result: c.result, [field[c.target]]: String(c.value) })),
      success: success.map(encodeOp),
      failure: failure.map(encodeOp),
    }) as { header?: { revision?: string }; succeeded?: boolean; responses?: Array<{ response_range?: Parameters<typeof decodeRange>[0] }> };
    return {
      succeeded: r.succeeded === true,
      revision: int64(r.header?.revision, 'revision'),
      ranges: (r.responses ?? []).map((x) => (x.response_range ? decodeRange(x.response_range) : undefined)),
    };
  }

  async compact(revision: number, physical = true): Promise<void> {
    await this.call('/v3/kv/compaction', { revision: String(revision), physical });
  }

  async leaseGrant(ttlSeconds: number): Promise<{ id: string; ttl: number }> {
    const r = await this.call('/v3/lease/grant', { TTL: String(ttlSeconds) }) as { ID?: string; TTL?: string; error?: string };
    if (!r.ID) throw new FulcrumError('STORE_ERROR', `etcd at ${this.endpoint} granted no lease: ${r.error ?? 'no ID in the answer'}`);
    return { id: r.ID, ttl: int64(r.TTL, 'TTL') };
  }

  /** One keepalive; returns the lease's remaining TTL, 0 when etcd no longer has the lease. */
  async leaseKeepAlive(id: string): Promise<number> {
    // The gateway serves the bidirectional stream one message at a time: one request, one answer.
    const r = await this.call('/v3/lease/keepalive', { ID: id }) as { result?: { TTL?: string } };
    return int64(r.result?.TTL, 'TTL');
  }

  async leaseRevoke(id: string): Promise<void> {
    try {
      await this.call('/v3/lease/revoke', { ID: id });
    } catch (e) {
      if (e instanceof EtcdRequestError && e.grpcCode === GrpcCode.NotFound) return; // already expired
      throw e;
    }
  }

  /**
   * A watch of one key (or prefix) from startRevision. Reports through the listener and never
   * reconnects by itself: resuming is the caller's (src/cluster/watch.ts), from its own revision.
   */
  watch(key: string, startRevision: number, listener: WatchListener, opts: { prefix?: boolean } = {}): WatchHandle {
    let done = false;
    let req: http.ClientRequest | undefined;
    const finish = (error: Error | undefined): void => {
      if (done) return;
      done = true;
      if (req) this.watches.delete(req);
      listener.closed(error);
    };
    let endpoint = this.endpoint;
    const start = async (): Promise<void> => {
      if (this.options.auth && !this.token) await this.authenticate();
      endpoint = this.endpoint; // authenticating may have moved to another endpoint
      const body = JSON.stringify({ create_request: { key: b64(key), start_revision: String(startRevision), ...(opts.prefix ? { range_end: prefixEnd(key) } : {}) } });
      const url = new URL('/v3/watch', endpoint);
      req = this.transport(url).request(url, { method: 'POST', agent: this.agentFor(url), headers: this.headers(body) });
      this.watches.add(req);
      req.on('error', (e) => {
        if (done) return;
        this.rotate(endpoint); // the next stream tries the next endpoint
        finish(new StoreUnavailableError(`etcd watch at ${endpoint} failed: ${networkReason(e)}`, { cause: e }));
      });
      req.on('socket', (s) => s.setKeepAlive(true, 5000));
      req.on('response', (res) => {
        if (res.statusCode !== 200) {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (text += c));
          res.on('end', () => {
            const err = this.answerError(endpoint, '/v3/watch', res.statusCode ?? 0, text);
            if (err instanceof EtcdRequestError && err.grpcCode === GrpcCode.Unauthenticated) this.token = undefined; // the next stream authenticates
            else this.rotate(endpoint);
            finish(err);
          });
          return;
        }
        let buf = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          buf += chunk;
          let nl: number;
          while (!done && (nl = buf.indexOf('\n')) >= 0) {
            const line = buf.slice(0, nl).trim();
            buf = buf.slice(nl + 1);
            if (line) this.watchMessage(endpoint, line, listener, finish);
          }
        });
        res.on('end', () => {
          const rest = buf.trim();
          if (rest && !done) this.watchMessage(endpoint, rest, listener, finish);
          finish(new StoreUnavailableError(`etcd at ${endpoint} closed the watch stream`));
        });
        res.on('error', (e) => finish(new StoreUnavailableError(`etcd watch at ${endpoint} failed: ${networkReason(e)}`, { cause: e })));
      });
      req.end(body);
    };
    start().catch((e) => finish(e as Error));
    return {
      cancel: () => {
        if (done) return;
        req?.destroy();
        finish(undefined);
      },
    };
  }

  private watchMessage(endpoint: string, line: string, listener: WatchListener, finish: (e: Error | undefined) => void): void {
    let msg: { result?: { created?: boolean; canceled?: boolean; compact_revision?: string; cancel_reason?: string; events?: Array<{ type?: string; kv?: WireKv }> }; error?: { message?: string; grpc_code?: number; http_code?: number } };
    try {
      msg = JSON.parse(line) as typeof msg;
    } catch (e) {
      finish(new FulcrumError('STORE_ERROR', `etcd at ${endpoint} sent a watch message that is not JSON: ${line.slice(0, 120)}`, { cause: e }));
      return;
    }
    if (msg.error) {
      if (msg.error.grpc_code === GrpcCode.Unauthenticated) this.token = undefined;
      finish(new EtcdRequestError(endpoint, '/v3/watch', msg.error.grpc_code, msg.error.message ?? 'watch error'));
      return;
    }
    const r = msg.result;
    if (!r) return;
    if (r.created) listener.created();
    if (r.events?.length) listener.events(r.events.map((e) => ({ type: e.type === 'DELETE' ? 'delete' : 'put', kv: decodeKv(e.kv ?? {}) })));
    if (r.canceled) {
      const compact = int64(r.compact_revision, 'compact_revision');
      listener.canceled(compact > 0 ? compact : undefined, r.cancel_reason ?? (compact > 0 ? `revision compacted (${compact})` : 'canceled'));
      finish(undefined);
    }
  }

  /** Ends every watch stream and idle connection. */
  close(): void {
    this.closed = true;
    for (const r of this.watches) r.destroy();
    this.watches.clear();
    for (const a of this.agents.values()) a.destroy();
    this.agents.clear();
  }

  /** One unary call with endpoint failover and one re-authentication on an expired token. */
  async call(path: string, body: unknown): Promise<unknown> {
    if (this.closed) throw new FulcrumError('STORE_ERROR', 'the etcd client is closed');
    if (this.options.auth && !this.token) await this.authenticate();
    try {
      return await this.callAnyEndpoint(path, body);
    } catch (e) {
      if (this.options.auth && e instanceof EtcdRequestError && e.grpcCode === GrpcCode.Unauthenticated) {
        this.token = undefined;
        await this.authenticate();
        return this.callAnyEndpoint(path, body);
      }
      throw e;
    }
  }

  private async authenticate(): Promise<void> {
    if (!this.authenticating) {
      const { username, password } = this.options.auth!;
      this.authenticating = (async () => {
        try {
          const r = await this.callAnyEndpoint('/v3/auth/authenticate', { name: username, password }, false) as { token?: string };
          if (!r.token) throw new FulcrumError('STORE_ERROR', `etcd at ${this.endpoint} gave no token for user ${username} (is auth enabled?)`);
          this.token = r.token;
        } catch (e) {
          if (e instanceof EtcdRequestError) throw new FulcrumError('STORE_ERROR', `etcd at ${e.endpoint} refused user ${username}: ${e.etcdMessage}`, { cause: e, details: e.details });
          throw e;
        } finally {
          this.authenticating = undefined;
        }
      })();
    }
    return this.authenticating;
  }

  private async callAnyEndpoint(path: string, body: unknown, withToken = true): Promise<unknown> {
    const failures: string[] = [];
    for (let i = 0; i < this.endpoints.length; i++) {
      const endpoint = this.endpoints[(this.current + i) % this.endpoints.length]!;
      try {
        const answer = await this.request(endpoint, path, body, withToken);
        this.current = this.endpoints.indexOf(endpoint);
        return answer;
      } catch (e) {
        if (e instanceof NetworkError) { failures.push(`${endpoint}: ${e.message}`); continue; }
        if (e instanceof StoreUnavailableError) { failures.push(e.message); continue; }
        throw e;
      }
    }
    this.current = (this.current + 1) % this.endpoints.length;
    const message = this.endpoints.length === 1
      ? `etcd at ${failures[0]!.replace(/^(\S+): /, '$1 is unreachable: ')}`
      : `no etcd endpoint is reachable (${failures.join('; ')})`;
    throw new StoreUnavailableError(message, { details: { endpoints: this.endpoints, path } });
  }

  private request(endpoint: string, path: string, body: unknown, withToken: boolean): Promise<unknown> {
    const text = JSON.stringify(body);
    const url = new URL(path, endpoint);
    return new Promise((resolve, reject) => {
      const req = this.transport(url).request(url, { method: 'POST', agent: this.agentFor(url), headers: this.headers(text, withToken) });
      const timer = setTimeout(() => req.destroy(Object.assign(new Error(`timed out after ${this.timeoutMs} ms`), { code: `timed out after ${this.timeoutMs} ms` })), this.timeoutMs);
      req.on('error', (e) => { clearTimeout(timer); reject(new NetworkError(networkReason(e))); });
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', (e) => { clearTimeout(timer); reject(new NetworkError(networkReason(e))); });
        res.on('end', () => {
          clearTimeout(timer);
          const answer = Buffer.concat(chunks).toString('utf8');
          if (res.statusCode === 200) {
            try { resolve(JSON.parse(answer)); } catch (e) { reject(new FulcrumError('STORE_ERROR', `etcd at ${endpoint} answered ${path} with something that is not JSON: ${answer.slice(0, 120)}`, { cause: e })); }
            return;
          }
          reject(this.answerError(endpoint, path, res.statusCode ?? 0, answer));
        });
      });
      req.end(text);
    });
  }

  private answerError(endpoint: string, path: string, status: number, text: string): Error {
    let code: number | undefined;
    let message = text.trim() || `HTTP ${status}`;
    try {
      const j = JSON.parse(text) as { code?: number; message?: string; error?: string };
      code = j.code;
      message = j.message ?? j.error ?? message;
    } catch { /* not JSON: keep the text */ }
    // No leader, a stopping member ("grpc: the client connection is closing": the gateway's own
    // connection to its etcd, code Canceled), a proxy in front of a dead etcd: try the next endpoint.
    if (code === GrpcCode.Unavailable || code === GrpcCode.Canceled || code === GrpcCode.DeadlineExceeded || status === 502 || status === 503 || status === 504)
      return new StoreUnavailableError(`etcd at ${endpoint} is unavailable: ${message}`);
    if (message.includes('CommonName of client sending a request against gateway'))
      message += ' (with auth enabled, etcd\'s JSON gateway refuses a client certificate that has a CommonName: use one without CN)';
    return new EtcdRequestError(endpoint, path, code, message);
  }

  private rotate(failed: string): void {
    if (this.endpoint === failed) this.current = (this.current + 1) % this.endpoints.length;
  }

  private headers(body: string, withToken = true): http.OutgoingHttpHeaders {
    return {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(body),
      ...(withToken && this.token ? { authorization: this.token } : {}),
    };
  }

  private transport(url: URL): typeof http | typeof https {
    return url.protocol === 'https:' ? https : http;
  }

  private agentFor(url: URL): http.Agent {
    let a = this.agents.get(url.origin);
    if (!a) {
      const tls = this.options.tls;
      a = url.protocol === 'https:'
        ? new https.Agent({ keepAlive: true, ...(tls?.ca ? { ca: tls.ca } : {}), ...(tls?.cert ? { cert: tls.cert } : {}), ...(tls?.key ? { key: tls.key } : {}) })
        : new http.Agent({ keepAlive: true });
      this.agents.set(url.origin, a);
    }
    return a;
  }
}
