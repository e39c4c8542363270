import { z } from 'zod';
import { FulcrumError } from '../errors.js';
import { canonicalJson } from '../util/json-value.js';
import { parseDesiredState, type DesiredState } from '../model/index.js';
import { DEFAULT_PREFIX, NAME_PATTERN } from './settings.js';

export { DEFAULT_PREFIX, NAME_PATTERN };

/**
 * The key layout of a cluster in etcd (docs/cluster.md). Pure: names, encodings, parsing.
 *
 *   <prefix>/v1/<cluster>/spec           the shared desired state (services and their health
 *                                        checks), one JSON document: a change is one txn and the
 *                                        key's mod_revision is the revision (the API's ETag)
 *   <prefix>/v1/<cluster>/nodes/<id>     one live node, under that node's lease: gone when the
 *                                        node stops keeping the lease alive
 *   <prefix>/v1/<cluster>/members/<id>   every node that ever registered (no lease), so that a
 *                                        node whose lease expired is listed as gone, not forgotten
 */

/** The layout version in every key: a change of layout is a new prefix, never a silent rewrite. */
export const LAYOUT_VERSION = 'v1';
/** The version inside the spec document. */
export const SPEC_FORMAT = 1;

const NAME_RULE = 'lower-case letters, digits, ".", "_" or "-", starting with a letter or digit, at most 63';

export function checkName(what: 'cluster' | 'node id', name: string): string {
  if (!NAME_PATTERN.test(name)) throw new FulcrumError('INVALID_CONFIG', `${what} ${JSON.stringify(name)} is not a valid name (${NAME_RULE})`);
  return name;
}

export interface ClusterKeys {
  /** `<prefix>/v1/<cluster>/`: everything of this cluster. */
  root: string;
  spec: string;
  /** Prefix of the live node records. */
  nodes: string;
  node(id: string): string;
  /** Prefix of the member records. */
  members: string;
  member(id: string): string;
  /** The node id of a key under nodes/ or members/. */
  idOf(key: string): string | undefined;
}

export function clusterKeys(cluster: string, prefix: string = DEFAULT_PREFIX): ClusterKeys {
  checkName('cluster', cluster);
  if (!prefix.startsWith('/') || prefix.endsWith('/') || prefix.includes('//'))
    throw new FulcrumError('INVALID_CONFIG', `etcd key prefix ${JSON.stringify(prefix)} must start with "/" and not end with "/" (e.g. /fulcrum)`);
  const root = `${prefix}/${LAYOUT_VERSION}/${cluster}/`;
  const nodes = `${root}nodes/`;
  const members = `${root}members/`;
  return {
    root,
    spec: `${root}spec`,
    nodes,
    node: (id) => nodes + checkName('node id', id),
    members,
    member: (id) => members + checkName('node id', id),
    idOf: (key) => {
      const rest = key.startsWith(nodes) ? key.slice(nodes.length) : key.startsWith(members) ? key.slice(members.length) : undefined;
      return rest !== undefined && NAME_PATTERN.test(rest) ? rest : undefined;
    },
  };
}

/**
 * The shared part of a desired state: its services (health checks are part of a service). The
 * XDP, IPVS and VRRP sections are the node's own (its config file) and never go to etcd.
 */
export function sharedPart(state: DesiredState): { services: DesiredState['services'] } {
  return { services: state.services };
}

/** The spec document: canonical JSON so that equal states are equal bytes. */
export function encodeSpec(state: DesiredState): string {
  return canonicalJson({ format: SPEC_FORMAT, ...sharedPart(state) });
}

/** Parses a spec value once into a frozen desired state (services only). */
export function decodeSpec(value: Buffer | string, where: string): DesiredState {
  let doc: unknown;
  try {
    doc = JSON.parse(typeof value === 'string' ? value : value.toString('utf8'));
  } catch (e) {
    throw new FulcrumError('STORE_ERROR', `${where} is not valid JSON: ${(e as Error).message}`, { cause: e });
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc))
    throw new FulcrumError('STORE_ERROR', `${where} is not a spec document (a JSON object with format and services)`);
  const { format, ...rest } = doc as Record<string, unknown>;
  if (format !== SPEC_FORMAT) throw new FulcrumError('STORE_ERROR', `${where} has format ${String(format)}; this agent reads format ${SPEC_FORMAT}`);
  const extra = Object.keys(rest).filter((k) => k !== 'services');
  if (extra.length > 0) throw new FulcrumError('STORE_ERROR', `${where} holds ${extra.join(', ')}, which are per node (config file), not shared`);
  try {
    return parseDesiredState(rest);
  } catch (e) {
    throw new FulcrumError('STORE_ERROR', `${where}: ${(e as Error).message}`, { cause: e, details: (e as FulcrumError).details });
  }
}

/**
 * Revision mapping: the revision of the shared state (If-Match, ETag, `applied revision`) is the
 * spec key's mod_revision in etcd; 0 while the key does not exist. Revisions grow but are not
 * consecutive: other keys (node records) advance etcd's revision too.
 */
export function specRevision(kv: { modRevision: number } | undefined): number {
  return kv?.modRevision ?? 0;
}

const Time = z.string().datetime({ offset: true });

export const ReconcileResultSchema = z.object({
  result: z.enum(['ok', 'failed']),
  revision: z.number().int().nonnegative(),
  message: z.string().optional(),
  at: Time,
}).strict();
export type ReconcileResult = z.output<typeof ReconcileResultSchema>;

/** nodes/<id>: what a live node says about itself. */
export const NodeRecordSchema = z.object({
  id: z.string().regex(NAME_PATTERN),
  /** Its API, e.g. https://10.0.0.11:8443. */
  address: z.string().optional(),
  dataplanes: z.array(z.string()),
  /** The shared revision this node runs (0: none yet). */
  appliedRevision: z.number().int().nonnegative(),
  lastReconcile: ReconcileResultSchema.optional(),
  startedAt: Time,
  updatedAt: Time,
}).strict();
export type NodeRecord = z.output<typeof NodeRecordSchema>;

/** members/<id>: that the node belongs to the cluster, kept after its lease is gone. */
export const MemberRecordSchema = z.object({
  id: z.string().regex(NAME_PATTERN),
  address: z.string().optional(),
  registeredAt: Time,
}).strict();
export type MemberRecord = z.output<typeof MemberRecordSchema>;

export function decodeRecord<S extends z.ZodType>(schema: S, value: Buffer, where: string): z.output<S> {
  let doc: unknown;
  try {
    doc = JSON.parse(value.toString('utf8'));
  } catch (e) {
    throw new FulcrumError('STORE_ERROR', `${where} is not valid JSON: ${(e as Error).message}`, { cause: e });
  }
  const r = schema.safeParse(doc);
  if (!r.success) throw new FulcrumError('STORE_ERROR', `${where} is invalid: ${r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`);
  return r.data;
}

export type NodeHealth = 'current' | 'behind' | 'failed' | 'gone';

/**
 * How a node stands against the cluster's revision: `failed` when its last reconcile failed,
 * `behind` when it runs an older revision, `gone` when it is a member without a live record.
 */
export function nodeHealth(record: NodeRecord | undefined, clusterRevision: number): NodeHealth {
  if (!record) return 'gone';
  if (record.lastReconcile?.result === 'failed') return 'failed';
  return record.appliedRevision < clusterRevision ? 'behind' : 'current';
}
