import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { renderBirdInclude, type Announcement } from '../../src/bgp/render.js';
import { BgpSettingsSchema } from '../../src/model/bgp.js';

/** Golden files: FULCRUM_UPDATE_GOLDEN=1 rewrites them (then review the diff). */
const dir = fileURLToPath(new URL('../../../test/unit/fixtures/bgp/', import.meta.url));
function golden(name: string, text: string): void {
  const path = dir + name;
  if (process.env.FULCRUM_UPDATE_GOLDEN === '1') writeFileSync(path, text);
  assert.equal(text, readFileSync(path, 'utf8'), `${name} differs from the golden file`);
}

const settings = BgpSettingsSchema.parse({
  asn: 65001, routerId: '10.71.1.2',
  neighbours: [
    { address: '10.71.1.1', asn: 65000 },
    { name: 'rr2', address: '2001:db8:71::1', asn: 65000, bfd: false, holdTimeSeconds: 9, multihop: 2, sourceAddress: '2001:db8:71::2' },
  ],
  communities: ['65001:1'],
});

const vips: Announcement[] = [
  { address: '10.80.0.100', family: 'inet', communities: ['65001:1', '65000:100', '65000:7:9'] },
  { address: '10.80.0.20', family: 'inet', communities: [] },
  { address: '2001:db8:80::1', family: 'inet6', communities: ['65001:1'] },
];

test('the include for two neighbours (v4 with BFD, v6 multihop without) and three VIPs', () => {
  golden('two-neighbours.conf', renderBirdInclude(settings, vips));
});

test('no VIP to announce: the sessions stay, the static protocols are empty (that is the withdrawal)', () => {
  golden('withdrawn.conf', renderBirdInclude(settings, []));
});

test('the rendering depends on the VIPs, not their order, and not on the order of the neighbours', () => {
  const a = renderBirdInclude(settings, vips);
  const shuffled = BgpSettingsSchema.parse({ ...settings, neighbours: [...settings.neighbours].reverse() });
  assert.equal(renderBirdInclude(shuffled, [...vips].reverse()), a);
  assert.notEqual(renderBirdInclude(settings, vips.slice(1)), a);
});

test('BFD off everywhere: no bfd protocol, bfd off on every session', () => {
  const off = BgpSettingsSchema.parse({ asn: 65001, routerId: '10.0.0.1', neighbours: [{ address: '10.0.0.254', asn: 65000 }], bfd: { enabled: false } });
  const text = renderBirdInclude(off, []);
  assert.doesNotMatch(text, /protocol bfd/);
  assert.match(text, /bfd off;/);
});
