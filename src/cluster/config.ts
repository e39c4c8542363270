import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { FulcrumError } from '../errors.js';
import type { Clock } from '../util/clock.js';
import { EtcdClient } from './etcd-client.js';
import { EtcdStateStore } from './etcd-store.js';
import { NAME_PATTERN, type EtcdStoreSettings } from './settings.js';

export * from './settings.js';


function readConfigFile(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw new FulcrumError('INVALID_CONFIG', `agent.store.${what}: cannot read ${path}: ${(e as Error).message}`, { cause: e });
  }
}

/** The node id to use: the configured one, or the host name made into a valid id. */
export function nodeIdOf(settings: EtcdStoreSettings, host: string = hostname()): string {
  if (settings.nodeId) return settings.nodeId;
  const id = host.toLowerCase().replace(/[^a-z0-9._-]/g, '-').replace(/^[^a-z0-9]+/, '').slice(0, 63);
  if (!NAME_PATTERN.test(id)) throw new FulcrumError('INVALID_CONFIG', `agent.store.nodeId: the host name ${JSON.stringify(host)} makes no valid node id; set nodeId`);
  return id;
}

/** Builds the client and the store from parsed settings (reads the TLS and password files). */
export function openEtcdStore(settings: EtcdStoreSettings, options: { stateDir?: string; clock?: Clock; onError?: (e: Error, what: string) => void } = {}): { store: EtcdStateStore; nodeId: string } {
  const tls = settings.tls && {
    ...(settings.tls.ca ? { ca: readConfigFile(settings.tls.ca, 'tls.ca') } : {}),
    ...(settings.tls.cert ? { cert: readConfigFile(settings.tls.cert, 'tls.cert') } : {}),
    ...(settings.tls.key ? { key: readConfigFile(settings.tls.key, 'tls.key') } : {}),
  };
  const auth = settings.auth && { username: settings.auth.username, password: readConfigFile(settings.auth.passwordFile, 'auth.passwordFile').replace(/\r?\n$/, '') };
  const client = new EtcdClient({ endpoints: settings.endpoints, tls, auth, requestTimeoutMs: settings.requestTimeoutMs });
  const store = new EtcdStateStore({
    client, cluster: settings.cluster, prefix: settings.prefix, leaseTtlSeconds: settings.leaseTtlSeconds,
    cacheDir: options.stateDir, clock: options.clock, onError: options.onError,
  });
  return { store, nodeId: nodeIdOf(settings) };
}
