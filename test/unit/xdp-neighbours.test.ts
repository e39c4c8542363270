import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NeighbourLearner, type NeighbourTable } from '../../src/xdp/neighbours.js';
import type { Family } from '../../src/model/net.js';

/** An in-memory neighbour table that records solicitations. */
class FakeTable implements NeighbourTable {
  entries = new Map<string, string>();
  solicited: Array<[string, Family]> = [];
  closed = false;
  async macs() { return new Map(this.entries); }
  solicit(address: string, family: Family) { this.solicited.push([address, family]); }
  close() { this.closed = true; }
}

const b1 = { address: '10.1.0.1', family: 'inet' as const };
const b2 = { address: '2001:db8::2', family: 'inet6' as const };

test('unknown addresses are solicited, known ones learned; a learned MAC survives its entry going away and follows a change', async () => {
  const t = new FakeTable();
  const l = new NeighbourLearner(t);
  assert.deepEqual(await l.refresh([b1, b2]), []);
  assert.deepEqual(t.solicited, [['10.1.0.1', 'inet'], ['2001:db8::2', 'inet6']]);
  assert.equal(l.macOf('10.1.0.1'), undefined);

  t.entries.set('10.1.0.1', '02:00:00:00:00:01');
  assert.deepEqual(await l.refresh([b1]), [{ address: '10.1.0.1', mac: '02:00:00:00:00:01', previous: undefined }]);
  assert.equal(l.macOf('10.1.0.1'), '02:00:00:00:00:01');
  assert.deepEqual(await l.refresh([b1]), [], 'no change, nothing reported');

  t.entries.clear();
  t.solicited = [];
  assert.deepEqual(await l.refresh([b1]), []);
  assert.equal(l.macOf('10.1.0.1'), '02:00:00:00:00:01', 'kept while the kernel re-resolves');
  assert.deepEqual(t.solicited, [['10.1.0.1', 'inet']]);

  t.entries.set('10.1.0.1', '02:00:00:00:00:09');
  assert.deepEqual(await l.refresh([b1]), [{ address: '10.1.0.1', mac: '02:00:00:00:00:09', previous: '02:00:00:00:00:01' }]);
  l.close();
  assert.equal(t.closed, true);
});

test('nothing wanted: the table is not read', async () => {
  const t = new FakeTable();
  t.macs = async () => { throw new Error('read'); };
  assert.deepEqual(await new NeighbourLearner(t).refresh([]), []);
});
