// The cluster tier, secured: an etcd with TLS (client certificates required) and user/password
// authentication, reached through the config schema and openEtcdStore as an agent would.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { openEtcdStore, StoreSettingsSchema, type EtcdStoreSettings } from '../../src/cluster/config.js';
import { FulcrumError } from '../../src/errors.js';
import { counterOf, counterState } from '../helpers/cluster-state.js';
import { EtcdProcess, etcdMissing, makeEtcdTls } from '../helpers/etcd.js';

const missing = etcdMissing() ?? (spawnSync('openssl', ['version']).status === 0 ? undefined : 'openssl is not installed');

describe('EtcdStateStore over TLS with user/password auth', { skip: missing }, () => {
  let etcd: EtcdProcess;
  let dir: string;
  const ctl = (...args: string[]) => {
    const r = spawnSync('etcdctl', [...etcd.ctlArgs(), ...args], { encoding: 'utf8' });
    assert.equal(r.status, 0, `etcdctl ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'fulcrum-etcd-tls-'));
    etcd = await EtcdProcess.start({ tls: makeEtcdTls(dir) });
    ctl('user', 'add', 'root:rootpw');
    ctl('user', 'add', 'fulcrum:fulcrum-pw');
    ctl('role', 'add', 'lb');
    ctl('role', 'grant-permission', '--prefix=true', 'lb', 'readwrite', '/fulcrum/v1/secure/');
    ctl('user', 'grant-role', 'fulcrum', 'lb');
    ctl('auth', 'enable');
    writeFileSync(join(dir, 'pw'), 'fulcrum-pw\n');
    writeFileSync(join(dir, 'badpw'), 'nope\n');
  });
  after(async () => {
    await etcd?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const settings = (over: Record<string, unknown>) => StoreSettingsSchema.parse({
    kind: 'etcd', endpoints: [etcd.url], cluster: 'secure', nodeId: 'lb-1',
    tls: { ca: join(dir, 'ca.pem'), cert: join(dir, 'client.pem'), key: join(dir, 'client.key') },
    auth: { username: 'fulcrum', passwordFile: join(dir, 'pw') }, ...over,
  }) as EtcdStoreSettings;

  test('commit, load, watch and register work with the client certificate and the password', async () => {
    const { store } = openEtcdStore(settings({}));
    try {
      const rev = await store.commit(0, counterState(41));
      const seen: number[] = [];
      const w = store.watch(rev, (c) => { if (c.kind !== 'invalid') seen.push(counterOf(c.state)); });
      const rev2 = await store.commit(rev, counterState(42));
      for (let i = 0; i < 100 && w.revision < rev2; i++) await new Promise((r) => setTimeout(r, 50));
      assert.deepEqual(seen, [42]);
      assert.equal((await store.load()).revision, rev2);
      await store.register({ id: 'lb-1', dataplanes: ['xdp'] });
      assert.deepEqual((await store.nodes()).map((n) => n.id), ['lb-1']);
      assert.match(ctl('--user', 'root:rootpw', 'get', '--prefix', '--keys-only', '/fulcrum/v1/secure/nodes/'), /\/fulcrum\/v1\/secure\/nodes\/lb-1/);
      await w.stop();
    } finally {
      await store.close();
    }
  });

  test('a wrong password, a key outside the role, and no client certificate are refused in words', async () => {
    const bad = openEtcdStore(settings({ auth: { username: 'fulcrum', passwordFile: join(dir, 'badpw') } })).store;
    await assert.rejects(bad.load(), (e: unknown) => e instanceof FulcrumError && e.code === 'STORE_ERROR' && e.message === `etcd at ${etcd.url} refused user fulcrum: etcdserver: authentication failed, invalid user ID or password`);
    await bad.close();
    const other = openEtcdStore(settings({ cluster: 'other' })).store;
    await assert.rejects(other.load(), (e: unknown) => e instanceof FulcrumError && e.code === 'STORE_ERROR' && /refused \/v3\/kv\/range: etcdserver: permission denied/.test(e.message));
    await other.close();
    const noCert = openEtcdStore(settings({ tls: { ca: join(dir, 'ca.pem') } })).store;
    await assert.rejects(noCert.load(), (e: unknown) => e instanceof FulcrumError && e.message === `etcd at ${etcd.url} is unreachable: the TLS handshake failed: etcd refused our client certificate or its absence (ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE); check agent.store.tls cert and key`);
    await noCert.close();
    // A CA that did not sign etcd's certificate.
    const otherCa = join(dir, 'other');
    const { ca } = makeEtcdTls((mkdirSync(otherCa), otherCa));
    const untrusted = openEtcdStore(settings({ tls: { ca, cert: join(dir, 'client.pem'), key: join(dir, 'client.key') } })).store;
    await assert.rejects(untrusted.load(), (e: unknown) => e instanceof FulcrumError && /is unreachable: the TLS handshake failed: etcd's certificate is not trusted \(\w+: .*\); check agent.store.tls.ca$/.test(e.message));
    await untrusted.close();
  });
});
