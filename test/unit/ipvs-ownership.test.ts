import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OwnershipStore } from '../../src/ipvs/ownership.js';
import { isFulcrumError } from '../../src/errors.js';

const drain = { key: 'tcp 10.0.0.1:80', dest: '10.0.1.2:80', service: 'web', startedAt: 1_700_000_000_000, deadline: 1_700_000_300_000 };

function withDir(f: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-owned-'));
  try { f(dir); } finally { rmSync(dir, { recursive: true, force: true }); }
}

test('a record in the version 1 layout (no envelope) loads, and the next save writes version 2', () => withDir((dir) => {
  // Byte for byte what the store wrote before it used the state-file envelope.
  const v1 = { version: 1, owned: ['tcp 10.0.0.1:80', 'udp 10.0.0.1:53'], drains: [drain] };
  writeFileSync(join(dir, 'ipvs-owned.json'), JSON.stringify(v1, null, 1) + '\n');
  const store = new OwnershipStore(dir);
  const state = store.load();
  assert.deepEqual([...state.owned], ['tcp 10.0.0.1:80', 'udp 10.0.0.1:53']);
  assert.deepEqual([...state.drains], [['tcp 10.0.0.1:80 10.0.1.2:80', drain]]);
  store.save(state);
  assert.deepEqual(JSON.parse(readFileSync(store.path, 'utf8')), { version: 2, data: { owned: v1.owned, drains: [drain] } });
  assert.deepEqual(new OwnershipStore(dir).load(), state);
}));

test('a missing record is empty; an invalid or unknown one is a STORE_ERROR naming the file', () => withDir((dir) => {
  const store = new OwnershipStore(dir);
  assert.deepEqual(store.load(), { owned: new Set(), drains: new Map() });
  const bad = (body: object, pattern: RegExp) => {
    writeFileSync(store.path, JSON.stringify(body));
    assert.throws(() => store.load(), (e: unknown) => isFulcrumError(e) && e.code === 'STORE_ERROR' && e.message.includes(store.path) && pattern.test(e.message));
  };
  bad({ version: 1, owned: 'tcp 10.0.0.1:80', drains: [] }, /version 1\) is invalid: owned/);
  bad({ version: 2, data: { owned: [], drains: [{ ...drain, deadline: 'soon' }] } }, /is invalid: drains\.0\.deadline/);
  bad({ version: 3, data: {} }, /has version 3/);
}));
