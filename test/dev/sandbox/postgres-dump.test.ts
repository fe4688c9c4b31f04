// The sandbox's Cloud SQL export and import (a real dump of a real database) keep every byte:
// multi-byte names are never cut where a COPY chunk ends.
import { describe, expect, inject, it } from 'vitest';
import pg from 'pg';
import { createDatabase } from '../../../dev/postgres';
import { dumpToBuffer, loadDump } from '../../../dev/sandbox/services/postgres-dump';

describe('sandbox SQL dump', () => {
  it('round-trips 250-character multi-byte values across COPY chunk boundaries', async () => {
    const from = await createDatabase(inject('pgAdminUrl'), 'dump_multibyte_from');
    const to = await createDatabase(inject('pgAdminUrl'), 'dump_multibyte_to');
    const value = (i: number) => `${'🚀שלום'.repeat(50)}${i}`.slice(0, 250);
    const a = new pg.Client({ connectionString: from });
    await a.connect();
    try {
      await a.query('CREATE TABLE metrics (key varchar(250) NOT NULL, n int NOT NULL)');
      // Thousands of rows of 4-byte and 2-byte characters: many chunk ends fall inside one.
      await a.query(`INSERT INTO metrics SELECT $1 || '', g FROM generate_series(1, 4000) g`, [value(0)]);
      const dump = await dumpToBuffer(from, { gzip: true, label: 'test' });
      await loadDump(to, dump, { gzip: true });
    } finally {
      await a.end();
    }
    const b = new pg.Client({ connectionString: to });
    await b.connect();
    try {
      const { rows } = await b.query<{ n: number; same: number }>('SELECT count(*)::int AS n, count(*) FILTER (WHERE key = $1)::int AS same FROM metrics', [value(0)]);
      expect(rows[0]).toEqual({ n: 4000, same: 4000 });
    } finally {
      await b.end();
    }
  });
});
