import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { EtcdClient } from '../../src/cluster/etcd-client.js';
import { EtcdStateStore } from '../../src/cluster/etcd-store.js';
import { ManualClock, flush } from '../helpers/fake-clock.js';

/**
 * The node record against a fake etcd client whose puts the test releases one by one: a status
 * update made while an earlier put of the record is in flight (the keepalive's, after etcd came
 * back) must still reach etcd. Seen in the cluster tier: a node started while etcd was down stayed
 * "behind" at revision 0 in /v1/cluster although it ran the cluster's revision.
 */
class GatedClient {
  readonly endpoints = ['http://fake:2379'];
  readonly records: Array<{ key: string; value: Record<string, unknown> }> = [];
  private gates: Array<() => void> = [];
  gated = false;

  async put(key: string, value: string): Promise<{ revision: number }> {
    if (this.gated) await new Promise<void>((r) => this.gates.push(r));
    this.records.push({ key, value: JSON.parse(value) as Record<string, unknown> });
    return { revision: this.records.length };
  }
  async leaseGrant(ttl: number) { return { id: '7', ttl }; }
  async leaseKeepAlive() { return 10; }
  async leaseRevoke() { /* */ }
  close() { /* */ }
  release(): void { this.gates.shift()?.(); }
  get waiting(): number { return this.gates.length; }
}

describe('EtcdStateStore node record', () => {
  test('a status update made while a put of the record is in flight is put after it', async () => {
    const client = new GatedClient();
    const store = new EtcdStateStore({ client: client as unknown as EtcdClient, cluster: 'c1', clock: new ManualClock(), leaseTtlSeconds: 3 });
    await store.register({ id: 'n1', dataplanes: ['xdp'], appliedRevision: 0 });
    const nodeKey = '/fulcrum/v1/c1/nodes/n1';
    const lastPut = () => client.records.filter((r) => r.key === nodeKey).at(-1)?.value.appliedRevision;
    assert.equal(lastPut(), 0);

    client.gated = true;
    const first = store.updateStatus({ appliedRevision: 5 });
    await flush();
    assert.equal(client.waiting, 1, 'the put of revision 5 is in flight');
    const second = store.updateStatus({ appliedRevision: 9 });
    await flush();
    client.release();
    await first;
    await flush();
    client.release();
    await second;
    assert.equal(lastPut(), 9, `the record in etcd has the last update (puts: ${JSON.stringify(client.records.map((r) => r.value.appliedRevision))})`);
    await store.close();
  });
});
