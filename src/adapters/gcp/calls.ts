// How the Google Cloud activities call an API: a denied permission becomes a non-retryable failure
// naming the role to grant; throttling and outages are rethrown as they are, so Temporal retries.
import { isNotFound, isPermissionDenied, isTransient } from './clients';
import { ErrorType, fail } from '../../errors';

export { isNotFound };

/** In a check: a transient error is rethrown (the activity retries) rather than reported as a failed check. */
export function rethrowTransient(err: unknown): void {
  if (isTransient(err)) throw err;
}

/** Runs one API call; PERMISSION_DENIED fails the step with the role that would allow it. */
export async function gcpCall<T>(what: string, role: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    if (isPermissionDenied(err)) {
      fail(ErrorType.PermissionDenied, `${what}: permission denied. Grant the worker's service account ${role} on the project, then retry. (${describe(err)})`);
    }
    throw err;
  }
}

/** The same, with NOT_FOUND as undefined: "already gone" is a result, not an error. */
export async function gcpGet<T>(what: string, role: string, call: () => Promise<T>): Promise<T | undefined> {
  try {
    return await gcpCall(what, role, call);
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

export function describe(err: unknown): string {
  const e = err as { message?: unknown; details?: unknown } | undefined;
  const text = typeof e?.details === 'string' && e.details ? e.details : typeof e?.message === 'string' ? e.message : String(err);
  const [firstLine = ''] = text.split('\n');
  return firstLine.slice(0, 300);
}

/**
 * A decoded message as plain JSON without proto3 defaults. Over REST the clients fill every unset
 * field with its default ('' , 0, false, null, *_UNSPECIFIED); those mean "unset", so they are
 * dropped: snapshots stay readable and a resource recreated from one sends only what was set.
 */
export function plain<T = Record<string, any>>(message: unknown): T {
  return prune(JSON.parse(JSON.stringify(message ?? null))) as T;
}

/**
 * Maps keyed by user-chosen names, whose empty values are real values: a label may be empty, and so
 * may a Cloud Build substitution ("_EMPTY": "" is a substitution a build relies on).
 */
const MAPS = new Set(['labels', 'annotations', 'userLabels', 'substitutions']);

function prune(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(prune);
  // A wrapper type (google.protobuf.BoolValue, Int64Value, …) is set even when its value is the
  // default: ipConfiguration.ipv4Enabled {value: false} is "no public IP", not "unset" (true).
  if (isWrapper(v)) return { value: v.value };
  if (v && typeof v === 'object') {
    // Entries, then fromEntries: a key is defined as given, where `out[k] = …` would let "__proto__" set the prototype.
    const out: Array<[string, unknown]> = [];
    for (const [k, x] of Object.entries(v)) {
      if (MAPS.has(k) && x && typeof x === 'object' && Object.keys(x).length) {
        out.push([k, { ...x }]);
        continue;
      }
      const p = prune(x);
      if (p === null || p === undefined || p === '' || p === false || p === 0) continue;
      if (typeof p === 'string' && p.endsWith('_UNSPECIFIED')) continue;
      if (Array.isArray(p) && !p.length) continue;
      if (typeof p === 'object' && !Array.isArray(p) && !Object.keys(p as object).length) continue;
      out.push([k, p]);
    }
    return Object.fromEntries(out);
  }
  return v;
}

function isWrapper(v: unknown): v is { value: string | number | boolean } {
  if (!v || typeof v !== 'object' || Array.isArray(v)) return false;
  const keys = Object.keys(v);
  return keys.length === 1 && keys[0] === 'value' && ['string', 'number', 'boolean'].includes(typeof (v as { value: unknown }).value);
}
