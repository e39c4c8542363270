import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Writable } from 'node:stream';
import { parse as parseYaml } from 'yaml';
import { importKeepalived, parseKeepalivedConfig, renderYaml, scriptArgv } from '../../src/import/keepalived/index.js';
import { importKeepalivedCommand } from '../../src/cli/commands/import.js';
import { configCheckCommand } from '../../src/cli/commands/config.js';
import { loadConfigFile } from '../../src/model/index.js';

const here = dirname(fileURLToPath(import.meta.url));
// dist/test/unit -> test/fixtures/keepalived in the source tree.
const fixtures = join(here, '..', '..', '..', 'test', 'fixtures', 'keepalived');
const debianSamples = '/usr/share/doc/keepalived/samples';

function capture() {
  let text = '';
  const stream = new Writable({ write(c, _e, cb) { text += c.toString(); cb(); } });
  return { stream, text: () => text };
}

async function run(cmd: typeof importKeepalivedCommand, args: string[]) {
  const out = capture(), err = capture();
  let code: number;
  try {
    code = await cmd.run(args, { stdout: out.stream, stderr: err.stream, env: {} });
  } catch (e) {
    return { code: 1, out: out.text(), err: (e as Error).message };
  }
  return { code, out: out.text(), err: err.text() };
}

const tmp = mkdtempSync(join(tmpdir(), 'fulcrum-import-'));

/** The produced YAML through the agent's loader and `fulcrum config check`. */
async function assertLoads(yaml: string, name: string) {
  const file = join(tmp, `${name}.yaml`);
  writeFileSync(file, yaml);
  const config = loadConfigFile(file);
  const check = await run(configCheckCommand, ['-f', file]);
  assert.equal(check.code, 0, check.err);
  return config;
}

