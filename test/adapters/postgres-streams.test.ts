import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { forEachRowChunk } from '../../src/adapters/postgres-streams';

describe('forEachRowChunk', () => {
  let pool: pg.Pool;
  beforeAll(() => {
    pool = new pg.Pool({ connectionString: inject('pgAdminUrl'), max: 1 });
  });
  afterAll(() => pool.end());

  it('an abort cancels the FETCH running on the server and throws the reason; the connection stays usable', async () => {
    const stop = new AbortController();
    const reason = new Error('cancelled by the test');
    // The first FETCH runs the whole 60-second statement; the pool's one connection is busy with it.
    const run = forEachRowChunk(pool, 'SELECT pg_sleep(60) AS x', [], 10, () => {}, stop.signal);
    await new Promise((r) => setTimeout(r, 500));
    stop.abort(reason);
    await expect(run).rejects.toBe(reason);
    expect((await pool.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
  });

  it('stops before the next FETCH once aborted, after the chunk in hand', async () => {
    const stop = new AbortController();
    const seen: number[] = [];
    const run = forEachRowChunk(pool, 'SELECT g FROM generate_series(1, 100) g', [], 10, (rows) => {
      seen.push(...rows.map((r) => r.g));
      stop.abort(new Error('enough'));
    }, stop.signal);
    await expect(run).rejects.toThrow('enough');
    expect(seen).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  });
});
