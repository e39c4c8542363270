/**
 * Captures what `ipvsadm` sends to (and receives from) the kernel over generic netlink, as golden
 * bytes for the codec tests. Runs INSIDE the IPVS VM (see scripts/ipvs/capture-golden.sh, which
 * boots it and copies the result to test/unit/fixtures/ipvsadm-golden.json).
 *
 * Each case: setup commands (plain ipvsadm), then the traced command under
 * `strace -xx -e trace=sendmsg,sendto,recvmsg -e write=all -e read=all`; the hex dumps strace
 * prints are parsed back into whole netlink datagrams.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';

interface Case { name: string; setup?: string[][]; argv: string[] }

const svc = ['-A', '-t', '10.0.0.1:80', '-s', 'rr'];
const svc6 = ['-A', '-u', '[2001:db8::1]:53', '-s', 'wlc'];
const dest = ['-a', '-t', '10.0.0.1:80', '-r', '10.0.1.1:8080', '-m', '-w', '3'];

const CASES: Case[] = [
  { name: 'add-service-tcp', argv: ['-A', '-t', '10.0.0.1:80', '-s', 'rr'] },
  { name: 'add-service-persistent', argv: ['-A', '-t', '10.0.0.2:443', '-s', 'wlc', '-p', '300', '-M', '255.255.255.0'] },
  { name: 'add-service-udp6-sched-flags', argv: ['-A', '-u', '[2001:db8::1]:53', '-s', 'sh', '-b', 'sh-fallback,sh-port'] },
  { name: 'add-service-persistent6', argv: ['-A', '-t', '[2001:db8::2]:443', '-s', 'lc', '-p', '600', '-M', '64'] },
  { name: 'add-service-fwmark', argv: ['-A', '-f', '42', '-s', 'mh', '-b', 'mh-port'] },
  { name: 'add-service-fwmark6', argv: ['-A', '-f', '43', '-6', '-s', 'rr'] },
  { name: 'add-service-sctp', argv: ['-A', '--sctp-service', '10.0.0.3:9000', '-s', 'wrr'] },
  { name: 'add-service-udp-ops', argv: ['-A', '-u', '10.0.0.5:514', '-s', 'rr', '-o'] },
  { name: 'add-service-pe-sip', argv: ['-A', '-u', '10.0.0.4:5060', '-s', 'rr', '-p', '60', '--pe', 'sip'] },
  { name: 'edit-service', setup: [svc], argv: ['-E', '-t', '10.0.0.1:80', '-s', 'wlc'] },
  { name: 'delete-service', setup: [svc], argv: ['-D', '-t', '10.0.0.1:80'] },
  { name: 'delete-service-fwmark', setup: [['-A', '-f', '42', '-s', 'rr']], argv: ['-D', '-f', '42'] },
  { name: 'add-dest-nat', setup: [svc], argv: ['-a', '-t', '10.0.0.1:80', '-r', '10.0.1.1:8080', '-m', '-w', '3', '-x', '100', '-y', '10'] },
  { name: 'add-dest-dr', setup: [svc], argv: ['-a', '-t', '10.0.0.1:80', '-r', '10.0.1.2', '-g', '-w', '1'] },
  { name: 'add-dest-ipip', setup: [svc], argv: ['-a', '-t', '10.0.0.1:80', '-r', '10.0.1.3', '-i'] },
  { name: 'add-dest-gue', setup: [svc], argv: ['-a', '-t', '10.0.0.1:80', '-r', '10.0.1.4', '-i', '--tun-type', 'gue', '--tun-port', '6080', '--tun-nocsum'] },
  { name: 'add-dest-gre-csum', setup: [svc], argv: ['-a', '-t', '10.0.0.1:80', '-r', '10.0.1.5', '-i', '--tun-type', 'gre', '--tun-csum'] },
  { name: 'add-dest-v6', setup: [svc6], argv: ['-a', '-u', '[2001:db8::1]:53', '-r', '[2001:db8::10]:5353', '-m', '-w', '2'] },
  { name: 'add-dest-fwmark', setup: [['-A', '-f', '42', '-s', 'rr']], argv: ['-a', '-f', '42', '-r', '10.0.1.6', '-g'] },
  { name: 'edit-dest', setup: [svc, dest], argv: ['-e', '-t', '10.0.0.1:80', '-r', '10.0.1.1:8080', '-m', '-w', '0'] },
  { name: 'delete-dest', setup: [svc, dest], argv: ['-d', '-t', '10.0.0.1:80', '-r', '10.0.1.1:8080'] },
  { name: 'flush', setup: [svc], argv: ['-C'] },
  { name: 'zero-all', setup: [svc], argv: ['-Z'] },
  { name: 'zero-service', setup: [svc], argv: ['-Z', '-t', '10.0.0.1:80'] },
  { name: 'set-timeouts', argv: ['--set', '900', '120', '300'] },
  { name: 'start-daemon-master', argv: ['--start-daemon', 'master', '--mcast-interface', 'lo', '--syncid', '7'] },
  { name: 'start-daemon-backup-options', argv: ['--start-daemon', 'backup', '--mcast-interface', 'lo', '--syncid', '9', '--sync-maxlen', '1400', '--mcast-group', '224.0.0.82', '--mcast-port', '8850', '--mcast-ttl', '2'] },
  { name: 'stop-daemon', setup: [['--start-daemon', 'master', '--mcast-interface', 'lo', '--syncid', '7']], argv: ['--stop-daemon', 'master'] },
  { name: 'list-daemons', setup: [['--start-daemon', 'master', '--mcast-interface', 'lo', '--syncid', '7']], argv: ['-L', '--daemon'] },
  { name: 'list-timeouts', setup: [['--set', '900', '120', '300']], argv: ['-L', '--timeout'] },
  { name: 'list-table', setup: [svc, dest, ['-a', '-t', '10.0.0.1:80', '-r', '10.0.1.2:8080', '-m', '-w', '1'], svc6, ['-a', '-u', '[2001:db8::1]:53', '-r', '[2001:db8::10]:5353', '-m', '-w', '2'], ['-A', '-f', '42', '-s', 'sh', '-b', 'sh-port', '-p', '120']], argv: ['-Ln'] },
  { name: 'list-stats-exact', setup: [svc, dest], argv: ['-Ln', '--stats', '--exact'] },
  { name: 'list-one-service', setup: [svc, dest], argv: ['-Ln', '-t', '10.0.0.1:80'] },
];

/** Parses strace's `-e write/read=all` hex dumps into datagrams, per syscall. */
function parseStrace(text: string): { sent: string[]; received: string[] } {
  const sent: string[] = [];
  const received: string[] = [];
  let cur: { dir: 'send' | 'recv' | undefined; hex: string[] } | undefined;
  const flush = (): void => {
    if (cur?.dir && cur.hex.length) (cur.dir === 'send' ? sent : received).push(cur.hex.join(''));
    cur = undefined;
  };
  for (const line of text.split('\n')) {
    const m = /^ \| [0-9a-f]{5}  ((?:[0-9a-f]{2} {1,2}){1,16})/.exec(line);
    if (m && cur) { cur.hex.push(m[1]!.replace(/\s+/g, '')); continue; }
    if (/^ \* \d+ bytes in buffer/.test(line)) continue;
    if (/^(sendmsg|sendto|recvmsg)\(/.test(line)) {
      flush();
      // A MSG_PEEK read is followed by the real read of the same bytes: keep only the latter.
      const dir = line.startsWith('recvmsg') ? (line.includes('MSG_PEEK') ? undefined : 'recv') : 'send';
      cur = { dir, hex: [] };
      continue;
    }
    flush();
  }
  flush();
  return { sent, received };
}

function ipvsadm(args: string[]): void {
  execFileSync('ipvsadm', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

function reset(): void {
  ipvsadm(['-C']);
  for (const s of ['master', 'backup']) spawnSync('ipvsadm', ['--stop-daemon', s]);
  ipvsadm(['--set', '0', '0', '0']);
}

// Destinations must be routable for the kernel to accept them: a dummy link with both prefixes.
execFileSync('ip', ['link', 'add', 'gold0', 'type', 'dummy']);
execFileSync('ip', ['addr', 'add', '10.0.1.254/24', 'dev', 'gold0']);
execFileSync('ip', ['-6', 'addr', 'add', '2001:db8::fe/64', 'dev', 'gold0', 'nodad']);
execFileSync('ip', ['link', 'set', 'gold0', 'up']);

const out = {
  comment: 'Generic netlink datagrams ipvsadm sent and received, captured by scripts/ipvs/capture-golden.sh. Regenerate with that script.',
  kernel: execFileSync('uname', ['-r'], { encoding: 'utf8' }).trim(),
  ipvsadm: execFileSync('ipvsadm', ['--version'], { encoding: 'utf8' }).trim(),
  cases: [] as Array<Case & { stdout: string; sent: string[]; received: string[] }>,
};
for (const c of CASES) {
  reset();
  for (const s of c.setup ?? []) ipvsadm(s);
  const r = spawnSync('strace', ['-xx', '-s', '4096', '-e', 'trace=sendmsg,sendto,recvmsg', '-e', 'write=all', '-e', 'read=all', 'ipvsadm', ...c.argv], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ipvsadm ${c.argv.join(' ')} failed: ${r.stderr}`);
  out.cases.push({ ...c, stdout: r.stdout, ...parseStrace(r.stderr) });
}
reset();
execFileSync('ip', ['link', 'del', 'gold0']);
const dest0 = process.argv[2] ?? '/run/fulcrum-job/ipvsadm-golden.json';
writeFileSync(dest0, JSON.stringify(out, null, 1) + '\n');
console.log(`captured ${out.cases.length} cases into ${dest0}`);
