import { isIPv4, isIPv6 } from 'node:net';

export type Family = 'inet' | 'inet6';

export function familyOf(address: string): Family | undefined {
  if (isIPv4(address)) return 'inet';
  if (isIPv6(address)) return 'inet6';
  return undefined;
}

/** Expands an IPv6 address into its 16 bytes; IPv4 into 4. Throws on anything else. */
export function ipToBytes(address: string): Buffer {
  if (isIPv4(address)) return Buffer.from(address.split('.').map(Number));
  if (!isIPv6(address)) throw new TypeError(`not an IP address: ${address}`);
  let text = address;
  const zone = text.indexOf('%');
  if (zone >= 0) text = text.slice(0, zone);
  // A trailing dotted quad (::ffff:1.2.3.4) becomes two hextets.
  const dotted = text.match(/(\d+\.\d+\.\d+\.\d+)$/);
  if (dotted?.[1]) {
    const b = dotted[1].split('.').map(Number) as [number, number, number, number];
    text = text.slice(0, -dotted[1].length) + `${((b[0] << 8) | b[1]).toString(16)}:${((b[2] << 8) | b[3]).toString(16)}`;
  }
  const [head, tail] = text.split('::') as [string, string | undefined];
  const headParts = head === '' ? [] : head.split(':');
  const tailParts = tail === undefined || tail === '' ? [] : tail.split(':');
  const missing = 8 - headParts.length - tailParts.length;
  const parts = [...headParts, ...Array<string>(tail === undefined ? 0 : missing).fill('0'), ...tailParts];
  const out = Buffer.alloc(16);
  parts.forEach((p, i) => out.writeUInt16BE(parseInt(p, 16), i * 2));
  return out;
}

/** Formats 4 or 16 bytes as an address (IPv6 in RFC 5952 canonical form). */
export function bytesToIp(bytes: Uint8Array): string {
  if (bytes.length === 4) return Array.from(bytes).join('.');
  if (bytes.length !== 16) throw new TypeError(`address of ${bytes.length} bytes`);
  const words: number[] = [];
  for (let i = 0; i < 16; i += 2) words.push(((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0));
  // RFC 5952 4.2: compress the longest run (of two or more) of zero words, the first if tied.
  let bestStart = -1, bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) { bestStart = i; bestLen = j - i; }
    i = j;
  }
  const hex = words.map((w) => w.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

/** Formats link-layer address bytes as lower-case colon-separated hex (02:00:5e:00:01:01). */
export function bytesToMac(bytes: Uint8Array): string {
  return Array.from(bytes, (x) => x.toString(16).padStart(2, '0')).join(':');
}

/** The 6 bytes of a MAC address text (aa:bb:cc:dd:ee:ff, as the model checks it). */
export function macToBytes(mac: string): Buffer {
  return Buffer.from(mac.split(':').map((h) => parseInt(h, 16)));
}

/** Canonical text of an address, so that equal addresses compare equal as strings. */
export function canonicalIp(address: string): string {
  return familyOf(address) === 'inet6' ? bytesToIp(ipToBytes(address)) : address;
}

/** "10.0.0.1:80" or "[2001:db8::1]:80". */
export function formatEndpoint(address: string, port: number): string {
  return familyOf(address) === 'inet6' ? `[${address}]:${port}` : `${address}:${port}`;
}

/** Whether two endpoints (canonical addresses) are the same address and port. */
export function sameEndpoint(a: { address: string; port: number }, b: { address: string; port: number }): boolean {
  return a.address === b.address && a.port === b.port;
}

/** Parses "10.0.0.1:80" or "[2001:db8::1]:80" (or "2001:db8::1:80" is refused as ambiguous). */
export function parseEndpoint(text: string): { address: string; port: number } | undefined {
  const m = text.match(/^\[([^\]]+)\]:(\d{1,5})$/) ?? text.match(/^([^:\[\]]+):(\d{1,5})$/);
  if (!m?.[1] || !m[2]) return undefined;
  const port = Number(m[2]);
  if (!familyOf(m[1]) || port > 65535) return undefined;
  return { address: canonicalIp(m[1]), port };
}

/** Dotted IPv4 netmask to prefix length, or undefined when the mask is not contiguous. */
export function ipv4MaskToPrefix(mask: string): number | undefined {
  if (!isIPv4(mask)) return undefined;
  const n = ipToBytes(mask).readUInt32BE(0);
  const inverted = ~n >>> 0;
  if ((inverted & (inverted + 1)) !== 0) return undefined;
  return 32 - Math.log2(inverted + 1);
}
