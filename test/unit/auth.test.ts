import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hashToken, localAdminToken, TokenSet } from '../../src/api/auth.js';

test('tokens file: sha256 or plain tokens, roles, constant-time lookup', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-tokens-'));
  try {
    const path = join(dir, 'tokens.yaml');
    writeFileSync(path, `tokens:\n  - { name: ops, role: admin, sha256: ${hashToken('secret-admin-token-1')} }\n  - { name: grafana, role: read, token: secret-read-token-22 }\n`);
    const set = TokenSet.fromFile(path);
    assert.deepEqual(set.verify('secret-admin-token-1'), { name: 'ops', role: 'admin' });
    assert.deepEqual(set.verify('secret-read-token-22'), { name: 'grafana', role: 'read' });
    assert.equal(set.verify('secret-read-token-2'), undefined);
    assert.equal(set.verify(''), undefined);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a bad tokens file names the field', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-tokens-'));
  try {
    const path = join(dir, 'tokens.yaml');
    const bad = (text: string, re: RegExp) => {
      writeFileSync(path, text);
      assert.throws(() => TokenSet.fromFile(path), (e: Error & { code?: string }) => e.code === 'INVALID_CONFIG' && re.test(e.message), text);
    };
    bad('tokens:\n  - { name: a, role: root, token: 0123456789abcdef }\n', /tokens\[0\]\.role/);
    bad('tokens:\n  - { name: a, role: read, token: short }\n', /tokens\[0\]\.token: must be at least 16 characters/);
    bad('tokens:\n  - { name: a, role: read }\n', /tokens\[0\]\.sha256: give exactly one of sha256 or token/);
    bad('tokens:\n  - { name: a, role: read, sha256: abc }\n', /tokens\[0\]\.sha256: must be 64 lowercase hex digits/);
    bad('tokens:\n  - { name: a, role: read, token: 0123456789abcdef }\n  - { name: a, role: admin, token: 0123456789abcdeg }\n', /tokens\[1\]\.name: duplicate token name a/);
    bad('tokens: [\n', /tokens file .*tokens\.yaml/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('without a tokens file: one local admin token, mode 0600, stable across restarts', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-tokens-'));
  try {
    const a = localAdminToken(dir);
    const token = readFileSync(a.path, 'utf8').trim();
    assert.ok(token.length >= 40);
    assert.equal(statSync(a.path).mode & 0o777, 0o600);
    assert.deepEqual(a.tokens.verify(token), { name: 'local-admin', role: 'admin' });
    const b = localAdminToken(dir);
    assert.deepEqual(b.tokens.verify(token), { name: 'local-admin', role: 'admin' });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
