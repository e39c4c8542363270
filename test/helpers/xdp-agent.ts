/**
 * The XDP dataplane in a child process, so that it runs inside the LB's netns the way the agent
 * would (`ip netns exec LB node xdp-agent.js`). JSON commands on stdin, one JSON reply per line:
 *   {"op":"create","settings":{...},"pinDir":"...","stateDir":"..."}  -> {"ok":true,"reopened":bool}
 *   {"op":"reconcile","services":[...],"dryRun":bool}                -> {"ok":true,"result":{...}}
 *   {"op":"stats"} / {"op":"close"} / {"op":"cleanup"}
 * Errors come back as {"ok":false,"error":"..."}. Stops with its stdin.
 */
import { createInterface } from 'node:readline';
import { createXdpDataplane } from '../../src/xdp/dataplane.js';
import { parseDesiredState } from '../../src/model/index.js';
import type { Dataplane } from '../../src/dataplane/types.js';

let dp: (Dataplane & { kernel: { reopened: boolean; program: { id: number } } }) | undefined;

const reply = (v: unknown) => process.stdout.write(`${JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? x.toString() : x))}\n`);

async function handle(cmd: Record<string, unknown>): Promise<unknown> {
  switch (cmd.op) {
    case 'create':
      // drainTimeoutSeconds 0: a removed backend goes at once (xdp-netns is about forwarding; the drain is agent-xdp-drain's).
      dp = await createXdpDataplane({ settings: cmd.settings as never, pinDir: cmd.pinDir as string, stateDir: cmd.stateDir as string, drainTimeoutSeconds: 0, report: () => undefined });
      return { reopened: dp.kernel.reopened, progId: dp.kernel.program.id };
    case 'reconcile': {
      const state = parseDesiredState({ services: cmd.services });
      return { result: await dp!.reconcile(state.services, { dryRun: cmd.dryRun === true }) };
    }
    case 'stats':
      return { stats: await dp!.stats() };
    case 'close':
      await dp!.close();
      return {};
    case 'cleanup':
      await dp!.cleanup();
      return {};
    default:
      throw new Error(`unknown op ${String(cmd.op)}`);
  }
}

const rl = createInterface({ input: process.stdin });
for await (const line of rl) {
  if (!line.trim()) continue;
  try {
    reply({ ok: true, ...((await handle(JSON.parse(line) as Record<string, unknown>)) as object) });
  } catch (e) {
    reply({ ok: false, error: (e as Error).message });
  }
}
process.exit(0);
