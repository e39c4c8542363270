/**
 * src/net: Fulcrum's kernel interfaces besides libbpf (src/bpf, libbpf-ts) and the IPVS
 * generic-netlink transport (src/ipvs/netlink-transport.ts). Only these three places import
 * `netlink`, `koffi`, `@neuralegion/raw-socket` or `node:dgram`; test/unit/kernel-boundary.test.ts
 * fails on any other importer. Everything else talks to the typed interfaces of its own domain
 * (VrrpHost, VrrpTransport, NeighbourTable, ...), whose kernel implementations use this module,
 * and unit tests put fakes behind those interfaces.
 *
 * Everything acts in the network namespace of the process. What lives here:
 *   rtnetlink.ts      links, addresses, neighbours (rtnetlink through the `netlink` package)
 *   raw-ip.ts         raw IP sockets of one protocol, with their socket options
 *   socket-filter.ts  classic BPF socket filters (SO_ATTACH_FILTER) for those sockets
 *   packet.ts         a send-only AF_PACKET socket for whole Ethernet frames
 *   udp.ts            UDP datagram sockets (node:dgram)
 *   sysctl.ts         sysctls of this network namespace (/proc/sys)
 * The one libc binding is src/bpf/libc.ts (see there why it lives in src/bpf).
 */
export { Rtnetlink, type Link, type Address, type AddressSpec, type NewAddressOptions, type Neighbour, type NeighbourState } from './rtnetlink.js';
export { RawIpSocket, type RawIpOptions } from './raw-ip.js';
export { ipv6HopLimitFilter, type SocketFilter } from './socket-filter.js';
export { PacketSender } from './packet.js';
export { udpSocket, bindUdpSocket, type UdpSocket, type BoundUdpSocket } from './udp.js';
export { readSysctl, writeSysctl } from './sysctl.js';
