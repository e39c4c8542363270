import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { Writable } from 'node:stream';
import { configCheckCommand } from '../../src/cli/commands/config.js';

function capture() {
  let text = '';
  const stream = new Writable({ write(c, _e, cb) { text += c.toString(); cb(); } });
  return { stream, text: () => text };
}

async function check(args: string[]) {
  const out = capture(), err = capture();
  const code = await configCheckCommand.run(args, { stdout: out.stream, stderr: err.stream, env: {} });
  return { code, out: out.text(), err: err.text() };
}

describe('fulcrum config check', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-config-check-'));
  const stateDir = join(dir, 'state-never-created');
  const tokens = join(dir, 'tokens.yaml');
  writeFileSync(tokens, 'tokens:\n  - { name: ops, role: admin, token: a-long-enough-admin-token }\n', { mode: 0o600 });

  test('a valid file: exit 0, one OK line, nothing created', async () => {
    const file = join(dir, 'ok.yaml');
    writeFileSync(file, [
      `agent: { stateDir: ${stateDir}, api: { port: 9181, tokensFile: ${tokens} } }`,
      'services:',
      '  - { name: web, address: 192.0.2.10, port: 80, scheduler: rr, backends: [{ address: 10.0.1.1 }, { address: 10.0.1.2 }] }',
      'vrrp:',
      '  - { name: vip, interface: eth0, vrid: 51, priority: 150, vips: [192.0.2.10/24] }',
      '',
    ].join('\n'));
    const r = await check(['-f', file]);
    assert.equal(r.err, '');
    assert.equal(r.code, 0);
    assert.equal(r.out, `${file}: OK (1 service, 1 VRRP instance, no xdp section, API 127.0.0.1:9181, state dir ${stateDir})\n`);
    assert.equal(existsSync(stateDir), false, 'config check must not create the state dir');
  });

  test('several errors at once, each with its field path; exit 1', async () => {
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, [
      'services:',
      '  - { name: web, address: 192.0.2.10, port: 70000, backends: [{ address: 10.0.1.1, weight: -1 }] }',
      'vrrp:',
      '  - { name: vip, interface: eth0, vrid: 300, priority: 150, vips: [192.0.2.10/24] }',
      'bogus: 1',
      '',
    ].join('\n'));
    const r = await check(['-f', file]);
    assert.equal(r.code, 1);
    assert.equal(r.out, '');
    const lines = r.err.trim().split('\n');
    assert.match(r.err, new RegExp(`^${file}: services\\[0\\]\\.port: .*65535`, 'm'));
    assert.match(r.err, new RegExp(`^${file}: services\\[0\\]\\.backends\\[0\\]\\.weight: `, 'm'));
    assert.match(r.err, new RegExp(`^${file}: vrrp\\[0\\]\\.vrid: `, 'm'));
    assert.match(r.err, /bogus/);
    assert.equal(lines.at(-1), `fulcrum: config check: ${file}: ${lines.length - 1} errors`);
    assert.ok(lines.length - 1 >= 4, r.err);
  });

  test('a cross-service rule (duplicate VIP) is reported as the agent reports it', async () => {
    const file = join(dir, 'dup.yaml');
    writeFileSync(file, 'services:\n  - { name: a, address: 192.0.2.10, port: 80 }\n  - { name: b, address: 192.0.2.10, port: 80 }\n');
    const r = await check(['-f', file]);
    assert.equal(r.code, 1);
    assert.match(r.err, new RegExp(`^${file}: services\\[1\\]`, 'm'));
  });

  test('a bad tokens file is an error naming agent.api.tokensFile', async () => {
    const badTokens = join(dir, 'bad-tokens.yaml');
    writeFileSync(badTokens, 'tokens:\n  - { name: ops, role: root, token: short }\n');
    const file = join(dir, 'tok.yaml');
    writeFileSync(file, `agent: { api: { tokensFile: ${badTokens} } }\n`);
    const r = await check(['-f', file]);
    assert.equal(r.code, 1);
    assert.match(r.err, new RegExp(`^${file}: agent\\.api\\.tokensFile: tokens file ${badTokens}: tokens\\[0\\]\\.role`, 'm'));
  });

  test('an unreadable or missing file, and a YAML syntax error: exit 1 with the reason', async () => {
    const missing = join(dir, 'missing.yaml');
    const r = await check(['-f', missing]);
    assert.equal(r.code, 1);
    assert.match(r.err, new RegExp(`cannot read ${missing}: ENOENT`));
    assert.match(r.err, /: 1 error\n$/);
    const syntax = join(dir, 'syntax.yaml');
    writeFileSync(syntax, 'services: [\n');
    const s = await check(['-f', syntax]);
    assert.equal(s.code, 1);
    assert.match(s.err, new RegExp(`^${syntax}: `, 'm'));
    if (process.getuid?.() !== 0) {
      const locked = join(dir, 'locked.yaml');
      writeFileSync(locked, 'services: []\n');
      chmodSync(locked, 0);
      const l = await check(['-f', locked]);
      assert.equal(l.code, 1);
      assert.match(l.err, /EACCES/);
    }
  });

  test('usage errors: no -f, unknown option', async () => {
    await assert.rejects(check([]), /-f FILE is required/);
    await assert.rejects(check(['-x']), /Unknown option/);
  });

  test('the real binary: exit codes through dist/src/cli/main.js', () => {
    const main = join(import.meta.dirname, '../../src/cli/main.js');
    const bad = spawnSync(process.execPath, [main, 'config', 'check', '-f', join(dir, 'bad.yaml')], { encoding: 'utf8' });
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /services\[0\]\.port/);
    const ok = spawnSync(process.execPath, [main, 'config', 'check', '-f', join(dir, 'ok.yaml')], { encoding: 'utf8' });
    assert.equal(ok.status, 0, ok.stderr);
    assert.match(ok.stdout, /: OK \(/);
    rmSync(dir, { recursive: true, force: true });
  });
});
