import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ipvsSkipReason, ipvsadm, resetIpvs } from '../helpers/ipvs-vm.js';

const skip = ipvsSkipReason();

test('the guest kernel has IPVS and ipvsadm can program it', { skip }, async () => {
  const table = readFileSync('/proc/net/ip_vs', 'utf8');
  assert.match(table, /^IP Virtual Server version \d+\.\d+\.\d+/);
  await resetIpvs();
  try {
    // An on-demand scheduler load (ip_vs_sh) proves the guest's modprobe helper works.
    await ipvsadm('-A', '-t', '192.0.2.1:80', '-s', 'sh');
    const out = await ipvsadm('-Ln');
    assert.match(out, /TCP {2}192\.0\.2\.1:80 sh/);
    assert.match(readFileSync('/proc/net/ip_vs', 'utf8'), /TCP {2}C0000201:0050 sh/);
  } finally {
    await resetIpvs();
  }
});
