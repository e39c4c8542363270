import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FulcrumError } from '../../src/errors.js';
import { NAMES_FILE, ServiceNames } from '../../src/xdp/names.js';

function withStateDir(fn: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-xdp-names-'));
  try {
    fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const read = (dir: string): unknown => JSON.parse(readFileSync(join(dir, NAMES_FILE), 'utf8'));

test('service names: saved versioned and read back by the next agent; a VIP without a record is named by its key', () => withStateDir((dir) => {
  new ServiceNames(dir).set({ 'tcp 10.0.0.1:80': 'web' });
  assert.deepEqual(read(dir), { version: 1, data: { 'tcp 10.0.0.1:80': 'web' } });
  const names = new ServiceNames(dir);
  assert.equal(names.nameOf('tcp 10.0.0.1:80'), 'web');
  assert.equal(names.nameOf('udp 10.0.0.2:53'), 'udp 10.0.0.2:53');
}));

test('service names: the unversioned file of earlier agents is read, and rewritten versioned at the next save even when no name changed', () => withStateDir((dir) => {
  writeFileSync(join(dir, NAMES_FILE), `${JSON.stringify({ 'tcp 10.0.0.1:80': 'web', 'udp [2001:db8::1]:53': 'dns' }, null, 2)}\n`);
  const names = new ServiceNames(dir);
  assert.equal(names.nameOf('tcp 10.0.0.1:80'), 'web');
  assert.equal(names.nameOf('udp [2001:db8::1]:53'), 'dns');
  names.set({ 'tcp 10.0.0.1:80': 'web', 'udp [2001:db8::1]:53': 'dns' });
  assert.deepEqual(read(dir), { version: 1, data: { 'tcp 10.0.0.1:80': 'web', 'udp [2001:db8::1]:53': 'dns' } });
}));

test('service names: an invalid file is an error naming it, not a silent reset', () => withStateDir((dir) => {
  writeFileSync(join(dir, NAMES_FILE), JSON.stringify({ 'tcp 10.0.0.1:80': 42 }));
  assert.throws(() => new ServiceNames(dir), (e: unknown) => e instanceof FulcrumError && e.code === 'STORE_ERROR' && e.message.includes(NAMES_FILE));
  writeFileSync(join(dir, NAMES_FILE), JSON.stringify({ version: 2, data: {} }));
  assert.throws(() => new ServiceNames(dir), (e: unknown) => e instanceof FulcrumError && e.code === 'STORE_ERROR' && /version 2/.test(e.message));
}));

test('service names: cleanup leaves an empty versioned record', () => withStateDir((dir) => {
  const names = new ServiceNames(dir);
  names.set({ 'tcp 10.0.0.1:80': 'web' });
  names.clear();
  assert.deepEqual(read(dir), { version: 1, data: {} });
  assert.equal(new ServiceNames(dir).nameOf('tcp 10.0.0.1:80'), 'tcp 10.0.0.1:80');
}));
