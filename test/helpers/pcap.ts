import { readFileSync } from 'node:fs';

/** Reads a classic libpcap file (tcpdump -w) of Ethernet frames; returns each frame's bytes. */
export function readPcapFrames(path: string): Buffer[] {
  const buf = readFileSync(path);
  const magic = buf.readUInt32LE(0);
  const le = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d;
  if (!le && buf.readUInt32BE(0) !== 0xa1b2c3d4 && buf.readUInt32BE(0) !== 0xa1b23c4d) throw new Error(`${path}: not a pcap file`);
  const u32 = (o: number) => (le ? buf.readUInt32LE(o) : buf.readUInt32BE(o));
  const linkType = u32(20);
  if (linkType !== 1) throw new Error(`${path}: link type ${linkType}, expected Ethernet (1)`);
  const frames: Buffer[] = [];
  for (let off = 24; off + 16 <= buf.length; ) {
    const incl = u32(off + 8);
    frames.push(buf.subarray(off + 16, off + 16 + incl));
    off += 16 + incl;
  }
  return frames;
}

/** The IP packet inside an Ethernet II frame (no VLAN tags in our captures). */
export function ipOfFrame(frame: Buffer): Buffer {
  return frame.subarray(14);
}
