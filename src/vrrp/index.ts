// The public face of VRRP: the agent and the CLI use the manager, its options and its status.
export { VrrpManager, type VrrpInstanceStatus, type VrrpManagerOptions } from './manager.js';
export type { VrrpState } from './machine.js';
export type { TransportFactory, VrrpTransport } from './transport.js';
export type { VrrpHost } from './kernel.js';
