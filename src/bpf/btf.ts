import { FulcrumError } from '../errors.js';
import { checkPtr, closedError, notFound } from './check.js';
import { BtfKind } from './constants.js';
import { copyOut, lib, type Ptr } from './ffi.js';
import type { MemberLayout, StructLayout } from './layout.js';

/** One variable of a data section (.rodata, .data, .bss) with its place in the section. */
export interface SectionVar {
  name: string;
  offset: number;
  size: number;
}

interface RawType {
  name: string;
  kind: number;
  kindFlag: boolean;
  vlen: number;
  /** size for INT/STRUCT/UNION/ENUM/DATASEC, type id for PTR/TYPEDEF/CONST/VOLATILE/VAR/FUNC... */
  sizeOrType: number;
  /** The kind-specific words after struct btf_type. */
  extra: Buffer;
}

const EXTRA_BYTES: Partial<Record<number, (vlen: number) => number>> = {
  [BtfKind.INT]: () => 4,
  [BtfKind.ARRAY]: () => 12,
  [BtfKind.STRUCT]: (v) => 12 * v,
  [BtfKind.UNION]: (v) => 12 * v,
  [BtfKind.ENUM]: (v) => 8 * v,
  [BtfKind.FUNC_PROTO]: (v) => 8 * v,
  [BtfKind.VAR]: () => 4,
  [BtfKind.DATASEC]: (v) => 12 * v,
  [BtfKind.DECL_TAG]: () => 4,
  [BtfKind.ENUM64]: (v) => 12 * v,
};

/**
 * Type information of an object (bpf_object__btf) or of the kernel (vmlinux). Reads through libbpf's
 * btf__* accessors; results are plain data (StructLayout) that outlive the handle.
 */
export class Btf {
  #ptr: Ptr | undefined;
  readonly #owned: boolean;
  readonly #what: string;

  /** @internal */
  constructor(ptr: Ptr, owned: boolean, what: string) {
    this.#ptr = ptr;
    this.#owned = owned;
    this.#what = what;
  }

  /** The running kernel's BTF (/sys/kernel/btf/vmlinux); FeatureMissingError without it. */
  static vmlinux(): Btf {
    const p = checkPtr('btf__load_vmlinux_btf', lib().btf__load_vmlinux_btf(), {
      featureMissing: { errnos: [2, 95], feature: 'btf', message: 'the kernel exposes no BTF (CONFIG_DEBUG_INFO_BTF)' },
    });
    return new Btf(p, true, 'vmlinux BTF');
  }

  /** BTF of an ELF object or raw BTF file. */
  static parseFile(path: string): Btf {
    const p = checkPtr(`btf__parse(${path})`, lib().btf__parse(path, null), {
      featureMissing: { errnos: [2, 61], feature: 'btf', message: 'the file carries no BTF (compile with -g)' },
    });
    return new Btf(p, true, `BTF of ${path}`);
  }

  get #p(): Ptr {
    if (this.#ptr === undefined) throw closedError(this.#what);
    return this.#ptr;
  }

