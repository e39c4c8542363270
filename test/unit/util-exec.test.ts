import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execProgram } from '../../src/util/exec.js';

/** Gone, or a zombie waiting for its reaper: either way no longer running. */
function running(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

test('exec: exit code, signal and spawn error; arguments reach the program verbatim (no shell)', async () => {
  assert.deepEqual(await execProgram('sh', ['-c', 'echo "$1"; echo err >&2; exit 3', 'sh', '$(id)'], { outputLimit: 100 }), { end: 'exit', code: 3, stdout: '$(id)\n', stderr: 'err\n' });
  assert.deepEqual(await execProgram('sh', ['-c', 'echo hi'], { outputLimit: 1 }), { end: 'exit', code: 0, stdout: 'h', stderr: '' }, 'output is bounded');
  assert.deepEqual(await execProgram('sh', ['-c', 'echo hi']), { end: 'exit', code: 0, stdout: '', stderr: '' }, 'no output kept by default');
  assert.deepEqual(await execProgram('sh', ['-c', 'kill -TERM $$']), { end: 'signal', signal: 'SIGTERM', stdout: '', stderr: '' });
  const r = await execProgram('/nonexistent/program', []);
  assert.equal(r.end, 'spawn-error');
  assert.equal(r.end === 'spawn-error' && r.error.code, 'ENOENT');
});

test('exec: an abort kills the whole process group, grandchildren included', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'fl-exec-'));
  const pidFile = join(dir, 'pid');
  try {
    const t0 = Date.now();
    const r = await execProgram('sh', ['-c', `sleep 60 & echo $! > ${pidFile}; wait`], { signal: AbortSignal.timeout(300) });
    assert.deepEqual(r, { end: 'aborted' });
    assert.ok(Date.now() - t0 < 5000);
    const grandchild = Number(readFileSync(pidFile, 'utf8'));
    for (let i = 0; i < 50 && running(grandchild); i++) await new Promise((res) => setTimeout(res, 20));
    assert.equal(running(grandchild), false, 'the backgrounded sleep went with its parent');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
