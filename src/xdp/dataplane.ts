import type { Logger } from '../log.js';
import type { Dataplane } from '../dataplane/types.js';
import type { XdpSettings } from '../model/xdp.js';
import { FeatureMissingError } from '../errors.js';

export interface XdpDataplaneOptions {
  /** Node-wide XDP settings from the desired state (interfaces, attach mode...). */
  settings: XdpSettings | undefined;
  /** Where state files live. */
  stateDir: string;
  /** bpffs directory for pins; defaults to /sys/fs/bpf/fulcrum. */
  pinDir?: string;
  logger: Logger;
}

/**
 * Loads (or re-opens from bpffs pins) the XDP dataplane. Throws FeatureMissingError when the
 * kernel, the object file or the interfaces cannot carry it.
 * (The implementation lands with the XDP dataplane; until then this says so.)
 */
export async function createXdpDataplane(_options: XdpDataplaneOptions): Promise<Dataplane> {
  throw new FeatureMissingError('xdp', 'the XDP dataplane is not built into this version of Fulcrum yet');
}
