import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runNotify, type NotifyPayload } from '../../src/vrrp/notify.js';

const payload: NotifyPayload = { instance: 'vi1', vrid: 7, interface: 'eth0', state: 'master', previous: 'backup', priority: 150, master: '10.0.0.1', reason: 'master down timer expired', time: '2026-01-01T00:00:00.000Z' };

test('notify: exec gets instance, new and old state as argv (no shell); webhook gets the JSON body', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'fl-notify-'));
  const out = join(dir, 'argv.json');
  let body = '';
  const server = createServer((req, res) => {
    req.on('data', (d: Buffer) => { body += d.toString(); });
    req.on('end', () => res.end('ok'));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  try {
    const failures = await runNotify(
      { exec: [process.execPath, '-e', 'require("fs").writeFileSync(process.argv[1], JSON.stringify(process.argv.slice(2)))', out, '$(touch /nonexistent)'], webhook: `http://127.0.0.1:${port}/hook`, timeoutMs: 5000 },
      payload,
    );
    assert.deepEqual(failures, []);
    assert.deepEqual(JSON.parse(readFileSync(out, 'utf8')), ['$(touch /nonexistent)', 'vi1', 'master', 'backup'], 'arguments reach the program verbatim');
    assert.deepEqual(JSON.parse(body), payload);
  } finally {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('notify: a hook that hangs is killed at the timeout and reported, a failing webhook is reported', async () => {
  const server = createServer((_req, res) => { res.statusCode = 500; res.end(); });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  try {
    const t0 = Date.now();
    const failures = await runNotify({ exec: [process.execPath, '-e', 'setTimeout(() => {}, 60000)'], webhook: `http://127.0.0.1:${port}/`, timeoutMs: 300 }, payload);
    assert.ok(Date.now() - t0 < 10_000, 'did not wait for the hung hook');
    assert.equal(failures.length, 2);
    assert.match(failures.join('\n'), /killed after 300 ms/);
    assert.match(failures.join('\n'), /HTTP 500/);
  } finally {
    server.close();
  }
});
