// The clients send enums as numbers over REST (google-gax asks for enum-encoding=int). Services
// that read an enum field turn a request body back into enum names with the client's own proto
// descriptors, so the sandbox's state reads as the API documents it.
import { createRequire } from 'node:module';
import protobuf from 'protobufjs';

const load = createRequire(__filename);
const roots = new Map<string, protobuf.Root>();

function root(pkg: string): protobuf.Root {
  let r = roots.get(pkg);
  if (!r) {
    r = protobuf.Root.fromJSON(load(`${pkg}/build/protos/protos.json`));
    roots.set(pkg, r);
  }
  return r;
}

/** A copy of `json` (a `typeName` message in proto3 JSON) with every numeric enum value as its name. */
export function withEnumNames(pkg: string, typeName: string, json: unknown): any {
  return walk(root(pkg).lookupType(typeName), json);
}

function walk(type: protobuf.Type, value: unknown): any {
  if (!value || typeof value !== 'object' || Array.isArray(value)) return value;
  if (type.fullName.startsWith('.google.protobuf.')) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    const field = type.fields[k];
    if (!field) {
      out[k] = v;
      continue;
    }
    const resolved = field.resolve().resolvedType;
    const one = (x: unknown) => (resolved instanceof protobuf.Enum ? (typeof x === 'number' ? (resolved.valuesById[x] ?? x) : x) : resolved instanceof protobuf.Type ? walk(resolved, x) : x);
    if (field.map && v && typeof v === 'object') out[k] = Object.fromEntries(Object.entries(v).map(([mk, mv]) => [mk, one(mv)]));
    else out[k] = Array.isArray(v) ? v.map(one) : one(v);
  }
  return out;
}
