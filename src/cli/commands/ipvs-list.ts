import type { Command } from '../command.js';
import { openIpvsClient } from '../../ipvs/client.js';
import { formatIpvsadmList } from '../../ipvs/list-format.js';
import { listDestinationsOf } from '../../ipvs/read.js';

/** `fulcrum ipvs list`: the kernel's IPVS table in `ipvsadm -Ln`'s layout, read over netlink. */
export const ipvsList: Command = {
  path: ['ipvs', 'list'],
  summary: 'print the kernel IPVS table (ipvsadm -Ln layout)',
  usage: 'ipvs list',
  async run(argv, io) {
    if (argv.length > 0) {
      io.stderr.write(`fulcrum ipvs list: unexpected argument ${argv[0]}\n`);
      return 2;
    }
    const client = await openIpvsClient();
    try {
      const info = await client.info();
      const services = await client.listServices();
      const dests = await listDestinationsOf(client, services.map((s) => s.key));
      io.stdout.write(formatIpvsadmList(info, services.map((service, i) => ({ service, dests: dests[i]! }))));
      return 0;
    } finally {
      await client.close();
    }
  },
};
