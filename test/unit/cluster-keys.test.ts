// The etcd key layout, the spec document and the revision mapping (src/cluster/keys.ts).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { prefixEnd } from '../../src/cluster/etcd-client.js';
import { clusterKeys, decodeRecord, decodeSpec, encodeSpec, NodeRecordSchema, nodeHealth, specRevision, type NodeRecord } from '../../src/cluster/keys.js';
import { FulcrumError } from '../../src/errors.js';
import { parseDesiredState } from '../../src/model/index.js';

const fails = (fn: () => unknown, code: string, re: RegExp) =>
  assert.throws(fn, (e: unknown) => e instanceof FulcrumError && e.code === code && re.test(e.message));

describe('cluster key layout', () => {
  test('keys of a cluster under the default and a custom prefix', () => {
    const k = clusterKeys('prod-eu1');
    assert.equal(k.root, '/fulcrum/v1/prod-eu1/');
    assert.equal(k.spec, '/fulcrum/v1/prod-eu1/spec');
    assert.equal(k.node('lb-1'), '/fulcrum/v1/prod-eu1/nodes/lb-1');
    assert.equal(k.member('lb-1'), '/fulcrum/v1/prod-eu1/members/lb-1');
    assert.equal(k.idOf('/fulcrum/v1/prod-eu1/nodes/lb-1'), 'lb-1');
    assert.equal(k.idOf('/fulcrum/v1/prod-eu1/members/lb.2'), 'lb.2');
    assert.equal(k.idOf('/fulcrum/v1/prod-eu10/nodes/lb-1'), undefined, 'another cluster whose name starts the same');
    assert.equal(k.idOf('/fulcrum/v1/prod-eu1/nodes/a/b'), undefined);
    assert.equal(clusterKeys('c', '/org/lb').spec, '/org/lb/v1/c/spec');
  });

  test('names and prefixes that would break the layout are refused, naming the rule', () => {
    fails(() => clusterKeys('Prod'), 'INVALID_CONFIG', /cluster "Prod" is not a valid name \(lower-case/);
    fails(() => clusterKeys('a/b'), 'INVALID_CONFIG', /cluster "a\/b"/);
    fails(() => clusterKeys(''), 'INVALID_CONFIG', /cluster ""/);
    fails(() => clusterKeys('x'.repeat(64)), 'INVALID_CONFIG', /not a valid name/);
    fails(() => clusterKeys('c', 'fulcrum'), 'INVALID_CONFIG', /must start with "\/"/);
    fails(() => clusterKeys('c', '/fulcrum/'), 'INVALID_CONFIG', /not end with "\/"/);
    fails(() => clusterKeys('c').node('../x'), 'INVALID_CONFIG', /node id "..\/x"/);
  });

  test('a prefix range ends at the prefix with its last byte + 1', () => {
    const end = (p: string) => Buffer.from(prefixEnd(p), 'base64');
    assert.deepEqual(end('/fulcrum/v1/c/nodes/'), Buffer.from('/fulcrum/v1/c/nodes0'));
    assert.deepEqual(end('a\xff'), Buffer.from([0x61, 0xc3, 0xc0]), 'utf-8 bytes, not characters');
    // Every key under the prefix sorts below the end, keys of the next sibling do not.
    const e = end('/p/');
    for (const k of ['/p/', '/p/a', '/p/\u{10ffff}']) assert.ok(Buffer.compare(Buffer.from(k), e) < 0, k);
    assert.ok(Buffer.compare(Buffer.from('/p0'), e) >= 0);
  });
});

describe('the spec document', () => {
  const state = parseDesiredState({
    services: [{ name: 'web', protocol: 'tcp', address: '10.0.0.1', port: 80, dataplane: 'xdp', backends: [{ address: '10.1.0.1' }], health: { check: { kind: 'http', path: '/healthz' } } }],
    xdp: { interfaces: [{ name: 'eth0' }] },
    vrrp: [{ name: 'v1', interface: 'eth0', vrid: 7, priority: 100, vips: ['10.0.0.1/32'] }],
  });

  test('holds the services (with their health checks) only, as canonical JSON; per-node sections stay out', () => {
    const doc = JSON.parse(encodeSpec(state)) as Record<string, unknown>;
    assert.deepEqual(Object.keys(doc).sort(), ['format', 'services']);
    assert.equal(doc.format, 1);
    const back = decodeSpec(encodeSpec(state), 'k');
    assert.deepEqual(back.services, state.services);
    assert.equal(back.xdp, undefined);
    assert.deepEqual(back.vrrp, []);
    assert.ok(Object.isFrozen(back.services[0]!.health));
    // Canonical: key order of the input does not change the bytes.
    const reordered = parseDesiredState({ services: [{ backends: [{ address: '10.1.0.1' }], dataplane: 'xdp', port: 80, address: '10.0.0.1', protocol: 'tcp', name: 'web', health: { check: { path: '/healthz', kind: 'http' } } }] });
    assert.equal(encodeSpec(reordered), encodeSpec(state));
  });

  test('a value that is not a spec is a STORE_ERROR naming the key and what is wrong', () => {
    fails(() => decodeSpec('{', '/f/v1/c/spec'), 'STORE_ERROR', /^\/f\/v1\/c\/spec is not valid JSON/);
    fails(() => decodeSpec('[]', 'k'), 'STORE_ERROR', /not a spec document/);
    fails(() => decodeSpec('{"format":2,"services":[]}', 'k'), 'STORE_ERROR', /format 2; this agent reads format 1/);
    fails(() => decodeSpec('{"format":1,"services":[],"vrrp":[]}', 'k'), 'STORE_ERROR', /holds vrrp, which are per node/);
    fails(() => decodeSpec('{"format":1,"services":[{"name":"x"}]}', 'k at revision 9'), 'STORE_ERROR', /^k at revision 9: invalid desired state:\nservices\[0\]/);
  });

  test('revision mapping: the spec key\'s mod_revision, 0 for a key never written', () => {
    assert.equal(specRevision(undefined), 0);
    assert.equal(specRevision({ modRevision: 1234 }), 1234);
  });
});

describe('node records', () => {
  const rec = (over: Partial<NodeRecord> = {}): NodeRecord => ({ id: 'lb-1', dataplanes: ['xdp'], appliedRevision: 10, startedAt: '2026-01-01T00:00:00.000Z', updatedAt: '2026-01-01T00:00:01.000Z', ...over });

  test('decode validates, naming the key', () => {
    assert.deepEqual(decodeRecord(NodeRecordSchema, Buffer.from(JSON.stringify(rec())), 'k'), rec());
    fails(() => decodeRecord(NodeRecordSchema, Buffer.from(JSON.stringify({ ...rec(), appliedRevision: -1 })), '/f/nodes/lb-1'), 'STORE_ERROR', /^\/f\/nodes\/lb-1 is invalid: appliedRevision/);
    fails(() => decodeRecord(NodeRecordSchema, Buffer.from('nope'), 'k'), 'STORE_ERROR', /k is not valid JSON/);
  });

  test('health against the cluster revision: current, behind, failed, gone', () => {
    assert.equal(nodeHealth(rec({ appliedRevision: 10 }), 10), 'current');
    assert.equal(nodeHealth(rec({ appliedRevision: 9 }), 10), 'behind');
    assert.equal(nodeHealth(rec({ lastReconcile: { result: 'failed', revision: 10, message: 'xdp: EBUSY', at: '2026-01-01T00:00:02.000Z' } }), 10), 'failed');
    assert.equal(nodeHealth(rec({ lastReconcile: { result: 'ok', revision: 10, at: '2026-01-01T00:00:02.000Z' } }), 10), 'current');
    assert.equal(nodeHealth(undefined, 10), 'gone');
  });
});
