import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensurePinDir, ensurePinPath, isBpffs, loadObject, mountBpffs, openPinnedMap, openPinnedProgram, unpin, XdpAction } from '../../src/bpf/index.js';
import { FeatureMissingError, KernelError } from '../../src/errors.js';
import { run, uniqueName } from '../helpers/netns.js';
import { bpfSkipReason, bpftool, objectPath, u32, u64 } from '../helpers/bpf.js';

const skip = bpfSkipReason('test_pin');
const OBJ = objectPath('test_pin');

test('bpffs: mount is explicit and idempotent; a non-bpffs pin root is a FeatureMissingError', { skip }, () => {
  assert.deepEqual(mountBpffs('/sys/fs/bpf'), { mounted: false }, 'already mounted here');
  assert.equal(isBpffs('/sys/fs/bpf'), true);
  assert.equal(isBpffs('/tmp'), false);
  assert.throws(() => ensurePinDir('/tmp', 'x'), (e: unknown) => e instanceof FeatureMissingError && e.feature === 'bpffs');
  assert.throws(() => ensurePinPath('/tmp/fl-not-bpffs/a/b'), (e: unknown) => e instanceof FeatureMissingError && e.feature === 'bpffs');
  assert.throws(() => loadObject(OBJ, { pinRoot: '/tmp/fl-not-bpffs' }), (e: unknown) => e instanceof FeatureMissingError && /not on a mounted bpf filesystem/.test(e.message));
  const nested = `/sys/fs/bpf/${uniqueName('fltestlb')}/a/b`;
  try {
    assert.equal(ensurePinPath(nested), nested);
    assert.ok(existsSync(nested));
  } finally {
    unpin(nested.replace(/\/a\/b$/, ''));
  }
});

test('mountBpffs mounts a bpf filesystem where there is none (then unmounted)', { skip }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'fl-bpffs-'));
  try {
    assert.equal(isBpffs(dir), false);
    assert.deepEqual(mountBpffs(dir), { mounted: true });
    try {
      assert.equal(isBpffs(dir), true);
      assert.deepEqual(mountBpffs(dir), { mounted: false });
      const m = (await run('findmnt', ['-n', '-o', 'FSTYPE', dir])).stdout.trim();
      assert.equal(m, 'bpf', 'findmnt sees a bpf mount');
    } finally {
      await run('umount', [dir]);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('LIBBPF_PIN_BY_NAME: a reload reuses the pinned map and its contents', { skip }, async () => {
  const dir = ensurePinDir('/sys/fs/bpf', uniqueName('fltestlb'));
  try {
    const a = loadObject(OBJ, { pinRoot: dir });
    try {
      assert.equal(a.program('xdp_bump').testRun({ data: Buffer.alloc(64), repeat: 5 }).retval, XdpAction.PASS);
    } finally {
      a.close();
    }
    assert.ok(existsSync(`${dir}/persist`));
    const shown = (await bpftool(['map', 'show', 'pinned', `${dir}/persist`])) as { name: string; type: string };
    assert.deepEqual([shown.name, shown.type], ['persist', 'array']);
    // The map outlived its object; a new load picks it up, count continues.
    const b = loadObject(OBJ, { pinRoot: dir });
    try {
      b.program('xdp_bump').testRun({ data: Buffer.alloc(64), repeat: 2 });
      assert.deepEqual(b.map('persist').lookup(u32(0)), u64(7));
    } finally {
      b.close();
    }
    // And an independent reopen by path sees the same.
    const m = openPinnedMap(`${dir}/persist`);
    try {
      assert.equal(m.info.name, 'persist');
      assert.deepEqual(m.lookup(u32(0)), u64(7));
    } finally {
      m.close();
      m.close();
    }
  } finally {
    unpin(dir);
  }
  assert.equal(existsSync(dir), false);
});

test('explicit pins: map and program pinned, reopened by path, reused by a new object', { skip }, async () => {
  const dir = ensurePinDir('/sys/fs/bpf', uniqueName('fltestlb'));
  try {
    const a = loadObject(OBJ, { pinRoot: dir });
    try {
      a.map('plain').update(u32(1), u64(11));
      a.pinMap('plain', `${dir}/plain`);
      a.pinProgram('xdp_bump', `${dir}/bump`);
      assert.throws(() => a.pinProgram('xdp_bump', `${dir}/plain`), (e: unknown) => e instanceof KernelError && e.errno === 17, 'the path is taken');
    } finally {
      a.close();
    }
    const prog = openPinnedProgram(`${dir}/bump`);
    try {
      assert.equal(prog.info.name, 'xdp_bump');
      assert.equal(prog.testRun({ data: Buffer.alloc(64) }).retval, XdpAction.PASS);
      const shown = (await bpftool(['prog', 'show', 'pinned', `${dir}/bump`])) as { id: number };
      assert.equal(shown.id, prog.id);
    } finally {
      prog.close();
    }
    const plain = openPinnedMap(`${dir}/plain`);
    try {
      const b = loadObject(OBJ, { pinRoot: dir, reuseMaps: { plain } });
      try {
        assert.equal(b.map('plain').info.id, plain.info.id, 'the new object uses the pinned map');
        assert.deepEqual(b.map('plain').lookup(u32(1)), u64(11));
      } finally {
        b.close();
      }
    } finally {
      plain.close();
    }
    assert.throws(() => openPinnedMap(`${dir}/bump`), /bump is pinned prog, not a map/);
    assert.throws(() => openPinnedProgram(`${dir}/plain`), /plain is pinned map, not a prog/);
    assert.throws(() => openPinnedMap(`${dir}/none`), (e: unknown) => e instanceof KernelError && e.errno === 2);
  } finally {
    unpin(dir);
  }
});