  #raw(id: number): RawType {
    const p = checkPtr(`btf__type_by_id(${id})`, lib().btf__type_by_id(this.#p, id));
    const head = copyOut(p, 12);
    const info = head.readUInt32LE(4);
    const kind = (info >>> 24) & 0x1f;
    const vlen = info & 0xffff;
    const extraLen = EXTRA_BYTES[kind]?.(vlen) ?? 0;
    const all = copyOut(p, 12 + extraLen);
    return {
      name: lib().btf__name_by_offset(this.#p, head.readUInt32LE(0)) ?? '',
      kind,
      kindFlag: (info >>> 31) === 1,
      vlen,
      sizeOrType: head.readUInt32LE(8),
      extra: all.subarray(12),
    };
  }

  #find(name: string, kind: number, what: string): number {
    const id = lib().btf__find_by_name_kind(this.#p, name, kind);
    if (id < 0) throw notFound(`${this.#what} has no ${what} ${name}`);
    return id;
  }

  /** Size in bytes of a type id (btf__resolve_size). */
  sizeOf(id: number): number {
    const n = Number(lib().btf__resolve_size(this.#p, id));
    if (n < 0) throw new FulcrumError('INTERNAL', `${this.#what}: type ${id} has no size`);
    return n;
  }

  /** A C-ish name for a type id, keeping typedef names (so __be32 stays visible). */
  typeName(id: number, depth = 0): string {
    if (id === 0) return 'void';
    if (depth > 16) return '?';
    const t = this.#raw(id);
    switch (t.kind) {
      case BtfKind.INT: case BtfKind.TYPEDEF: case BtfKind.FLOAT: return t.name;
      case BtfKind.STRUCT: return `struct ${t.name || '<anon>'}`;
      case BtfKind.UNION: return `union ${t.name || '<anon>'}`;
      case BtfKind.ENUM: case BtfKind.ENUM64: return `enum ${t.name || '<anon>'}`;
      case BtfKind.PTR: return `${this.typeName(t.sizeOrType, depth + 1)} *`;
      case BtfKind.CONST: case BtfKind.VOLATILE: case BtfKind.RESTRICT: case BtfKind.TYPE_TAG:
        return this.typeName(t.sizeOrType, depth + 1);
      case BtfKind.ARRAY: return `${this.typeName(t.extra.readUInt32LE(0), depth + 1)}[${t.extra.readUInt32LE(8)}]`;
      default: return t.name || `kind${t.kind}`;
    }
  }

  /** The layout of `struct name` (or `union name`): size and every member's offset and size. */
  structLayout(name: string): StructLayout {
    let id = lib().btf__find_by_name_kind(this.#p, name, BtfKind.STRUCT);
    let kind: 'struct' | 'union' = 'struct';
    if (id < 0) {
      id = this.#find(name, BtfKind.UNION, 'struct or union');
      kind = 'union';
    }
    const t = this.#raw(id);
    const members: MemberLayout[] = [];
    for (let i = 0; i < t.vlen; i++) {
      const nameOff = t.extra.readUInt32LE(i * 12);
      const type = t.extra.readUInt32LE(i * 12 + 4);
      const off = t.extra.readUInt32LE(i * 12 + 8);
      const bitSize = t.kindFlag ? off >>> 24 : 0;
      const bitOff = t.kindFlag ? off & 0xffffff : off;
      const m: MemberLayout = {
        name: lib().btf__name_by_offset(this.#p, nameOff) ?? '',
        offset: Math.floor(bitOff / 8),
        size: this.sizeOf(type),
        type: this.typeName(type),
      };
      if (bitSize > 0 || bitOff % 8 !== 0) {
        m.bitOffset = bitOff;
        m.bitSize = bitSize;
      }
      members.push(m);
    }
    return { name, kind, size: t.sizeOrType, members };
  }

  /** Enumerators of `enum name` (e.g. constants shared with the C side). */
  enumValues(name: string): Record<string, number> {
    const id = this.#find(name, BtfKind.ENUM, 'enum');
    const t = this.#raw(id);
    const out: Record<string, number> = {};
    for (let i = 0; i < t.vlen; i++) {
      const n = lib().btf__name_by_offset(this.#p, t.extra.readUInt32LE(i * 8)) ?? '';
      out[n] = t.kindFlag ? t.extra.readInt32LE(i * 8 + 4) : t.extra.readUInt32LE(i * 8 + 4);
    }
    return out;
  }

  /** Variables of a data section ('.rodata', '.data', '.bss') with their offsets (as libbpf laid them out). */
  sectionVars(section: string): SectionVar[] {
    const id = this.#find(section, BtfKind.DATASEC, 'data section');
    const t = this.#raw(id);
    const out: SectionVar[] = [];
    for (let i = 0; i < t.vlen; i++) {
      const varId = t.extra.readUInt32LE(i * 12);
      out.push({ name: this.#raw(varId).name, offset: t.extra.readUInt32LE(i * 12 + 4), size: t.extra.readUInt32LE(i * 12 + 8) });
    }
    return out;
  }

  close(): void {
    if (this.#ptr !== undefined && this.#owned) lib().btf__free(this.#ptr);
    this.#ptr = undefined;
  }

  /** @internal the owning object closed. */
  invalidate(): void {
    this.#ptr = undefined;
  }
}
