// COPY (query) TO STDOUT (FORMAT binary), parsed as it streams: no per-row object from the
// driver, exact int8 and float8 (their bytes, not their text). The format is PostgreSQL's
// (https://www.postgresql.org/docs/current/sql-copy.html, "Binary Format").
import type pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import { checkOut } from './postgres-streams';

/** One tuple: field i is buf[start[i], start[i] + len[i]), len -1 for NULL. Valid only during the call. */
export type OnTuple = (buf: Buffer, start: Int32Array, len: Int32Array) => void;

const SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1');

/**
 * Runs `COPY (select) TO STDOUT (FORMAT binary)` in a read-only transaction and calls `onTuple`
 * for every row. `$1` in `select` stands for `textArray`, sent as an escaped literal (COPY takes
 * no bind parameters). `onChunk` runs between network chunks: it may throw to stop the read
 * (for example when the activity is cancelled).
 */
export async function copyBinary(pool: pg.Pool, select: string, textArray: readonly string[], onTuple: OnTuple, onChunk?: () => void): Promise<void> {
  const { client, release } = await checkOut(pool);
  let failed: Error | undefined;
  let copying = false;
  try {
    await client.query('BEGIN READ ONLY');
    const literal = client.escapeLiteral(`{${textArray.map((s) => `"${s.replace(/[\\"]/g, '\\$&')}"`).join(',')}}`);
    // A function, not a string: `$&` or `$$` in a run id must not be read as a replacement pattern.
    const stream = client.query(copyTo(`COPY (${select.replace('$1', () => `${literal}::text[]`)}) TO STDOUT (FORMAT binary)`));
    copying = true;
    const parser = new BinaryTupleParser(onTuple);
    for await (const chunk of stream) {
      onChunk?.();
      parser.push(chunk as Buffer);
    }
    copying = false;
    parser.end();
    await client.query('COMMIT');
  } catch (err) {
    failed = err as Error;
    // A ROLLBACK would queue behind a COPY still streaming and wait for it forever: a stopped
    // COPY's connection is dropped instead (release(failed) below), which ends its transaction.
    if (!copying) await client.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    // A COPY stopped halfway leaves the connection mid-protocol: drop it rather than reuse it.
    release(failed);
  }
}

/** Binary COPY tuples out of arbitrarily cut chunks. */
export class BinaryTupleParser {
  private rest: Buffer | undefined;
  private headerDone = false;
  private done = false;
  private start = new Int32Array(16);
  private len = new Int32Array(16);

  constructor(private readonly onTuple: OnTuple) {}

  push(chunk: Buffer): void {
    const buf = this.rest ? Buffer.concat([this.rest, chunk]) : chunk;
    let pos = 0;
    if (!this.headerDone) {
      if (buf.length < 19) return void (this.rest = buf);
      if (!buf.subarray(0, 11).equals(SIGNATURE)) throw new Error('COPY binary: bad signature');
      pos = 19 + buf.readUInt32BE(15);
      if (buf.length < pos) return void (this.rest = buf);
      this.headerDone = true;
    }
    while (pos + 2 <= buf.length) {
      const fields = buf.readInt16BE(pos);
      if (fields === -1) {
        this.done = true;
        pos += 2;
        break;
      }
      if (fields > this.start.length) {
        this.start = new Int32Array(fields);
        this.len = new Int32Array(fields);
      }
      let p = pos + 2;
      let complete = true;
      for (let i = 0; i < fields; i++) {
        if (p + 4 > buf.length) {
          complete = false;
          break;
        }
        const n = buf.readInt32BE(p);
        p += 4;
        this.start[i] = p;
        this.len[i] = n;
        if (n > 0) p += n;
        if (p > buf.length) {
          complete = false;
          break;
        }
      }
      if (!complete) break;
      this.onTuple(buf, this.start, this.len);
      pos = p;
    }
    this.rest = pos < buf.length ? buf.subarray(pos) : undefined;
  }

  end(): void {
    if (!this.done || this.rest?.length) throw new Error('COPY binary: the stream ended mid-tuple');
  }
}
