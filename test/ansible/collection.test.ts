import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ansibleEnv, ansibleSkipReason, collections, COLLECTION_SRC, REPO, sh, type Collections } from '../helpers/ansible.js';

/**
 * The offline checks of the collection fulcrum.lb: ansible-test units (module_utils and modules
 * against a scripted loopback API), validate-modules run directly (ansible-test sanity wants pip,
 * which is not reachable here), ansible-doc of every module and of the role, yamllint, playbook
 * syntax, the role's argument spec, and the systemd unit through systemd-analyze verify.
 */
const skip = ansibleSkipReason();
const MODULES = readdirSync(join(COLLECTION_SRC, 'plugins', 'modules')).filter((f) => f.endsWith('.py')).map((f) => f.slice(0, -3)).sort();
const VALIDATE_MODULES = '/usr/lib/python3/dist-packages/ansible_test/_util/controller/sanity/validate-modules';

describe('collection fulcrum.lb, offline checks', { skip }, () => {
  let copy: Collections, link: Collections;
  before(() => { copy = collections({ copy: true }); link = collections(); });
  after(() => { copy?.dispose(); link?.dispose(); });

  test('the six modules are there', () => {
    assert.deepEqual(MODULES, ['backend', 'info', 'reload', 'service', 'state', 'vrrp']);
  });

  test('ansible-test units: module_utils and modules pass, none skipped', async () => {
    const py = (await sh('/usr/bin/python3', ['-c', 'import sys; print("%d.%d" % sys.version_info[:2])'])).stdout.trim();
    const r = await sh('ansible-test', ['units', '--local', '--python', py], { cwd: copy.root, env: ansibleEnv(copy.path) });
    const out = r.stdout + r.stderr;
    assert.equal(r.code, 0, out);
    const totals = [...out.matchAll(/=+ (.*) in [\d.]+s =+/g)].map((m) => m[1]!);
    assert.equal(totals.length, 2, `one pytest run for modules, one for module_utils:\n${out}`);
    for (const t of totals) {
      assert.match(t, /^\d+ passed$/, `only passes expected: ${t}`);
      assert.ok(Number(t.split(' ')[0]) >= 10, t);
    }
  });

  // These ansible-test sanity tests install their linters with pip into a venv: no PyPI here.
  // validate-modules, ansible-doc and yamllint run directly below; the others are listed in docs/ansible.md.
  const NEEDS_PIP = ['ansible-doc', 'import', 'pep8', 'pylint', 'runtime-metadata', 'validate-modules', 'yamllint', 'pslint', 'shellcheck'];

  test('ansible-test sanity: every test that runs offline passes', async () => {
    const py = (await sh('/usr/bin/python3', ['-c', 'import sys; print("%d.%d" % sys.version_info[:2])'])).stdout.trim();
    const list = await sh('ansible-test', ['sanity', '--list-tests'], { cwd: copy.root, env: ansibleEnv(copy.path) });
    const all = list.stdout.split('\n').map((l) => l.trim()).filter((l) => /^[a-z0-9-]+$/.test(l));
    const offline = all.filter((t) => !NEEDS_PIP.includes(t));
    assert.ok(offline.length >= 20, list.stdout);
    const r = await sh('ansible-test', ['sanity', '--local', '--python', py, ...NEEDS_PIP.flatMap((t) => ['--skip-test', t])], { cwd: copy.root, env: ansibleEnv(copy.path) });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const ran = [...(r.stdout + r.stderr).matchAll(/Running sanity test "([^"]+)"/g)].map((m) => m[1]!);
    assert.deepEqual(ran.sort(), offline.sort(), 'each offline sanity test ran');
  });

  test('validate-modules (documentation against argument spec): no error but the listed ignores, each one still needed', async () => {
    const r = await sh('/usr/bin/python3', [join(VALIDATE_MODULES, 'validate.py'), '--collection', 'ansible_collections/fulcrum/lb',
      '--collection-version', '0.1.0', '--arg-spec', '--format', 'json', ...MODULES.map((m) => `plugins/modules/${m}.py`)],
    { cwd: copy.root, env: ansibleEnv(copy.path, { PYTHONPATH: `${VALIDATE_MODULES}:/usr/lib/python3/dist-packages/ansible_test/_util/controller/sanity` }) });
    const report = JSON.parse(r.stdout || '{}') as Record<string, { errors: Array<{ code: string; msg: string }> }>;
    const ignores = new Set(readFileSync(join(COLLECTION_SRC, 'tests', 'sanity', 'ignore-2.14.txt'), 'utf8').split('\n')
      .map((l) => l.replace(/#.*/, '').trim()).filter(Boolean).filter((l) => l.includes(' validate-modules:')).map((l) => l.replace(' validate-modules:', ' ')));
    const errors: string[] = [];
    const used = new Set<string>();
    for (const [file, res] of Object.entries(report)) for (const e of res.errors) {
      const key = `${file} ${e.code}`;
      if (ignores.has(key)) used.add(key); else errors.push(`${key}: ${e.msg}`);
    }
    assert.equal(Object.keys(report).length, MODULES.length, r.stdout + r.stderr);
    assert.deepEqual(errors, []);
    assert.deepEqual([...ignores].filter((i) => !used.has(i)), [], 'stale entries in tests/sanity/ignore-2.14.txt');
  });

  test('ansible-doc --json of every module: options documented, examples, return values, check mode', async () => {
    for (const m of MODULES) {
      const r = await sh('ansible-doc', ['--json', `fulcrum.lb.${m}`], { env: ansibleEnv(link.path) });
      assert.equal(r.code, 0, `${m}: ${r.stderr}`);
      const doc = (JSON.parse(r.stdout) as Record<string, { doc: Record<string, unknown>; examples: string; return: Record<string, unknown> }>)[`fulcrum.lb.${m}`]!;
      const options = doc.doc.options as Record<string, { description?: unknown }>;
      for (const o of ['url', 'token', 'validate_certs', 'ca_path', 'timeout', 'restart_timeout']) assert.ok(options[o], `${m}: option ${o} (doc fragment)`);
      for (const [name, o] of Object.entries(options)) assert.ok(o.description, `${m}: option ${name} has no description`);
      assert.match(doc.examples, new RegExp(`fulcrum\\.lb\\.${m}:`), `${m}: examples use the module`);
      assert.ok(doc.return.changed, `${m}: RETURN documents changed`);
      assert.equal((doc.doc.attributes as Record<string, { support: string }>).check_mode!.support, 'full', m);
    }
  });

  test('ansible-doc of the role: its argument spec', async () => {
    const r = await sh('ansible-doc', ['-t', 'role', '--json', 'fulcrum.lb.agent'], { env: ansibleEnv(link.path) });
    assert.equal(r.code, 0, r.stderr);
    const spec = JSON.parse(r.stdout)['fulcrum.lb.agent'].entry_points.main.options as Record<string, unknown>;
    const defaults = readFileSync(join(COLLECTION_SRC, 'roles', 'agent', 'defaults', 'main.yml'), 'utf8');
    const names = [...defaults.matchAll(/^(fulcrum_\w+):/gm)].map((m) => m[1]!);
    assert.ok(names.length > 20);
    assert.deepEqual(names.filter((n) => !spec[n]), [], 'every role default is in meta/argument_specs.yml');
  });

  test('yamllint (strict) of the collection', async () => {
    const r = await sh('yamllint', ['-s', '-f', 'parsable', '.'], { cwd: COLLECTION_SRC });
    assert.equal(r.code, 0, r.stdout + r.stderr);
  });

  test('the playbooks parse (ansible-playbook --syntax-check)', async () => {
    for (const p of ['site', 'backend-maintenance', 'rolling-upgrade']) {
      const r = await sh('ansible-playbook', ['-i', 'localhost,', '--syntax-check', join(link.root, 'playbooks', `${p}.yml`)], { env: ansibleEnv(link.path) });
      assert.equal(r.code, 0, `${p}: ${r.stdout}${r.stderr}`);
    }
  });

  test('the role refuses a value outside its argument spec', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fl-role-spec-'));
    try {
      const play = join(dir, 'play.yml');
      writeFileSync(play, '- hosts: localhost\n  gather_facts: false\n  roles: [fulcrum.lb.agent]\n');
      const r = await sh('ansible-playbook', ['-i', 'localhost,', '-c', 'local', '-e', 'ansible_python_interpreter=/usr/bin/python3',
        '-e', 'fulcrum_service_manager=upstart', play], { env: ansibleEnv(link.path) });
      assert.notEqual(r.code, 0);
      assert.match(r.stdout, /value of fulcrum_service_manager must be one of: systemd, none, got: upstart/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('ansible-galaxy builds the collection and installs it offline; the installed copy works', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fl-galaxy-'));
    try {
      const b = await sh('ansible-galaxy', ['collection', 'build', COLLECTION_SRC, '--output-path', dir], { env: ansibleEnv(dir) });
      assert.equal(b.code, 0, b.stdout + b.stderr);
      const tarball = join(dir, 'fulcrum-lb-0.1.0.tar.gz');
      const listing = (await sh('tar', ['tzf', tarball])).stdout.split('\n');
      for (const f of ['meta/runtime.yml', 'plugins/module_utils/fulcrum.py', 'roles/agent/meta/argument_specs.yml', 'playbooks/site.yml'])
        assert.ok(listing.includes(f), `${f} in the built collection`);
      assert.deepEqual(listing.filter((f) => /__pycache__|\.pyc$|tests\/output/.test(f)), []);
      const into = join(dir, 'installed');
      const i = await sh('ansible-galaxy', ['collection', 'install', '--offline', '-p', into, tarball], { env: ansibleEnv(dir) });
      assert.equal(i.code, 0, i.stdout + i.stderr);
      const d = await sh('ansible-doc', ['--json', 'fulcrum.lb.backend'], { env: ansibleEnv(into) });
      assert.equal(d.code, 0, d.stderr);
      assert.ok(JSON.parse(d.stdout)['fulcrum.lb.backend'].doc.options.wait_timeout);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('the systemd unit: systemd-analyze verify; CAP_BPF only with XDP, CAP_SYS_ADMIN only when asked', async () => {
    const role = join(link.root, 'roles', 'agent');
    const dir = mkdtempSync(join(tmpdir(), 'fl-unit-'));
    try {
      const render = async (name: string, extra: Record<string, unknown>) => {
        const dest = join(dir, `${name}.service`);
        const r = await sh('ansible', ['localhost', '-c', 'local', '-e', 'ansible_python_interpreter=/usr/bin/python3', '-m', 'template',
          '-a', `src=${join(role, 'templates', 'fulcrum.service.j2')} dest=${dest}`,
          '-e', `@${join(role, 'defaults', 'main.yml')}`, '-e', `@${join(role, 'vars', 'main.yml')}`,
          '-e', JSON.stringify({ fulcrum_install_path: REPO.replace(/\/$/, ''), ...extra })], { env: ansibleEnv(link.path) });
        assert.equal(r.code, 0, r.stdout + r.stderr);
        const v = await sh('systemd-analyze', ['verify', dest]);
        assert.equal(v.code, 0, v.stderr);
        assert.equal(v.stderr.trim(), '', `systemd-analyze warnings for ${name}`);
        return readFileSync(dest, 'utf8');
      };
      const xdp = await render('fulcrum-xdp', { fulcrum_xdp: { interfaces: [{ name: 'eth0' }] } });
      assert.match(xdp, /^CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW CAP_BPF$/m);
      assert.match(xdp, /^LimitMEMLOCK=infinity$/m);
      assert.match(xdp, /^Restart=on-failure$/m);
      assert.match(xdp, /^ExecReload=\/bin\/kill -HUP \$MAINPID$/m);
      assert.match(xdp, new RegExp(`^ExecStart=/usr/bin/node ${REPO}dist/src/cli/main.js agent --config /etc/fulcrum/config.yaml$`, 'm'));
      const ipvs = await render('fulcrum-ipvs', { fulcrum_services: [{ name: 'web', address: '192.0.2.1', port: 80 }] });
      assert.match(ipvs, /^CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW$/m);
      const old = await render('fulcrum-old', { fulcrum_xdp: { interfaces: [{ name: 'eth0' }] }, fulcrum_cap_sys_admin: true });
      assert.match(old, /^AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW CAP_BPF CAP_SYS_ADMIN$/m);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
