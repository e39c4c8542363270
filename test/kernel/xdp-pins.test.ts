import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, rmSync } from 'node:fs';
import { withNetnsSync, queryXdp } from '../../src/bpf/index.js';
import { XdpSettingsSchema } from '../../src/model/xdp.js';
import { FulcrumError } from '../../src/errors.js';
import { openXdpKernel, forceCleanupXdp } from '../../src/xdp/kernel.js';
import { Netns, run } from '../helpers/netns.js';
import { xdpSkipReason, testDirs, SMALL, PASS_OBJECT } from '../helpers/xdp.js';

/** Attach/pin life cycle edge cases: a foreign program, pins of another version, forced cleanup. */

const skip = xdpSkipReason();
let ns: Netns;
let dirs: { pinDir: string; stateDir: string };
const settings = XdpSettingsSchema.parse({ ...SMALL, interfaces: [{ name: 'd0' }] });

before(async () => {
  if (skip) return;
  dirs = testDirs();
  ns = await Netns.create('flpin');
  for (const d of ['d0', 'd1']) {
    await ns.exec('ip', ['link', 'add', d, 'type', 'veth', 'peer', 'name', `${d}p`]);
    await ns.exec('ip', ['link', 'set', d, 'up']);
    await ns.exec('ip', ['link', 'set', `${d}p`, 'up']);
  }
  await ns.exec('ip', ['link', 'set', 'dev', 'd1', 'xdpdrv', 'obj', PASS_OBJECT, 'sec', 'xdp']);
});

after(async () => {
  if (skip) return;
  await ns?.delete();
  await run('rm', ['-rf', dirs.pinDir], { allowFail: true });
  rmSync(dirs.stateDir, { recursive: true, force: true });
});

test('an interface running someone else\'s XDP program is a CONFLICT naming it, and is left alone', { skip }, () => {
  const k = withNetnsSync(ns.name, () => openXdpKernel({ settings, pinDir: dirs.pinDir }));
  try {
    const foreign = withNetnsSync(ns.name, () => queryXdp('d1').nativeProgId);
    assert.ok(foreign > 0);
    assert.throws(() => withNetnsSync(ns.name, () => k.attach([{ name: 'd1', mode: 'native' }])),
      (e: unknown) => e instanceof FulcrumError && e.code === 'CONFLICT' && /d1 already runs XDP program id/.test(e.message));
    assert.equal(withNetnsSync(ns.name, () => queryXdp('d1').nativeProgId), foreign, 'the foreign program is still attached');
    assert.deepEqual(withNetnsSync(ns.name, () => k.attach(settings.interfaces)), [{ name: 'd0', action: 'attached' }]);
    assert.deepEqual(withNetnsSync(ns.name, () => k.attach(settings.interfaces)), [{ name: 'd0', action: 'kept' }]);
  } finally {
    k.close();
  }
});

test('pins of another version are refused with a CONFLICT; forceCleanupXdp detaches and unpins them', { skip }, () => {
  // Drop one map pin: what an older build without that map would have left.
  rmSync(`${dirs.pinDir}/filter`);
  assert.throws(() => openXdpKernel({ settings, pinDir: dirs.pinDir }), /another Fulcrum XDP version/);
  assert.ok(withNetnsSync(ns.name, () => queryXdp('d0').nativeProgId) > 0, 'still attached and forwarding');
  withNetnsSync(ns.name, () => forceCleanupXdp(dirs.pinDir, [...settings.interfaces, { name: 'd1', mode: 'native' }]));
  assert.equal(withNetnsSync(ns.name, () => queryXdp('d0').nativeProgId), 0, 'detached');
  assert.ok(withNetnsSync(ns.name, () => queryXdp('d1').nativeProgId) > 0, 'the foreign program is untouched');
  assert.equal(existsSync(dirs.pinDir), false);
});

test('generic (skb) mode attaches and detaches the same pinned program', { skip }, () => {
  const generic = XdpSettingsSchema.parse({ ...SMALL, interfaces: [{ name: 'd0', mode: 'generic' }] });
  const k = withNetnsSync(ns.name, () => openXdpKernel({ settings: generic, pinDir: dirs.pinDir }));
  try {
    assert.deepEqual(withNetnsSync(ns.name, () => k.attach(generic.interfaces)), [{ name: 'd0', action: 'attached' }]);
    const q = withNetnsSync(ns.name, () => queryXdp('d0'));
    assert.equal(q.genericProgId, k.program.id);
    assert.equal(q.attachMode, 'generic');
    withNetnsSync(ns.name, () => k.destroy(generic.interfaces));
    assert.equal(withNetnsSync(ns.name, () => queryXdp('d0').genericProgId), 0);
    assert.equal(existsSync(dirs.pinDir), false);
  } finally {
    k.close();
  }
});
