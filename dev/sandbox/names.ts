// Names are data (issue 9 item 1): the sandbox keeps whatever a user named in dictionaries without
// a prototype, so "constructor" or "__proto__" is a key like any other, and it refuses the names
// Google refuses, with Google's kind of error, so a test cannot pass on a name Google would not take.
import { badRequest } from './server';

/** A dictionary keyed by user-chosen names: no prototype, so no inherited key answers a lookup. */
export function dict<T>(entries: Iterable<readonly [string, T]> = []): Record<string, T> {
  const d = Object.create(null) as Record<string, T>;
  // Assignment is safe here: with no prototype there is no __proto__ setter to hit.
  for (const [k, v] of entries) d[k] = v;
  return d;
}

/** The same dictionary without its prototype: state read back from the JSON state file has one. */
export function asDict<T>(d: Record<string, T> | undefined): Record<string, T> {
  if (!d) return dict<T>();
  if (Object.getPrototypeOf(d) !== null) Object.setPrototypeOf(d, null);
  return d;
}

/** `d[key]` only when `key` is the dictionary's own: never an inherited member. */
export function own<T>(d: Record<string, T> | null | undefined, key: string): T | undefined {
  return d && Object.hasOwn(d, key) ? d[key] : undefined;
}

// Labels: "Keys have a minimum length of 1 character and a maximum length of 63 characters … Keys and
// values can contain only lowercase letters, numeric characters, underscores, and dashes … international
// characters are allowed … Keys must start with a lowercase letter or international character … up to
// 64 labels" (https://cloud.google.com/resource-manager/docs/labels-overview#requirements).
const LABEL_KEY = /^[\p{Ll}\p{Lo}][\p{Ll}\p{Lo}\p{N}_-]{0,62}$/u;
const LABEL_VALUE = /^[\p{Ll}\p{Lo}\p{N}_-]{0,63}$/u;

/** Refuses a label map Google refuses; `null` values (a PATCH removing a label) pass. */
export function checkLabels(labels: unknown, where: string): void {
  if (labels === undefined || labels === null) return;
  if (typeof labels !== 'object' || Array.isArray(labels)) throw badRequest(`${where}: labels must be a map of strings`);
  const entries = Object.entries(labels);
  if (entries.length > 64) throw badRequest(`${where}: at most 64 labels, not ${entries.length}`);
  for (const [k, v] of entries) {
    if (!LABEL_KEY.test(k)) throw badRequest(`${where}: label key ${JSON.stringify(k)} violates the label key requirements (lower-case letters, digits, _ and -, starting with a letter, at most 63 characters)`);
    if (v !== null && (typeof v !== 'string' || !LABEL_VALUE.test(v))) throw badRequest(`${where}: the value of label ${JSON.stringify(k)} violates the label value requirements (lower-case letters, digits, _ and -, at most 63 characters)`);
  }
}
