/**
 * Run inside a netns (ip netns exec) by test/kernel/vrrp-transport.test.ts:
 *   recv IFNAME inet|inet6 MS          prints each received packet as a JSON line for MS ms
 *   send IFNAME inet|inet6 TTL SRC     sends one VRRPv3 advert (vrid = TTL) with that TTL / hop limit
 */
import { createRequire } from 'node:module';
import { rawTransportFactory } from '../../src/vrrp/transport.js';
import { encodeAdvert, encodeIpv4 } from '../../src/vrrp/codec.js';
import { KernelHost } from '../../src/vrrp/kernel.js';

const [mode, ifname, family, arg, src] = process.argv.slice(2) as [string, string, 'inet' | 'inet6', string, string | undefined];
const host = KernelHost.create();
const link = (await host.links()).find((l) => l.name === ifname);
if (!link) throw new Error(`no ${ifname}`);
if (mode === 'recv') {
  const t = rawTransportFactory({ ifname, ifindex: link.index, family, source: '::', unicast: false });
  t.onPacket((p) => process.stdout.write(`${JSON.stringify({ src: p.src, dst: p.dst, ttl: p.ttl, vrid: p.payload[1] })}\n`));
  process.stdout.write('ready\n');
  setTimeout(() => { t.close(); host.close(); }, Number(arg));
} else {
  const ttl = Number(arg);
  const dst = family === 'inet' ? '224.0.0.18' : 'ff02::12';
  const payload = encodeAdvert({ version: 3, vrid: ttl, priority: 100, interval: 100, family, addresses: [family === 'inet' ? '10.0.0.100' : '2001:db8::100'] }, { src: src!, dst });
  const raw = createRequire(import.meta.url)('@neuralegion/raw-socket');
  const sock = raw.createSocket({ protocol: 112, addressFamily: family === 'inet' ? raw.AddressFamily.IPv4 : raw.AddressFamily.IPv6 });
  const name = Buffer.alloc(16); name.write(ifname);
  sock.setOption(1, 25, name, 16);
  let pkt = payload;
  if (family === 'inet') {
    sock.setOption(0, 3, 1); // IP_HDRINCL
    pkt = encodeIpv4(src!, dst, payload);
    pkt[8] = ttl;
  } else {
    sock.setOption(41, 18, ttl); // IPV6_MULTICAST_HOPS
    sock.setOption(41, 17, link.index); // IPV6_MULTICAST_IF
  }
  sock.send(pkt, 0, pkt.length, family === 'inet' ? dst : `${dst}%${ifname}`, (err: Error | null) => {
    if (err) { console.error(err); process.exitCode = 1; }
    sock.close();
    host.close();
  });
}
