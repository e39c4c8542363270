import { after, before, beforeEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { openIpvsClient, type NetlinkIpvsClient } from '../../src/ipvs/client.js';
import { KernelError } from '../../src/errors.js';
import type { IpvsDestSpec, IpvsService, IpvsServiceKey, IpvsServiceSpec } from '../../src/ipvs/types.js';
import { Netns, run, uniqueName } from '../helpers/netns.js';
import { ipvsSkipReason, ipvsadm, resetIpvs } from '../helpers/ipvs-vm.js';

/**
 * The generic-netlink client against the guest's real IPVS, read back with ipvsadm (the independent
 * reference) and the other way round. Destinations sit on a dummy link so the kernel finds them routable.
 */
const skip = ipvsSkipReason();
let client: NetlinkIpvsClient;
let link = '';

before(async () => {
  if (skip) return;
  link = uniqueName('ipc');
  await run('ip', ['link', 'add', link, 'type', 'dummy']);
  await run('ip', ['addr', 'add', '10.0.1.254/24', 'dev', link]);
  await run('ip', ['addr', 'add', '10.0.0.9/32', 'dev', link]);
  await run('ip', ['-6', 'addr', 'add', '2001:db8:1::fe/64', 'dev', link, 'nodad']);
  await run('ip', ['link', 'set', link, 'up']);
  client = await openIpvsClient();
});
after(async () => {
  if (skip) return;
  await client.close();
  await resetIpvs();
  await run('ip', ['link', 'del', link], { allowFail: true });
});
beforeEach(async () => { if (!skip) await resetIpvs(); });

const tcp = (address: string, port: number): IpvsServiceKey => ({ family: address.includes(':') ? 'inet6' : 'inet', protocol: 'tcp', address, port });
const spec = (key: IpvsServiceKey, scheduler = 'wlc', more: Partial<IpvsServiceSpec> = {}): IpvsServiceSpec =>
  ({ key, scheduler, flags: 0, timeout: 0, netmask: key.family === 'inet' ? 0xffffffff : 128, ...more });
const dest = (address: string, port: number, more: Partial<IpvsDestSpec> = {}): IpvsDestSpec =>
  ({ address, port, family: address.includes(':') ? 'inet6' : 'inet', forward: 'masq', weight: 1, upperThreshold: 0, lowerThreshold: 0, ...more });
/** ipvsadm -Ln without its 3 header lines, trailing blanks trimmed. */
async function table(...extra: string[]): Promise<string[]> {
  return (await ipvsadm('-Ln', ...extra)).split('\n').slice(3).map((l) => l.trimEnd()).filter(Boolean);
}

test('add services (IPv4, IPv6, fwmark, SCTP, persistence, scheduler flags) and destinations; ipvsadm reads back the same', { skip }, async () => {
  const web = tcp('10.0.0.1', 80);
  await client.addService(spec(web, 'rr'));
  await client.addService(spec(tcp('10.0.0.2', 443), 'sh', { flags: 0x1 | 0x8 | 0x10, timeout: 300, netmask: 0xffffff00 }));
  await client.addService(spec(tcp('2001:db8::1', 80), 'wrr', { flags: 0x1, timeout: 600, netmask: 64 }));
  await client.addService(spec({ family: 'inet', fwmark: 42 }, 'mh', { flags: 0x10 }));
  await client.addService(spec({ family: 'inet6', fwmark: 43 }, 'lc'));
  await client.addService(spec({ family: 'inet', protocol: 'sctp', address: '10.0.0.3', port: 9000 }, 'rr'));
  await client.addService(spec({ family: 'inet', protocol: 'udp', address: '10.0.0.4', port: 53 }, 'rr', { flags: 0x4 }));
  await client.addDestination(web, dest('10.0.1.1', 8080, { weight: 3 }));
  await client.addDestination(web, dest('10.0.1.2', 8080, { forward: 'masq', weight: 0 }));
  await client.addDestination(tcp('10.0.0.2', 443), dest('10.0.1.3', 443, { forward: 'route' }));
  await client.addDestination(tcp('2001:db8::1', 80), dest('2001:db8:1::1', 8080, { weight: 5 }));
  await client.addDestination({ family: 'inet', fwmark: 42 }, dest('10.0.1.4', 0, { forward: 'tunnel', tunnelType: 'gue', tunnelPort: 6080, tunnelFlags: 1 }));

  assert.deepEqual((await table()).sort(), [
    'FWM  42 mh (mh-port)',
    'FWM  43 IPv6 lc',
    'SCTP 10.0.0.3:9000 rr',
    'TCP  10.0.0.1:80 rr',
    'TCP  10.0.0.2:443 sh (sh-fallback,sh-port) persistent 300 mask 255.255.255.0',
    'TCP  [2001:db8::1]:80 wrr persistent 600 mask 64',
    'UDP  10.0.0.4:53 rr ops',
    '  -> 10.0.1.1:8080                Masq    3      0          0',
    '  -> 10.0.1.2:8080                Masq    0      0          0',
    '  -> 10.0.1.3:443                 Route   1      0          0',
    '  -> 10.0.1.4:0                   Tunnel  1      0          0',
    '  -> [2001:db8:1::1]:8080         Masq    5      0          0',
  ].sort());
  assert.match((await ipvsadm('-Ln', '--tun-info')), /-> 10\.0\.1\.4:0 +Tunnel +gue:6080:\+c +1 /);

  // And our own dump agrees with what we programmed.
  const services = await client.listServices();
  assert.equal(services.length, 7);
  const sh = services.find((s) => s.key.address === '10.0.0.2');
  assert.deepEqual(sh && { scheduler: sh.scheduler, flags: sh.flags, timeout: sh.timeout, netmask: sh.netmask }, { scheduler: 'sh', flags: 0x19, timeout: 300, netmask: 0xffffff00 });
  const v6 = services.find((s) => s.key.family === 'inet6' && s.key.fwmark === undefined);
  assert.deepEqual(v6?.netmask, 64);
  const dests = await client.listDestinations(web);
  assert.deepEqual(dests.map((d) => [d.address, d.port, d.forward, d.weight]).sort(), [['10.0.1.1', 8080, 'masq', 3], ['10.0.1.2', 8080, 'masq', 0]]);
  const tun = await client.listDestinations({ family: 'inet', fwmark: 42 });
  assert.deepEqual(tun.map((d) => [d.forward, d.tunnelType, d.tunnelPort, d.tunnelFlags]), [['tunnel', 'gue', 6080, 1]]);
  assert.deepEqual(await client.getService(web), services.find((s) => s.key.address === '10.0.0.1'));
});

test('edit and delete services and destinations; ipvsadm follows', { skip }, async () => {
  const web = tcp('10.0.0.1', 80);
  await client.addService(spec(web, 'rr'));
  await client.addDestination(web, dest('10.0.1.1', 8080));
  await client.addDestination(web, dest('10.0.1.2', 8080));
  await client.editService(spec(web, 'wlc', { flags: 0x1, timeout: 120, netmask: 0xffff0000 }));
  await client.editDestination(web, dest('10.0.1.1', 8080, { weight: 7, upperThreshold: 100, lowerThreshold: 10 }));
  assert.equal((await table())[0], 'TCP  10.0.0.1:80 wlc persistent 120 mask 255.255.0.0');
  assert.match((await table()).join('\n'), /-> 10\.0\.1\.1:8080 +Masq +7/);
  assert.match(await ipvsadm('-Ln', '--thresholds'), /-> 10\.0\.1\.1:8080 +100 +10/);
  await client.deleteDestination(web, { address: '10.0.1.2', port: 8080, family: 'inet' });
  assert.deepEqual((await client.listDestinations(web)).map((d) => d.address), ['10.0.1.1']);
  assert.doesNotMatch(await ipvsadm('-Ln'), /10\.0\.1\.2/);
  await client.deleteService(web);
  assert.deepEqual(await table(), []);
  assert.deepEqual(await client.listServices(), []);
  assert.equal(await client.getService(web), undefined);
});

test('the client reads back what ipvsadm programmed', { skip }, async () => {
  await ipvsadm('-A', '-u', '[2001:db8::2]:53', '-s', 'sed');
  await ipvsadm('-a', '-u', '[2001:db8::2]:53', '-r', '[2001:db8:1::9]:5353', '-m', '-w', '4', '-x', '50', '-y', '5');
  await ipvsadm('-A', '-f', '7', '-s', 'dh', '-p', '60');
  await ipvsadm('-a', '-f', '7', '-r', '10.0.1.8', '-g', '-w', '2');
  const services = await client.listServices();
  const byMark = services.find((s) => s.key.fwmark === 7);
  assert.deepEqual(byMark && [byMark.key, byMark.scheduler, byMark.flags, byMark.timeout, byMark.netmask], [{ family: 'inet', fwmark: 7 }, 'dh', 0x1, 60, 0xffffffff]);
  const dns = services.find((s) => s.key.family === 'inet6');
  assert.deepEqual(dns?.key, { family: 'inet6', protocol: 'udp', address: '2001:db8::2', port: 53 });
  assert.equal(dns?.scheduler, 'sed');
  const [d6] = await client.listDestinations(dns!.key);
  assert.deepEqual(d6 && [d6.address, d6.port, d6.family, d6.forward, d6.weight, d6.upperThreshold, d6.lowerThreshold], ['2001:db8:1::9', 5353, 'inet6', 'masq', 4, 50, 5]);
  const [dr] = await client.listDestinations({ family: 'inet', fwmark: 7 });
  assert.deepEqual(dr && [dr.address, dr.forward, dr.weight], ['10.0.1.8', 'route', 2]);
});

test('stats are 64-bit counters equal to ipvsadm --stats --exact; zero clears them', { skip }, async () => {
  // A client namespace behind a veth sends UDP to a VIP of this host: IPVS schedules it at LOCAL_IN.
  const key: IpvsServiceKey = { family: 'inet', protocol: 'udp', address: '10.0.0.9', port: 5000 };
  await client.addService(spec(key, 'rr'));
  await client.addDestination(key, dest('10.0.1.1', 5001));
  const ns = await Netns.create('ipcl');
  const [va, vb] = [uniqueName('ipa'), uniqueName('ipb')];
  try {
    await run('ip', ['link', 'add', va, 'type', 'veth', 'peer', 'name', vb]);
    await run('ip', ['link', 'set', vb, 'netns', ns.name]);
    await run('ip', ['addr', 'add', '10.0.3.1/24', 'dev', va]);
    await run('ip', ['link', 'set', va, 'up']);
    await ns.exec('ip', ['addr', 'add', '10.0.3.2/24', 'dev', vb]);
    await ns.exec('ip', ['link', 'set', vb, 'up']);
    await ns.exec('ip', ['route', 'add', 'default', 'via', '10.0.3.1']);
    await ns.exec('bash', ['-c', 'for i in 1 2 3 4 5; do echo hello > /dev/udp/10.0.0.9/5000; done']);
  } finally {
    await ns.delete();
    await run('ip', ['link', 'del', va], { allowFail: true });
  }
  // The kernel folds per-CPU counters into the totals it reports from its estimator, every 2 s:
  // wait (bounded) until the packets show and two reads agree.
  let svc: IpvsService | undefined;
  for (let i = 0, prev = ''; i < 40; i++) {
    [svc] = await client.listServices();
    const now = String(svc?.stats?.packetsIn);
    if ((svc?.stats?.packetsIn ?? 0n) >= 5n && now === prev) break;
    prev = now;
    await new Promise((r) => setTimeout(r, 500));
  }
  assert.ok(svc?.stats, 'service stats');
  assert.equal(typeof svc.stats.packetsIn, 'bigint');
  assert.ok(svc.stats.connections >= 1n && svc.stats.packetsIn >= 5n, `counters moved: ${svc.stats.connections} conns ${svc.stats.packetsIn} pkts`);
  // ipvsadm --stats --exact: Conns InPkts OutPkts InBytes OutBytes.
  const line = (await table('--stats', '--exact')).find((l) => l.startsWith('UDP'));
  const [, , conns, inpkts, outpkts, inbytes, outbytes] = (line ?? '').split(/\s+/);
  assert.deepEqual([svc.stats.connections, svc.stats.packetsIn, svc.stats.packetsOut, svc.stats.bytesIn, svc.stats.bytesOut].map(String), [conns, inpkts, outpkts, inbytes, outbytes]);
  const [d] = await client.listDestinations(key);
  assert.equal(d?.stats?.packetsIn, svc.stats.packetsIn);
  const [lean] = await client.listDestinations(key, { stats: false });
  assert.deepEqual(lean && { ...lean, stats: d.stats }, d);
  assert.equal(lean?.stats, undefined);
  await client.zero(key);
  const [after0] = await client.listServices();
  assert.equal(after0?.stats?.packetsIn, 0n);
  assert.equal(after0?.stats?.connections, 0n);
});

test('timeouts: set and get round-trip against ipvsadm -L --timeout', { skip }, async () => {
  const before0 = await client.getTimeouts();
  try {
    await client.setTimeouts({ tcp: 1000, tcpFin: 60, udp: 200 });
    assert.match(await ipvsadm('-L', '--timeout'), /Timeout \(tcp tcpfin udp\): 1000 60 200/);
    await ipvsadm('--set', '700', '30', '100');
    assert.deepEqual(await client.getTimeouts(), { tcp: 700, tcpFin: 30, udp: 100 });
  } finally {
    await client.setTimeouts(before0);
  }
});

test('sync daemon: start, read back (ours and ipvsadm --daemon), refuse a second, stop', { skip }, async () => {
  await client.startDaemon({ state: 'master', interface: 'lo', syncId: 7, maxLength: 1400, port: 8850, ttl: 2, group: '224.0.0.82' });
  assert.match(await ipvsadm('-L', '--daemon'), /master sync daemon \(mcast=lo, syncid=7, maxlen=1400, group=224\.0\.0\.82, port=8850, ttl=2\)/);
  assert.deepEqual(await client.listDaemons(), [{ state: 'master', interface: 'lo', syncId: 7, maxLength: 1400, port: 8850, ttl: 2, group: '224.0.0.82' }]);
  await assert.rejects(client.startDaemon({ state: 'master', interface: 'lo', syncId: 8 }), (e: unknown) => e instanceof KernelError && e.errnoName === 'EEXIST');
  await client.stopDaemon({ state: 'master' });
  assert.deepEqual(await client.listDaemons(), []);
  assert.doesNotMatch(await ipvsadm('-L', '--daemon'), /master/);
});

test('kernel errors carry errno and say what went wrong', { skip }, async () => {
  const web = tcp('10.0.0.1', 80);
  const errnoOf = async (p: Promise<unknown>, name: string, text: RegExp): Promise<void> => {
    await assert.rejects(p, (e: unknown) => {
      assert.ok(e instanceof KernelError, String(e));
      assert.equal(e.errnoName, name);
      assert.equal(e.code, 'KERNEL_ERROR');
      assert.match(e.message, text);
      return true;
    });
  };
  await client.addService(spec(web, 'rr'));
  await errnoOf(client.addService(spec(web, 'rr')), 'EEXIST', /add service tcp 10\.0\.0\.1:80: EEXIST \(service already exists\)/);
  await errnoOf(client.addService(spec(tcp('10.0.0.1', 81), 'nosuchsched')), 'ENOENT', /scheduler "nosuchsched" not available/);
  await errnoOf(client.editService(spec(tcp('10.0.0.7', 80), 'rr')), 'ESRCH', /no such service/);
  await errnoOf(client.addDestination(tcp('10.0.0.7', 80), dest('10.0.1.1', 80)), 'ESRCH', /no such service/);
  await client.addDestination(web, dest('10.0.1.1', 80));
  await errnoOf(client.addDestination(web, dest('10.0.1.1', 80)), 'EEXIST', /destination already exists/);
  await errnoOf(client.deleteDestination(web, { address: '10.0.1.99', port: 80, family: 'inet' }), 'ENOENT', /no such destination/);
  await errnoOf(client.stopDaemon({ state: 'backup' }), 'ESRCH', /no sync daemon/);
  // Nothing half-applied: the table holds exactly what succeeded.
  assert.deepEqual(await table(), ['TCP  10.0.0.1:80 rr', '  -> 10.0.1.1:80                  Masq    1      0          0']);
});

test('pipelining: thousands of concurrent requests all land; batch() reports each outcome', { skip }, async () => {
  const keys = Array.from({ length: 20 }, (_, i) => tcp(`10.0.2.${i + 1}`, 80));
  await Promise.all(keys.map((k) => client.addService(spec(k, 'rr'))));
  const adds = keys.flatMap((k) => Array.from({ length: 100 }, (_, j) => client.addDestination(k, dest(`10.0.1.${1 + (j % 50)}`, 1000 + Math.floor(j / 50)))));
  await Promise.all(adds);
  const lines = await table();
  assert.equal(lines.filter((l) => l.startsWith('TCP')).length, 20);
  assert.equal(lines.filter((l) => l.includes('->')).length, 2000);
  const counts = await Promise.all(keys.map((k) => client.listDestinations(k).then((d) => d.length)));
  assert.deepEqual(counts, keys.map(() => 100));
  // A batch with a duplicate in the middle: the others still apply, the duplicate reports EEXIST.
  const results = await client.batch([
    { op: 'addDestination', key: keys[0]!, dest: dest('10.0.1.200', 1) },
    { op: 'addDestination', key: keys[0]!, dest: dest('10.0.1.1', 1000) },
    { op: 'deleteService', key: keys[1]! },
    { op: 'editDestination', key: keys[2]!, dest: dest('10.0.1.1', 1000, { weight: 9 }) },
  ]);
  assert.deepEqual(results.map((r) => r.ok), [true, false, true, true]);
  const failed = results[1];
  assert.ok(failed && !failed.ok && failed.error.errno === 17);
  const after1 = await table();
  assert.equal(after1.filter((l) => l.startsWith('TCP')).length, 19);
  assert.ok(after1.some((l) => /10\.0\.1\.200:1 +Masq/.test(l)));
});
