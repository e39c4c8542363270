import { z } from 'zod';

export const DEFAULT_PREFIX = '/fulcrum';
/** Cluster names and node ids: one path segment, readable in etcdctl and in URLs. */
export const NAME_PATTERN = /^[a-z0-9]([a-z0-9._-]{0,62})$/;

/**
 * `agent.store` of the config file: where the desired state lives. `file` (the default) is the
 * embedded store of one node; `etcd` shares the services of a cluster of nodes (docs/cluster.md).
 */

const name = (what: string) => z.string().regex(NAME_PATTERN, `${what} must be lower-case letters, digits, ".", "_" or "-", starting with a letter or digit, at most 63`);

const Endpoint = z.string().refine((s) => {
  try {
    const u = new URL(s);
    return (u.protocol === 'http:' || u.protocol === 'https:') && u.pathname === '/' && !u.search && !u.username;
  } catch {
    return false;
  }
}, 'must be an etcd client URL such as http://10.0.0.5:2379 or https://etcd1.example:2379 (no path, no user)');

export const EtcdTlsSettingsSchema = z.object({
  /** PEM CA bundle that signed etcd's server certificate (default: the system CAs). */
  ca: z.string().min(1).optional(),
  /** Client certificate and key, for etcd's --client-cert-auth. */
  cert: z.string().min(1).optional(),
  key: z.string().min(1).optional(),
}).strict().refine((t) => (t.cert === undefined) === (t.key === undefined), { message: 'cert and key go together', path: ['cert'] });

export const EtcdAuthSettingsSchema = z.object({
  username: z.string().min(1),
  /** A file holding the password (one line; never the password in the config file). */
  passwordFile: z.string().min(1),
}).strict();

export const EtcdStoreSettingsSchema = z.object({
  kind: z.literal('etcd'),
  endpoints: z.array(Endpoint).min(1, 'give at least one etcd endpoint'),
  /** Key prefix; the layout goes under <prefix>/v1/<cluster>/. */
  prefix: z.string().regex(/^\/[^/]+(\/[^/]+)*$/, 'must start with "/" and not end with "/" (e.g. /fulcrum)').default(DEFAULT_PREFIX),
  cluster: name('cluster'),
  /** This node's id in the cluster; default: the host name. */
  nodeId: name('nodeId').optional(),
  /** How long a node that stopped answering (frozen, cut off) stays listed as live. */
  leaseTtlSeconds: z.number().int().min(2).max(300).default(10),
  requestTimeoutMs: z.number().int().min(100).max(60_000).default(5000),
  tls: EtcdTlsSettingsSchema.optional(),
  auth: EtcdAuthSettingsSchema.optional(),
}).strict().superRefine((s, ctx) => {
  const https = s.endpoints.filter((e) => e.startsWith('https:')).length;
  if (https !== 0 && https !== s.endpoints.length) ctx.addIssue({ code: 'custom', path: ['endpoints'], message: 'all endpoints use https, or none' });
  if (s.tls && https === 0) ctx.addIssue({ code: 'custom', path: ['tls'], message: 'tls is set but the endpoints are http://' });
  if (s.auth && https === 0 && !s.endpoints.every(isLoopbackUrl))
    ctx.addIssue({ code: 'custom', path: ['auth'], message: 'a password would cross the network in clear: use https:// endpoints' });
});

export const FileStoreSettingsSchema = z.object({ kind: z.literal('file') }).strict();

export const StoreSettingsSchema = z.discriminatedUnion('kind', [FileStoreSettingsSchema, EtcdStoreSettingsSchema]).default({ kind: 'file' });

export type StoreSettings = z.output<typeof StoreSettingsSchema>;
export type EtcdStoreSettings = z.output<typeof EtcdStoreSettingsSchema>;

function isLoopbackUrl(e: string): boolean {
  const h = new URL(e).hostname;
  return h === 'localhost' || h === '[::1]' || h.startsWith('127.');
}
