import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Netns, vethPair } from './netns.js';
import { PASS_OBJECT } from './xdp.js';

/** The echo tool of the XDP tests (server, tcp, hold): helpers/xdp-traffic.ts. */
export const ECHO = fileURLToPath(new URL('./xdp-traffic.js', import.meta.url));

/** Backend i's address in the lab (i = 1, 2). */
export const labBackend = (i: number) => `10.1.${i}.1`;

/** The agent's xdp section for the lab: native XDP on the LB's three ports, small tables. */
export const LAB_XDP = {
  interfaces: [{ name: 'l0', mode: 'native' }, { name: 'lb1', mode: 'native' }, { name: 'lb2', mode: 'native' }],
  maxVips: 8, maxBackends: 64, maglevTableSize: 251, conntrackSize: 4096,
};

export interface XdpAgentLab {
  client: Netns;
  lb: Netns;
  backends: Netns[];
  /** The backends' echo servers and whatever the test spawns (killed by `delete`). */
  procs: ChildProcess[];
  delete(): Promise<void>;
}

/**
 * The host-kernel lab of the agent's XDP tests: a client netns (c0 10.9.0.5) -> the LB netns (l0
 * 10.9.0.254; lb1, lb2 to the backends; forwarding on) -> two backend netns (eth0 10.1.i.1), each
 * running the echo server as `b<i>` on tcp:8080. Netns names start with `prefix`. A failed set-up
 * removes what it made.
 */
export async function createXdpAgentLab(prefix: string): Promise<XdpAgentLab> {
  if (!existsSync(PASS_OBJECT)) throw new Error(`${PASS_OBJECT} is not built`);
  const made: Netns[] = [];
  const procs: ChildProcess[] = [];
  const remove = async () => {
    for (const p of procs) if (p.exitCode === null) p.kill('SIGKILL');
    for (const ns of made) await ns.delete();
  };
  const create = async (name: string) => { const ns = await Netns.create(name); made.push(ns); return ns; };
  try {
    const client = await create(`${prefix}c`);
    const lb = await create(`${prefix}l`);
    await vethPair(client, 'c0', ['10.9.0.5/24'], lb, 'l0', ['10.9.0.254/24']);
    await client.exec('ip', ['route', 'add', 'default', 'via', '10.9.0.254']);
    // Native XDP on veth transmits only when the peer has an XDP program too.
    await client.exec('ip', ['link', 'set', 'dev', 'c0', 'xdpdrv', 'obj', PASS_OBJECT, 'sec', 'xdp']);
    // A veth hands locally sent packets over with CHECKSUM_PARTIAL, which XDP_TX/redirect loses;
    // real NICs never deliver such packets, so the test hosts checksum in software.
    await client.exec('ethtool', ['-K', 'c0', 'tx', 'off']);
    const backends: Netns[] = [];
    for (const i of [1, 2]) {
      const b = await create(`${prefix}b${i}`);
      backends.push(b);
      await vethPair(b, 'eth0', [`${labBackend(i)}/24`], lb, `lb${i}`, [`10.1.${i}.254/24`]);
      await b.exec('ip', ['route', 'add', 'default', 'via', `10.1.${i}.254`]);
      await b.exec('ip', ['link', 'set', 'dev', 'eth0', 'xdpdrv', 'obj', PASS_OBJECT, 'sec', 'xdp']);
      await b.exec('ethtool', ['-K', 'eth0', 'tx', 'off']);
      const srv = b.spawn(process.execPath, [ECHO, 'server', `b${i}`, 'tcp:8080']);
      procs.push(srv);
      await new Promise((r) => srv.stdout!.once('data', r));
    }
    await lb.exec('sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
    for (const i of [1, 2]) await lb.exec('ping', ['-c1', '-W2', labBackend(i)]);
    return { client, lb, backends, procs, delete: remove };
  } catch (e) {
    await remove();
    throw e;
  }
}
