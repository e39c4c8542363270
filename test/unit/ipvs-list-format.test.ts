import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatIpvsadmList, type ListedService } from '../../src/ipvs/list-format.js';
import type { IpvsDest, IpvsServiceKey } from '../../src/ipvs/types.js';

// Printed by ipvsadm 1.31 -Ln in the VM (Debian 6.1 kernel) for the table built below, in the
// order the commands created it (ipvsadm sorts; so must we). Note the trailing blanks.
const GOLDEN = [
  'IP Virtual Server version 1.2.1 (size=4096)',
  'Prot LocalAddress:Port Scheduler Flags',
  '  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn',
  'TCP  10.0.0.1:80 wlc',
  '  -> 10.0.1.1:8080                Masq    3      0          0         ',
  '  -> 10.0.1.2:80                  Route   0      0          0         ',
  'TCP  10.0.0.2:80 sh (sh-fallback,sh-port) persistent 60 mask 255.255.255.0',
  '  -> 10.0.1.2:80                  Tunnel  1      0          0         ',
  'UDP  10.0.0.1:53 mh (mh-port)',
  'TCP  [2001:db8::1]:80 rr persistent 100 mask 64',
  '  -> [2001:db8:1::2]:80           Masq    1      0          0         ',
  'FWM  7 rr',
  '  -> 10.0.1.3:0                   Route   1      0          0         ',
  'FWM  8 IPv6 rr',
  '',
].join('\n');

const dest = (address: string, port: number, forward: IpvsDest['forward'], weight: number): IpvsDest => ({
  address, port, forward, weight, family: address.includes(':') ? 'inet6' : 'inet',
  upperThreshold: 0, lowerThreshold: 0, activeConnections: 0, inactiveConnections: 0, persistentConnections: 0,
});
const svc = (key: IpvsServiceKey, scheduler: string, flags: number, timeout: number, netmask: number, dests: IpvsDest[]): ListedService => ({
  service: { key, scheduler, flags: flags | 0x2, timeout, netmask }, dests,
});

test('ipvsadm -Ln layout, byte for byte against real ipvsadm output (sorting, flags, masks, IPv6, FWM)', () => {
  const table: ListedService[] = [
    svc({ family: 'inet6', fwmark: 8 }, 'rr', 0, 0, 128, []),
    svc({ family: 'inet', fwmark: 7 }, 'rr', 0, 0, 0xffffffff, [dest('10.0.1.3', 0, 'route', 1)]),
    svc({ family: 'inet6', protocol: 'tcp', address: '2001:db8::1', port: 80 }, 'rr', 1, 100, 64, [dest('2001:db8:1::2', 80, 'masq', 1)]),
    svc({ family: 'inet', protocol: 'udp', address: '10.0.0.1', port: 53 }, 'mh', 0x10, 0, 0xffffffff, []),
    svc({ family: 'inet', protocol: 'tcp', address: '10.0.0.2', port: 80 }, 'sh', 0x1 | 0x8 | 0x10, 60, 0xffffff00, [dest('10.0.1.2', 80, 'tunnel', 1)]),
    svc({ family: 'inet', protocol: 'tcp', address: '10.0.0.1', port: 80 }, 'wlc', 0, 0, 0xffffffff, [dest('10.0.1.2', 80, 'route', 0), dest('10.0.1.1', 8080, 'masq', 3)]),
  ];
  assert.equal(formatIpvsadmList({ version: '1.2.1', connTableSize: 4096 }, table), GOLDEN);
});

test('an empty table still prints the header; a packed version number is decoded', () => {
  assert.equal(
    formatIpvsadmList({ version: String((1 << 16) | (2 << 8) | 1), connTableSize: 4096 }, []),
    GOLDEN.split('\n').slice(0, 3).join('\n') + '\n',
  );
});
