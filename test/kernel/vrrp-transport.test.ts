import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Netns, netnsSkipReason, vethPair } from '../helpers/netns.js';
import { repoRoot, waitFor } from '../helpers/vrrp-peers.js';

/**
 * The raw-socket transport on the host kernel: IPv4 adverts arrive with their TTL (the manager
 * drops TTL != 255 with a counted reason); IPv6 adverts with a hop limit other than 255 never
 * reach us (the socket's BPF filter drops them, RFC 5798 §7.1).
 */
const probe = join(repoRoot, 'dist', 'test', 'helpers', 'vrrp-transport-probe.js');

test('vrrp transport: TTL / hop limit of received adverts (IPv4 reported, IPv6 filtered to 255)', { skip: netnsSkipReason() }, async (t) => {
  const a = await Netns.create('flta');
  const b = await Netns.create('fltb');
  t.after(async () => { await a.delete(); await b.delete(); });
  await vethPair(a, 'eth0', ['10.66.0.1/24', '2001:db8:66::1/64'], b, 'eth0', ['10.66.0.2/24', '2001:db8:66::2/64']);
  await new Promise((r) => setTimeout(r, 2000)); // link-local addresses leave DAD
  for (const family of ['inet', 'inet6'] as const) {
    const recv = b.spawn(process.execPath, [probe, 'recv', 'eth0', family, '4000']);
    let out = '';
    recv.stdout?.on('data', (d: Buffer) => { out += d.toString(); });
    await waitFor('receiver ready', () => out.includes('ready'), 5000);
    const src = family === 'inet' ? '10.66.0.1' : (await a.exec('ip', ['-6', '-o', 'addr', 'show', 'dev', 'eth0', 'scope', 'link'])).stdout.match(/inet6 (\S+)\//)![1]!;
    for (const ttl of [255, 254, 1]) await a.exec(process.execPath, [probe, 'send', 'eth0', family, String(ttl), src]);
    await new Promise<void>((r) => recv.once('exit', () => r()));
    const got = out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { src: string; ttl?: number; vrid: number });
    if (family === 'inet') {
      assert.deepEqual(got.map((g) => [g.vrid, g.ttl]), [[255, 255], [254, 254], [1, 1]], 'IPv4: every advert, with its TTL for the manager to check');
      assert.equal(got[0]!.src, '10.66.0.1');
    } else {
      assert.deepEqual(got.map((g) => g.vrid), [255], 'IPv6: only the hop-limit-255 advert passes the filter');
      assert.equal(got[0]!.src, src);
    }
  }
});
