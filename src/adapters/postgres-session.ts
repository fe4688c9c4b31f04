// One connection for a run of statements that belong together: a dump read from one snapshot,
// or a drop or restore that commits whole or not at all. COPY streams run on that connection,
// so they see (and write within) the same transaction. pg and pg-copy-streams stay here.
import type { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Pool } from 'pg';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';

export type Row = Record<string, any>;

export interface Session {
  query<R extends Row = Row>(sql: string, params?: unknown[]): Promise<{ rows: R[]; rowCount: number | null }>;
  /** A statement that returns exactly one row (a count, a setting, a sequence's state). */
  one<R extends Row = Row>(sql: string, params?: unknown[]): Promise<R>;
  /** COPY … TO STDOUT through `stages` (the last one the sink); resolves with the rows copied. */
  copyOut(sql: string, stages: [...NodeJS.ReadWriteStream[], Writable], signal?: AbortSignal): Promise<number>;
  /** COPY … FROM STDIN from `source` through `stages`; resolves with the rows copied. */
  copyIn(sql: string, source: Readable, stages: NodeJS.ReadWriteStream[], signal?: AbortSignal): Promise<number>;
}

/**
 * Runs `fn` on one connection. With `begin` (e.g. 'BEGIN ISOLATION LEVEL REPEATABLE READ READ
 * ONLY'), inside a transaction that commits when `fn` resolves and rolls back when it throws.
 */
export async function withSession<T>(pool: Pool, fn: (s: Session) => Promise<T>, opts: { begin?: string } = {}): Promise<T> {
  const client = await pool.connect();
  const session: Session = {
    query: (sql, params) => client.query(sql, params),
    async one(sql, params) {
      const { rows } = await client.query(sql, params);
      if (rows.length !== 1) throw new Error(`expected one row, got ${rows.length}: ${sql}`);
      return rows[0];
    },
    async copyOut(sql, stages, signal) {
      const stream = client.query(copyTo(sql));
      await pipeline([stream, ...stages], { signal });
      // pg-copy-streams reads the row count from COPY's command tag.
      return stream.rowCount;
    },
    async copyIn(sql, source, stages, signal) {
      const sink = client.query(copyFrom(sql));
      await pipeline([source, ...stages, sink], { signal });
      return sink.rowCount;
    },
  };
  let failed: Error | undefined;
  try {
    if (opts.begin) await client.query(opts.begin);
    const result = await fn(session);
    if (opts.begin) await client.query('COMMIT');
    return result;
  } catch (err) {
    failed = err as Error;
    if (opts.begin) await client.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    // A connection that failed mid-COPY may be out of step with the server: do not reuse it.
    client.release(failed);
  }
}
