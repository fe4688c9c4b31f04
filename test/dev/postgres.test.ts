import pg from 'pg';
import { describe, expect, inject, it } from 'vitest';
import { createDatabase } from '../../dev/postgres';

describe('dev postgres', () => {
  it('serves a real server on which tests create their own databases', async () => {
    const url = await createDatabase(inject('pgAdminUrl'), 'pg_smoke');
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    const { rows } = await client.query('select current_database() as db, version() as v');
    await client.end();
    expect(rows[0].db).toBe('pg_smoke');
    expect(rows[0].v).toMatch(/PostgreSQL/);
  });
});
