/**
 * The object with its keys in the schema's order (keys the schema does not name last). A
 * transform that adds a derived key (`family`) would otherwise put it last when it was absent
 * from the input and in place when present, so a parsed state and its re-parse would print
 * differently.
 */
export function inShapeOrder<T extends object>(value: T, shape: object): T {
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(shape)) if (k in value) out[k] = (value as Record<string, unknown>)[k];
  for (const [k, v] of Object.entries(value)) if (!(k in out)) out[k] = v;
  return out as T;
}
