// Streaming reads for the data activities: a server-side cursor (one ordered pass, constant
// memory) and COPY … TO STDOUT (raw export). pg and pg-copy-streams stay in the adapter layer.
import type { Readable } from 'node:stream';
import pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';

export type Pool = pg.Pool;
export type Row = Record<string, any>;

/**
 * A pooled client for a long read. A connection cut while it is checked out (pg_terminate_backend,
 * a failover) also emits 'error' on the client, which the pool stops listening to meanwhile:
 * unheard, it would kill the worker. `release` drops a connection that failed instead of reusing it.
 */
export async function checkOut(pool: Pool): Promise<{ client: pg.PoolClient; release: (err?: Error) => void }> {
  const client = await pool.connect();
  let failed: Error | undefined;
  const onError = (err: Error) => void (failed ??= err);
  client.on('error', onError);
  let released = false;
  return {
    client,
    release: (err) => {
      if (released) return;
      released = true;
      const broken = err ?? failed;
      // A broken connection is dropped, and may still report its end: keep listening to it.
      if (!broken) client.removeListener('error', onError);
      client.release(broken);
    },
  };
}

/**
 * Runs `sql` through a cursor in a read-only transaction and hands rows to `onRows` in chunks of
 * `fetchSize`, awaiting each so a slow consumer holds back the reads. An aborted `signal` stops it
 * before the next FETCH, or cancels the FETCH running on the server (the first one sorts the whole
 * result, which can take long), and throws the signal's reason.
 */
export async function forEachRowChunk(
  pool: Pool,
  sql: string,
  params: unknown[],
  fetchSize: number,
  onRows: (rows: Row[]) => Promise<void> | void,
  signal?: AbortSignal,
): Promise<void> {
  const { client, release } = await checkOut(pool);
  let failed: Error | undefined;
  let cancelling: Promise<void> | undefined;
  let pid: number | undefined;
  const cancel = () => {
    if (pid !== undefined) cancelling ??= cancelBackend(pool, pid);
  };
  try {
    if (signal) {
      pid = (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid;
      signal.addEventListener('abort', cancel, { once: true });
    }
    await client.query('BEGIN READ ONLY');
    // Floats as text must round-trip exactly (shortest exact form, Postgres 12+); a server
    // configured with extra_float_digits = 0 would round them to 15 digits.
    await client.query('SET LOCAL extra_float_digits = 3');
    await client.query(`DECLARE history_cursor NO SCROLL CURSOR FOR ${sql}`, params);
    for (;;) {
      signal?.throwIfAborted();
      const { rows } = await client.query(`FETCH ${Number(fetchSize)} FROM history_cursor`);
      if (rows.length) await onRows(rows);
      if (rows.length < fetchSize) break;
    }
    await client.query('COMMIT');
  } catch (err) {
    failed = err as Error;
    await cancelling; // before ROLLBACK: a late cancel must not hit the next statement
    await client.query('ROLLBACK').catch(() => {});
    throw signal?.aborted ? signal.reason : err;
  } finally {
    signal?.removeEventListener('abort', cancel);
    await cancelling; // …nor, once released, another caller's query
    release(failed);
  }
}

/**
 * pg_cancel_backend on a connection of its own (the pool may have none free) for backend `pid`:
 * Postgres stops its running statement with SQLSTATE 57014.
 */
async function cancelBackend(pool: Pool, pid: number): Promise<void> {
  const other = new pg.Client(pool.options);
  try {
    await other.connect();
    await other.query('SELECT pg_cancel_backend($1)', [pid]);
  } catch {
    // The statement then ends on its own; the loop stops before the next FETCH.
  } finally {
    await other.end().catch(() => {});
  }
}

/** COPY (query) TO STDOUT: the stream of its bytes, and release() to call once it ends or fails. */
export async function copyOut(pool: Pool, copySql: string): Promise<{ stream: Readable; release: (err?: Error) => void }> {
  const { client, release } = await checkOut(pool);
  return { stream: client.query(copyTo(copySql)), release };
}

/** A pool's first connection with a short timeout, for preflight: true, or the error's message. */
export async function probe(pool: Pool, timeoutMs = 5_000): Promise<true | string> {
  try {
    const client = await Promise.race([
      pool.connect(),
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`no connection within ${timeoutMs} ms`)), timeoutMs).unref()),
    ]);
    try {
      await client.query('SELECT 1');
    } finally {
      client.release();
    }
    return true;
  } catch (err) {
    return (err as Error).message;
  }
}
