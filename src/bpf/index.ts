/**
 * libbpf-ts: a typed binding over the system libbpf.so.1 (API 1.1) through koffi. The one way into
 * libbpf for Fulcrum (STYLE #1). Raw pointers never leave src/bpf; every handle has close().
 */
export { BpfObject, loadObject, type OpenOptions, type LoadOptions, type RodataValue } from './object.js';
export { BpfMap, MappedRegion, type MapInfo, type BatchResult } from './map.js';
export { BpfProgram, xdpContext, type ProgramInfo, type TestRunOptions, type TestRunResult } from './program.js';
export { Btf, type SectionVar } from './btf.js';
export { assertLayout, layoutMismatches, encodeStruct, decodeStruct, type StructLayout, type MemberLayout, type ExpectedLayout, type FieldValue } from './layout.js';
export { attachXdp, detachXdp, queryXdp, type XdpMode, type XdpAttachOptions, type XdpState } from './xdp.js';
export { openPinnedMap, openPinnedProgram, ensurePinDir, ensurePinPath, requireBpffs, unpin } from './pin.js';
export { mountBpffs, isBpffs, ifIndex, withNetnsSync, pinThreadToCpu, possibleCpus } from './sys.js';
export { routeLibbpfLog, recentLibbpfLog } from './log.js';
export { MapType, ProgType, XdpAction, XdpFlags, BtfKind, isPerCpuMapType, mapTypeName, type UpdateMode } from './constants.js';
export { RingBuffer } from './ringbuf.js';
