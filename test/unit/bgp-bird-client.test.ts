import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BirdSocketClient } from '../../src/bgp/bird-client.js';

/** Replies recorded from BIRD 2.0.12's control socket on this machine. */
const REPLIES: Record<string, string> = {
  'show protocols': [
    '2002-Name       Proto      Table      State  Since         Info',
    '1002-fulcrum_device Device     ---        up     05:45:24.957  ',
    ' fulcrum_vips4 Static     master4    up     05:45:24.957  ',
    ' fulcrum_n_10_99_0_1 BGP        ---        up     2026-12-02 05:45:24  Established   ',
    ' fulcrum_n_10_99_0_2 BGP        ---        start  05:45:24.957  Active        Socket: Connection refused',
    '0000 ',
  ].join('\n'),
  'show route export fulcrum_n_10_99_0_1': ['1007-Table master4:', ' 10.98.0.1/32         blackhole [fulcrum_vips4 05:45:24.957] * (200)', ' 10.98.0.2/32         blackhole [fulcrum_vips4 05:45:24.957] * (200)', '0000 '].join('\n'),
  'show route export fulcrum_n_10_99_0_2': '9001 No valid tables',
  'show bfd sessions': ['1020-fulcrum_bfd:', ' IP address                Interface  State      Since         Interval  Timeout', ' 10.99.0.1                 eth0       Up         05:45:25.001    0.100    0.300', '0000 '].join('\n'),
  'configure check': ['0002-Reading configuration from /etc/bird/bird.conf', '8002 /etc/bird/fulcrum.conf:3:1 syntax error, unexpected CF_SYM_UNDEFINED'].join('\n'),
  configure: ['0002-Reading configuration from /etc/bird/bird.conf', '0003 Reconfigured'].join('\n'),
};

async function fakeBird(): Promise<{ path: string; server: Server; dir: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'bgp-sock-'));
  const path = join(dir, 'bird.ctl');
  const server = createServer((s) => {
    s.write('0001 BIRD 2.0.12 ready.\n');
    let buf = '';
    s.on('data', (d) => {
      buf += d.toString();
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      const cmd = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      s.write(`${REPLIES[cmd] ?? '9001 syntax error'}\n`);
    });
  });
  await new Promise<void>((r) => server.listen(path, r));
  return { path, server, dir };
}

test('BIRD control socket: protocols, exports, BFD sessions, a refused check and a configure', async () => {
  const { path, server, dir } = await fakeBird();
  try {
    const c = new BirdSocketClient(path);
    const protocols = await c.showProtocols();
    assert.deepEqual(protocols.map((p) => [p.name, p.state, p.since, p.info]), [
      ['fulcrum_device', 'up', '05:45:24.957', ''],
      ['fulcrum_vips4', 'up', '05:45:24.957', ''],
      ['fulcrum_n_10_99_0_1', 'up', '2026-12-02 05:45:24', 'Established'],
      ['fulcrum_n_10_99_0_2', 'start', '05:45:24.957', 'Active Socket: Connection refused'],
    ]);
    assert.deepEqual(await c.showRouteExport('fulcrum_n_10_99_0_1'), ['10.98.0.1/32', '10.98.0.2/32']);
    assert.deepEqual(await c.showRouteExport('fulcrum_n_10_99_0_2'), []);
    assert.deepEqual(await c.showBfdSessions(), [{ address: '10.99.0.1', interface: 'eth0', state: 'Up', since: '05:45:25.001' }]);
    await assert.rejects(c.configureCheck(), /SPEAKER_ERROR|syntax error, unexpected CF_SYM_UNDEFINED/);
    assert.match(await c.configure(), /Reconfigured/);
    await assert.rejects(c.showRouteExport('x; shutdown'), /not a BIRD protocol name/);
  } finally {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('BIRD control socket: a missing socket is a clear error', async () => {
  await assert.rejects(new BirdSocketClient('/nonexistent/bgp-test.ctl').showProtocols(), /BIRD control socket \/nonexistent\/bgp-test.ctl: ENOENT/);
});
