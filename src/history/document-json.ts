// The cache document as JSON text, exactly: names are written as given (an own "__proto__" key
// included) and steps, which are bigint, as exact JSON integers (lossless-json), never through a
// double. Written piecewise into UTF-8 buffers so a large run never becomes one long string.
import { stringify } from 'lossless-json';

/**
 * JSON text gathered as UTF-8 buffers of ~32 kB. A run's document is never one string: V8 puts a
 * string over 128 kB straight into old space, where a thousand of them pile up between
 * collections and push the worker's RSS past 256 MB.
 */
export class JsonBuffer {
  private parts: Buffer[] = [];
  private current = '';
  private cutBytes = 0;

  get bytes(): number {
    return this.cutBytes + this.current.length;
  }

  write(s: string): void {
    this.current += s;
    if (this.current.length >= 32_768) this.cut();
  }

  /** Turns what is written so far into a buffer, so no string outlives the run it encodes. */
  cut(): void {
    if (!this.current) return;
    const b = Buffer.from(this.current, 'utf8');
    this.parts.push(b);
    this.cutBytes += b.length;
    this.current = '';
  }

  /** Everything written, then `last`, as one buffer; empties this. */
  take(last: string): Buffer {
    this.write(last);
    this.cut();
    const out = Buffer.concat(this.parts, this.cutBytes);
    this.parts = [];
    this.cutBytes = 0;
    return out;
  }
}

/** Exact JSON for any part of a document: bigint as an integer, own keys only, in insertion order. */
export function exactJson(value: unknown): string {
  return stringify(value) ?? 'null';
}

/** A document, written piecewise: objects down to `depth` levels, their members whole. */
export function writeDocument(out: JsonBuffer, value: unknown, depth = 2): void {
  if (depth === 0 || value === null || typeof value !== 'object' || Array.isArray(value)) {
    // Series of doubles are most of the bytes: JSON.stringify writes each exactly (shortest
    // round-trip form) and faster; only what holds a bigint goes through lossless-json.
    out.write(holdsBigint(value) ? exactJson(value) : JSON.stringify(value));
    return;
  }
  let first = true;
  for (const k of Object.keys(value)) {
    const v = (value as Record<string, unknown>)[k];
    if (v === undefined) continue;
    out.write(`${first ? '{' : ','}${JSON.stringify(k)}:`);
    writeDocument(out, v, depth - 1);
    first = false;
  }
  out.write(first ? '{}' : '}');
}

function holdsBigint(value: unknown): boolean {
  if (typeof value === 'bigint') return true;
  if (Array.isArray(value)) return value.length > 0 && typeof value[0] === 'bigint';
  if (value && typeof value === 'object') return Object.values(value).some(holdsBigint);
  return false;
}
