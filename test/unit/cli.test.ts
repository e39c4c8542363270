import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { COMMANDS } from '../../src/cli/commands/index.js';
import { harness, ADMIN, READER, type Harness } from '../helpers/agent-harness.js';

function capture() {
  let text = '';
  const stream = new Writable({ write(c, _e, cb) { text += c.toString(); cb(); } });
  return { stream, text: () => text };
}

async function cli(words: string[], env: Record<string, string>) {
  const command = COMMANDS.filter((c) => c.path.every((w, i) => words[i] === w)).sort((a, b) => b.path.length - a.path.length)[0]!;
  const out = capture(), err = capture();
  let code: number;
  try {
    code = await command.run(words.slice(command.path.length), { stdout: out.stream, stderr: err.stream, env });
  } catch (e) {
    return { code: 1, out: out.text(), error: e as Error & { code?: string } };
  }
  return { code, out: out.text(), error: undefined };
}

describe('CLI against a running API (fake dataplane)', () => {
  let h: Harness;
  let env: Record<string, string>;
  before(async () => {
    h = await harness();
    await h.app.listen({ host: '127.0.0.1', port: 0 });
    const port = (h.app.server.address() as { port: number }).port;
    env = { FULCRUM_SERVER: `http://127.0.0.1:${port}`, FULCRUM_TOKEN: ADMIN };
  });
  after(async () => h.close());

  test('apply --dry-run prints the plan as a diff and applies nothing; apply applies', async () => {
    const file = join(h.dir, 'state.yaml');
    writeFileSync(file, 'agent: { stateDir: /ignored }\nservices:\n  - name: web\n    address: 10.0.0.1\n    port: 80\n    scheduler: rr\n    backends:\n      - { address: 10.0.1.1, port: 8080, weight: 2 }\n');
    const dry = await cli(['apply', '-f', file, '--dry-run'], env);
    assert.equal(dry.code, 0, String(dry.error));
    assert.match(dry.out, /^\+ service web tcp 10\.0\.0\.1:80 on ipvs \(rr, nat\)\n\+ {3}backend 10\.0\.1\.1:8080 weight 2\n/);
    assert.match(dry.out, /ipvs: 2 kernel step\(s\)\n {2}\+ service web\n/);
    assert.match(dry.out, /dry run: nothing applied \(revision 0\)/);
    assert.equal(h.agent.revision, 0);
    const real = await cli(['apply', '-f', file], env);
    assert.match(real.out, /applied: revision 0 -> 1/);
    assert.equal(h.ipvs.kernel.size, 1);
    const again = await cli(['apply', '-f', file], env);
    assert.equal(again.out, 'no changes (revision 1)\n');
  });

  test('get services: a table for people, JSON for scripts', async () => {
    const t = await cli(['get', 'services'], { ...env, FULCRUM_TOKEN: READER });
    assert.equal(t.out, 'NAME  DATAPLANE  SERVICE          SCHEDULER  FORWARDING  BACKENDS\nweb   ipvs       tcp 10.0.0.1:80  rr         nat         10.0.1.1:8080*2\n');
    const j = await cli(['get', 'services', '-o', 'json'], env);
    assert.equal(JSON.parse(j.out)[0].name, 'web');
    const one = await cli(['get', 'services', 'web', '-o', 'json'], env);
    assert.equal(JSON.parse(one.out).backends[0].weight, 2);
    const missing = await cli(['get', 'services', 'nope'], env);
    assert.equal(missing.error?.code, 'NOT_FOUND');
  });

  test('drain, status, and errors that say what to do', async () => {
    const d = await cli(['drain', 'web', '10.0.1.1:8080'], env);
    assert.equal(d.out, 'web 10.0.1.1:8080: done\n');
    assert.equal(h.agent.service('web')!.backends.length, 0);
    const s = await cli(['status'], env);
    assert.match(s.out, /^revision: {2}2 /);
    assert.match(s.out, /ipvs {7}yes/);
    assert.match(s.out, /xdp {8}no {9}no xdp in this \(fake\) kernel/);
    const ro = await cli(['drain', 'web', '10.0.1.1:8080'], { ...env, FULCRUM_TOKEN: READER });
    assert.equal(ro.error?.code, 'FORBIDDEN');
    const bad = await cli(['drain', 'web', 'nohost'], env);
    assert.match(bad.error!.message, /BACKEND: "nohost" is not address:port/);
    const down = await cli(['status', '--server', 'http://127.0.0.1:1'], env);
    assert.match(down.error!.message, /cannot reach the agent at http:\/\/127\.0\.0\.1:1/);
    const opt = await cli(['status', '-o', 'xml'], env);
    assert.match(opt.error!.message, /-o: "xml" is not table or json/);
  });
});

describe('CLI waiting for a slow agent', () => {
  // A loopback server that answers after 1.5 s, as an agent applying a large table would.
  let server: Server;
  let env: Record<string, string>;
  const answered: string[] = [];
  before(async () => {
    server = createServer((req, res) => {
      req.resume();
      req.on('end', () => setTimeout(() => {
        answered.push(`${req.method} ${req.url}`);
        res.setHeader('content-type', 'application/json');
        res.end(req.method === 'GET'
          ? JSON.stringify({ revision: 1, dataplanes: [], vrrp: [], health: [] })
          : JSON.stringify({ changed: false, dryRun: false, revision: 1, diff: [], plan: [] }));
      }, 1500));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    env = { FULCRUM_SERVER: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, FULCRUM_TOKEN: ADMIN };
  });
  after(() => new Promise<void>((r) => server.close(() => r())));

  test('a change waits for its answer; --timeout bounds it and says the change may still be applying', async () => {
    const file = join(tmpdir(), `fulcrum-cli-slow-${process.pid}.yaml`);
    writeFileSync(file, 'services: []\n');
    const waited = await cli(['apply', '-f', file], env);
    assert.equal(waited.error, undefined);
    assert.equal(waited.out, 'no changes (revision 1)\n');
    const bounded = await cli(['apply', '-f', file, '--timeout', '0.5'], env);
    assert.match(bounded.error!.message, /no answer from http:\/\/127\.0\.0\.1:\d+ within 0\.5 s; the agent may still be applying the change: `fulcrum status` shows its revision/);
    const read = await cli(['status', '--timeout', '0.5'], env);
    assert.match(read.error!.message, /within 0\.5 s$/);
    const bad = await cli(['status', '--timeout', 'soon'], env);
    assert.match(bad.error!.message, /--timeout: "soon" is not a number of seconds/);
    rmSync(file);
  });
});

describe('CLI over TLS', () => {
  test('with --ca the CLI talks to an https API; without it the certificate is refused', async () => {
    const { readFileSync } = await import('node:fs');
    const { fileURLToPath } = await import('node:url');
    const dir = fileURLToPath(new URL('../../../test/fixtures/tls/', import.meta.url));
    const h = await harness({ https: { cert: readFileSync(join(dir, 'cert.pem')), key: readFileSync(join(dir, 'key.pem')) } });
    try {
      await h.app.listen({ host: '127.0.0.1', port: 0 });
      const port = (h.app.server.address() as { port: number }).port;
      const env = { FULCRUM_SERVER: `https://127.0.0.1:${port}`, FULCRUM_TOKEN: ADMIN };
      const ok = await cli(['status', '--ca', join(dir, 'cert.pem')], env);
      assert.equal(ok.code, 0, String(ok.error));
      assert.match(ok.out, /^revision: {2}0/);
      const bad = await cli(['status'], env);
      assert.match(bad.error!.message, /self-signed certificate/);
    } finally {
      await h.close();
    }
  });
});
