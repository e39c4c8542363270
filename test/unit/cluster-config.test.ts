// agent.store (src/cluster/config.ts): defaults, and errors an operator can act on.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { nodeIdOf, openEtcdStore, StoreSettingsSchema, type EtcdStoreSettings } from '../../src/cluster/config.js';
import { FulcrumError } from '../../src/errors.js';
import { formatIssues } from '../../src/model/index.js';

const parse = (input: unknown) => StoreSettingsSchema.parse(input);
const issues = (input: unknown): string => {
  const r = StoreSettingsSchema.safeParse(input);
  assert.equal(r.success, false, 'expected a refusal');
  return formatIssues(r.error!);
};
const etcd = (over: Record<string, unknown> = {}) => ({ kind: 'etcd', endpoints: ['http://127.0.0.1:2379'], cluster: 'prod', ...over });

describe('agent.store settings', () => {
  test('the file store is the default; etcd fills in prefix, TTL and timeout', () => {
    assert.deepEqual(parse(undefined), { kind: 'file' });
    assert.deepEqual(parse({ kind: 'file' }), { kind: 'file' });
    assert.deepEqual(parse(etcd()), { kind: 'etcd', endpoints: ['http://127.0.0.1:2379'], cluster: 'prod', prefix: '/fulcrum', leaseTtlSeconds: 10, requestTimeoutMs: 5000 });
    const full = parse(etcd({
      endpoints: ['https://e1:2379', 'https://e2:2379'], prefix: '/org/lb', nodeId: 'lb-1', leaseTtlSeconds: 5,
      tls: { ca: '/etc/fulcrum/etcd-ca.pem', cert: '/etc/fulcrum/c.pem', key: '/etc/fulcrum/k.pem' }, auth: { username: 'fulcrum', passwordFile: '/etc/fulcrum/etcd.pw' },
    }));
    assert.equal(full.kind === 'etcd' && full.nodeId, 'lb-1');
  });

  test('each mistake is refused at its path, in words', () => {
    assert.match(issues({ kind: 'consul' }), /^kind: /);
    assert.match(issues(etcd({ endpoints: [] })), /^endpoints: give at least one etcd endpoint$/);
    assert.match(issues(etcd({ endpoints: ['127.0.0.1:2379'] })), /^endpoints\[0\]: must be an etcd client URL such as http:\/\/10.0.0.5:2379/);
    assert.match(issues(etcd({ endpoints: ['http://e1:2379/v3'] })), /^endpoints\[0\]: must be an etcd client URL/);
    assert.match(issues(etcd({ endpoints: ['https://e1:2379', 'http://e2:2379'] })), /^endpoints: all endpoints use https, or none$/);
    assert.match(issues(etcd({ cluster: 'Prod EU' })), /^cluster: cluster must be lower-case letters/);
    assert.match(issues(etcd({ cluster: undefined })), /^cluster: /);
    assert.match(issues(etcd({ nodeId: 'lb/1' })), /^nodeId: nodeId must be/);
    assert.match(issues(etcd({ prefix: 'fulcrum/' })), /^prefix: must start with "\/"/);
    assert.match(issues(etcd({ leaseTtlSeconds: 1 })), /^leaseTtlSeconds: /);
    assert.match(issues(etcd({ tls: { ca: '/ca.pem' } })), /^tls: tls is set but the endpoints are http:\/\/$/);
    assert.match(issues(etcd({ endpoints: ['https://e1:2379'], tls: { cert: '/c.pem' } })), /^tls\.cert: cert and key go together$/);
    assert.match(issues(etcd({ endpoints: ['http://10.0.0.5:2379'], auth: { username: 'u', passwordFile: '/pw' } })), /^auth: a password would cross the network in clear: use https:\/\/ endpoints$/);
    assert.match(issues(etcd({ auth: { username: 'u', password: 'secret' } })), /^auth: Unrecognized key: "password"/m);
    assert.match(issues(etcd({ endpoint: 'http://x:2379' })), /^\(root\): Unrecognized key: "endpoint"/m);
    // A password on loopback (etcd on the node itself) is fine.
    assert.doesNotThrow(() => parse(etcd({ auth: { username: 'u', passwordFile: '/pw' } })));
  });

  test('node id: the configured one, else the host name made valid', () => {
    const s = parse(etcd()) as EtcdStoreSettings;
    assert.equal(nodeIdOf({ ...s, nodeId: 'lb-7' }, 'ignored'), 'lb-7');
    assert.equal(nodeIdOf(s, 'LB-01.dc1.example'), 'lb-01.dc1.example');
    assert.equal(nodeIdOf(s, 'host_name with space'), 'host_name-with-space');
    assert.throws(() => nodeIdOf(s, '---'), (e: unknown) => e instanceof FulcrumError && /set nodeId/.test(e.message));
  });

  test('openEtcdStore reads the password and TLS files, naming a file it cannot read', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fulcrum-store-cfg-'));
    try {
      writeFileSync(join(dir, 'pw'), 'secret\n');
      const ok = openEtcdStore(parse(etcd({ nodeId: 'n1', auth: { username: 'u', passwordFile: join(dir, 'pw') } })) as EtcdStoreSettings, { stateDir: dir });
      assert.equal(ok.nodeId, 'n1');
      assert.equal(ok.store.location, 'etcd http://127.0.0.1:2379 /fulcrum/v1/prod/spec');
      void ok.store.close();
      assert.throws(
        () => openEtcdStore(parse(etcd({ endpoints: ['https://e:2379'], tls: { ca: join(dir, 'missing.pem') } })) as EtcdStoreSettings),
        (e: unknown) => e instanceof FulcrumError && e.code === 'INVALID_CONFIG' && e.message.startsWith(`agent.store.tls.ca: cannot read ${join(dir, 'missing.pem')}: ENOENT`),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