describe('fulcrum import keepalived', () => {
  const main = join(fixtures, 'keepalived.conf');

  test('the full fixture: every keyword lands on the model field it means', async () => {
    const r = await run(importKeepalivedCommand, [main]);
    assert.equal(r.code, 0, r.err);
    const config = await assertLoads(r.out, 'full');
    const svc = (name: string) => {
      const s = config.services.find((x) => x.name === name);
      assert.ok(s, `service ${name} in ${config.services.map((x) => x.name).join(', ')}`);
      return s;
    };

    const web = svc('tcp-192.0.2.10-80');
    assert.equal(web.scheduler, 'wrr');
    assert.equal(web.forwarding, 'nat');
    assert.equal(web.protocol, 'tcp');
    assert.deepEqual(web.persistence, { timeout: 600, netmask: '255.255.255.0' });
    assert.deepEqual(web.backends.map((b) => [b.address, b.port, b.weight, b.upperThreshold, b.lowerThreshold]),
      [['10.0.1.1', 8080, 3, 1000, 800], ['10.0.1.2', 8080, 1, 0, 0]]);
    assert.deepEqual(web.health?.check, { kind: 'http', method: 'GET', path: '/healthz', status: [200, '301-302'] });
    assert.equal(web.health?.interval, 6); // delay_loop
    assert.equal(web.health?.timeout, 2); // connect_timeout
    assert.equal(web.health?.fall, 3); // retry 2: the failed check and 2 retries
    assert.equal(web.health?.port, 8081); // connect_port
    assert.equal(web.health?.initialState, 'down'); // alpha
    assert.equal(web.health?.inhibitOnFailure, true);
    assert.deepEqual(web.health?.quorum, { min: 2, hysteresis: 1 });
    assert.deepEqual(web.health?.sorryServer, { address: '10.0.9.9', port: 8080 });

    const tls = svc('tcp-192.0.2.10-443');
    assert.equal(tls.scheduler, 'sh');
    assert.deepEqual(tls.schedulerFlags, { fallback: true, port: true });
    assert.equal(tls.forwarding, 'dr');
    assert.equal(tls.health?.check.kind, 'https');
    const https = tls.health!.check as { host?: string; tls: { sni?: string; verify: boolean }; bodyDigest?: unknown; status: unknown };
    assert.equal(https.host, 'www.example.com'); // virtualhost at the virtual_server level
    assert.deepEqual(https.tls, { sni: 'www.example.com', verify: false }); // enable_sni
    assert.deepEqual(https.bodyDigest, { algorithm: 'md5', hex: '9b3a0c85a887a256d6939da88aabd8cd' });
    assert.deepEqual(https.status, ['200-299']); // keepalived's default
    assert.equal(tls.health?.inhibitOnFailure, false); // keepalived removes a failed server by default
    assert.equal(tls.health?.initialState, 'up'); // ... and trusts it at start without alpha
    assert.equal(tls.health?.interval, 10);
    assert.equal(tls.health?.timeout, 5);

    const fw = svc('fwmark-7');
    assert.equal(fw.fwmark, 7);
    assert.equal(fw.forwarding, 'tunnel');
    assert.equal(fw.health?.check.kind, 'tcp');
    assert.equal(fw.health?.interval, 60); // keepalived's default delay_loop
    assert.equal(fw.health?.timeout, 3);
    // keepalived clears a DR/TUN fwmark real server's port in IPVS; its checker still uses it.
    assert.deepEqual(fw.backends.map((b) => b.port), [0]);
    assert.equal(fw.health?.port, 80);

    // virtual_server_group: a range and a fwmark, each a service with the group's backends.
    for (const name of ['udp-192.0.2.30-53', 'udp-192.0.2.31-53', 'fwmark-9']) {
      const g = svc(name);
      assert.equal(g.protocol, 'udp');
      assert.deepEqual(g.backends.map((b) => b.address), ['10.0.3.1', '10.0.3.2']);
      assert.deepEqual(g.health?.check, { kind: 'dns', name: 'health.example.com', type: 'A' });
    }
    const udp = svc('udp-192.0.2.40-5060');
    assert.deepEqual(udp.health?.check, { kind: 'udp', payloadHex: '4f5054', expect: '^\\x53\\x49\\x50' });
    assert.equal(udp.scheduler, 'wlc'); // keepalived's default scheduler too
    const misc = svc('tcp-192.0.2.50-25');
    assert.deepEqual(misc.health?.check, { kind: 'exec', program: '/usr/local/bin/check_smtp', args: ['10.0.5.1', 'EHLO lb'] });
    assert.equal(misc.health?.fall, 1); // MISC_CHECK's retry default is 0
    assert.equal(misc.health?.timeout, 5); // misc_timeout

    const [vi, db] = config.vrrp;
    assert.equal(vi?.name, 'VI_WEB');
    assert.equal(vi.interface, 'eth0');
    assert.equal(vi.vrid, 51);
    assert.equal(vi.priority, 150);
    assert.equal(vi.version, 2); // global_defs vrrp_version
    assert.equal(vi.advertInterval, 1);
    assert.equal(vi.preempt, false); // nopreempt
    assert.equal(vi.preemptDelay, 5);
    assert.deepEqual(vi.auth, { type: 'pass', password: 's3cret' });
    assert.deepEqual(vi.unicast, { source: '192.0.2.2', peers: ['192.0.2.3'] });
    assert.deepEqual(vi.vips.map((v) => `${v.address}/${v.prefix}`), ['192.0.2.10/24', '192.0.2.11/32']);
    assert.deepEqual(vi.track.interfaces, [{ interface: 'eth1', weight: -30 }, { interface: 'eth2' }]);
    assert.deepEqual(vi.track.scripts, [{ name: 'chk_haproxy', argv: ['/usr/bin/pgrep', '-x', 'haproxy'], interval: 2, timeout: 1, rise: 2, fall: 3, weight: -20 }]);
    assert.deepEqual(vi.notify?.exec, ['/etc/keepalived/notify.sh', 'web pair']);
    assert.equal(vi.syncGroup, 'VG_1');
    assert.equal(db?.version, 3); // the instance's own version
    assert.equal(db.advertInterval, 0.5);
    assert.equal(db.syncGroup, 'VG_1');
    assert.deepEqual(db.garp, { repeat: 3, intervalMs: 10, delay: 2 });

    assert.deepEqual(config.ipvs?.sync, { interface: 'eth1', syncId: 42, group: '224.0.0.81', port: 8848, ttl: 1, maxLength: 1400, refreshPeriod: 10, retries: 0 });

    // What was not carried over is named with file:line, on stderr and in the YAML header.
    assert.match(r.err, /^keepalived\.conf:3: not translated: global_defs router_id/m);
    assert.match(r.err, /^keepalived\.conf:52: not translated: notify_master \/etc\/keepalived\/master\.sh: Fulcrum has one hook/m);
    assert.match(r.err, /^keepalived\.conf:25: note: state MASTER/m);
    assert.match(r.err, /^conf\.d\/web\.conf:18: note: delay_before_retry 1s/m);
    assert.match(r.out, /^# not translated: 2$/m);
    assert.match(r.out, /^#   keepalived\.conf:52: not translated: notify_master/m);
  });

  test('-o json is the same config', async () => {
    const y = await run(importKeepalivedCommand, [main]);
    const j = await run(importKeepalivedCommand, ['-o', 'json', main]);
    assert.equal(j.code, 0);
    assert.deepEqual(JSON.parse(j.out), parseYaml(y.out));
    assert.equal((await run(importKeepalivedCommand, ['-o', 'xml', main])).code, 1);
  });

  test('includes: relative to the including file, globs sorted, braces expanded; every statement keeps its file:line', () => {
    const p = parseKeepalivedConfig(main);
    assert.deepEqual(p.files.map((f) => f.slice(fixtures.length + 1)), ['keepalived.conf', 'conf.d/udp.conf', 'conf.d/web.conf']);
    const vs = p.statements.filter((s) => s.keyword === 'virtual_server');
    assert.deepEqual(vs.map((s) => `${s.file.slice(fixtures.length + 1)}:${s.line}`),
      ['conf.d/udp.conf:6', 'conf.d/udp.conf:27', 'conf.d/udp.conf:38', 'conf.d/web.conf:2', 'conf.d/web.conf:44', 'conf.d/web.conf:63']);
    const dir = mkdtempSync(join(tmpdir(), 'fulcrum-include-'));
    writeFileSync(join(dir, 'main.conf'), 'include {a,b}.conf\n');
    writeFileSync(join(dir, 'a.conf'), 'vrrp_script one {\n  script "/bin/true"\n}\n');
    writeFileSync(join(dir, 'b.conf'), 'vrrp_script two {\n  script "/bin/false"\n}\n');
    const braces = parseKeepalivedConfig(join(dir, 'main.conf'));
    assert.deepEqual(braces.statements.map((s) => [s.args[0], s.line]), [['one', 1], ['two', 1]]);
  });

  test('unknown keywords are reported with file:line and the rest is translated', async () => {
    const r = await run(importKeepalivedCommand, [join(fixtures, 'unknown.conf')]);
    assert.equal(r.code, 0);
    for (const line of [
      /^unknown\.conf:2: not translated: global_defs enable_traps/m,
      /^unknown\.conf:7: not translated: use_vmac: unknown vrrp_instance keyword/m,
      /^unknown\.conf:13: not translated: frobnicate: unknown virtual_server keyword/m,
      /^unknown\.conf:15: not translated: PING_CHECK: Fulcrum has no ICMP check/m,
      /^unknown\.conf:19: not translated: bogus_block: unknown top-level keyword/m,
      /^unknown\.conf:21: not translated: include missing\/\*\.conf: no file matches/m,
    ]) assert.match(r.err, line);
    const config = await assertLoads(r.out, 'unknown');
    assert.equal(config.services.length, 1);
    assert.equal(config.services[0]!.health, undefined);
    assert.equal(config.vrrp[0]?.version, 2); // keepalived's default version
  });

  test('a syntax error in an included file names that file and line; exit 1', async () => {
    const r = await run(importKeepalivedCommand, [join(fixtures, 'broken', 'keepalived.conf')]);
    assert.equal(r.code, 1);
    assert.match(r.err, /broken\/part\.conf:1: the block of virtual_server is never closed/);
    const dir = mkdtempSync(join(tmpdir(), 'fulcrum-syntax-'));
    writeFileSync(join(dir, 'a.conf'), 'vrrp_instance X {\n}\n}\n');
    assert.throws(() => parseKeepalivedConfig(join(dir, 'a.conf')), /a\.conf:3: "}" without a matching "{"/);
    writeFileSync(join(dir, 'b.conf'), 'vrrp_script s {\n  script "/bin/true\n}\n');
    assert.throws(() => parseKeepalivedConfig(join(dir, 'b.conf')), /b\.conf:2: unterminated " quote/);
    assert.throws(() => parseKeepalivedConfig(join(dir, 'none.conf')), /cannot read/);
  });

  test('an instance or service the model refuses is reported, not emitted', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fulcrum-invalid-'));
    writeFileSync(join(dir, 'k.conf'), [
      'vrrp_instance NOVIP {', '  interface eth0', '  virtual_router_id 9', '}',
      'virtual_server 192.0.2.1 80 {', '  lb_algo nosuch', '  real_server 2001:db8::1 80 {', '  }', '}', '',
    ].join('\n'));
    const imp = importKeepalived(join(dir, 'k.conf'));
    assert.equal(imp.config.vrrp.length, 0);
    assert.equal(imp.config.services.length, 0);
    const text = imp.report.map((l) => `${l.line}: ${l.message}`).join('\n');
    assert.match(text, /^1: vrrp_instance NOVIP: the translation is not a valid Fulcrum instance:\n {4}vips: needs at least one virtual IP/m);
    assert.match(text, /^6: lb_algo nosuch: not an IPVS scheduler/m);
    assert.match(text, /^5: virtual_server 192\.0\.2\.1 80: the translation is not a valid Fulcrum service/m);
    await assertLoads(renderYaml(imp, dir), 'invalid');
  });

  test('global_defs vrrp_garp_* are every instance\'s garp defaults; an instance\'s own garp_* wins', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fulcrum-garp-'));
    writeFileSync(join(dir, 'k.conf'), [
      'global_defs {', '  vrrp_garp_master_delay 7', '  vrrp_garp_master_repeat 2', '  vrrp_garp_interval 0.05', '}',
      'vrrp_instance A {', '  interface eth0', '  virtual_router_id 1', '  virtual_ipaddress {', '    192.0.2.1', '  }', '}',
      'vrrp_instance B {', '  interface eth0', '  virtual_router_id 2', '  garp_master_repeat 4', '  virtual_ipaddress {', '    192.0.2.2', '  }', '}', '',
    ].join('\n'));
    const imp = importKeepalived(join(dir, 'k.conf'));
    assert.deepEqual(imp.config.vrrp.map((v) => v.garp), [{ delay: 7, repeat: 2, intervalMs: 50 }, { delay: 7, repeat: 4, intervalMs: 50 }]);
    assert.deepEqual(imp.report, []);
  });

  test('scripts become argv without a shell: words split, single quotes group', () => {
    assert.deepEqual(scriptArgv("/usr/bin/check 'a b' c"), ['/usr/bin/check', 'a b', 'c']);
    assert.deepEqual(scriptArgv('/bin/x  $HOME|y'), ['/bin/x', '$HOME|y']);
  });

  test('every Debian sample config imports to a file the agent loads', { skip: !existsSync(debianSamples) && 'keepalived samples not installed' }, async () => {
    const samples = readdirSync(debianSamples).filter((f) => f.startsWith('keepalived.conf'));
    assert.ok(samples.length > 10);
    for (const f of samples) {
      const r = await run(importKeepalivedCommand, [join(debianSamples, f)]);
      assert.equal(r.code, 0, `${f}: ${r.err}`);
      await assertLoads(r.out, f);
      // Every report line names a file and a line.
      for (const l of r.err.trim().split('\n').slice(0, -1)) if (!l.startsWith(' ')) assert.match(l, /^[^:]+:\d+: (not translated|note): /, `${f}: ${l}`);
    }
  });
});

test('docs/migrating-from-keepalived.md: the worked example is what the importer prints', async () => {
  const md = readFileSync(join(fixtures, '..', '..', '..', 'docs', 'migrating-from-keepalived.md'), 'utf8');
  const example = md.slice(md.indexOf('## A worked example'));
  const blocks = [...example.matchAll(/```(\w*)\n([\s\S]*?)```/g)].map((m) => ({ lang: m[1], text: m[2]! }));
  const [input, stderr, yaml] = blocks;
  assert.equal(input?.lang, '');
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-docs-example-'));
  writeFileSync(join(dir, 'keepalived.conf'), input.text);
  const cwd = process.cwd();
  process.chdir(dir);
  try {
    const r = await run(importKeepalivedCommand, ['keepalived.conf']);
    assert.equal(r.code, 0);
    assert.equal(r.err, stderr?.text);
    assert.equal(yaml?.lang, 'yaml');
    assert.deepEqual(parseYaml(r.out), parseYaml(yaml.text));
  } finally {
    process.chdir(cwd);
  }
});
