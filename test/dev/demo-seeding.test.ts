import pg from 'pg';
import { describe, expect, inject, it } from 'vitest';
import { CUTOVER } from '../../dev/demo-data';
import { createAppTable, seedAppRows } from '../../dev/mlflow-store';
import { createDatabase } from '../../dev/postgres';
import { cloudTargetSchema } from '../../src/config/schema';

describe('demo seeding', () => {
  // One hour apart, 10,000 QuickTests would run 14 months past 2024-01-01, well after the cutover
  // (2024-06-01): 1.1 and 2.1 would then want a training_metrics.json for thousands of them.
  it('finishes every pre-cutover QuickTest before the cutover date at 10,000 runs, and keeps them one hour apart when they fit', async () => {
    const client = new pg.Client({ connectionString: await createDatabase(inject('pgAdminUrl'), 'demo_seeding') });
    await client.connect();
    try {
      const t = cloudTargetSchema.shape.appTable.parse({ finishedAt: 'finished_at' });
      await createAppTable(client, t);
      const ids = (n: number, p: string) => Array.from({ length: n }, (_, i) => `${p}${i}`);
      await seedAppRows(client, t, { runIds: ids(10_000, 'big-'), finishedFrom: '2024-01-01T00:00:00Z', finishedBefore: CUTOVER });
      await seedAppRows(client, t, { runIds: ids(100, 'small-'), finishedFrom: '2024-01-01T00:00:00Z', finishedBefore: CUTOVER });
      const { rows } = await client.query(
        `SELECT left(${t.runId}, 3) AS p, count(*)::int AS n, max(finished_at) < $1::timestamptz AS before, extract(epoch FROM max(finished_at) - min(finished_at))::int AS span_s
           FROM ${t.table} GROUP BY 1 ORDER BY 1`,
        [CUTOVER],
      );
      expect(rows.map((r) => [r.p, r.n, r.before])).toEqual([['big', 10_000, true], ['sma', 100, true]]);
      expect(rows[1].span_s).toBe(99 * 3600);
    } finally {
      await client.end();
    }
  });
});
