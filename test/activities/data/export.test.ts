import { createHash } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import { MockActivityEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDataActivities } from '../../../src/activities/data';
import { manifestUri, type RawManifest } from '../../../src/activities/data/export';
import { createDataWorld, type DataWorld } from '../../fixtures/mlflow-store';
import { MemoryObjectStore } from '../../support/memory-object-store';

describe('raw export (0.6) and the phase-0 gate', () => {
  let w: DataWorld;
  let objects: MemoryObjectStore;
  beforeAll(async () => {
    w = await createDataWorld({ name: 'export', runs: 12, epochs: 4, app: { alreadyCached: 0 } });
    objects = new MemoryObjectStore();
  });
  afterAll(() => w.close());

  it('dry run plans one object per table and writes nothing', async () => {
    const { activities } = createDataActivities({ databases: w.databases, objects });
    const res = await activities.exportRawTables(w.ctx({ dryRun: true }));
    expect(res.actions.map((a) => a.resource)).toContain('gs://demo-backups/mlflow-decommission/m-test/raw/metrics.csv.gz');
    expect(res.actions.at(-1)!.resource).toBe('gs://demo-backups/mlflow-decommission/m-test/raw/manifest.json');
    expect(objects.objects.size).toBe(0);
  });

  it('exports every table; the manifest matches store counts and the sha256 of the objects', async () => {
    const { activities } = createDataActivities({ databases: w.databases, objects });
    const ctx = w.ctx();
    const res = await activities.exportRawTables(ctx);
    const manifest = JSON.parse((await objects.read(manifestUri(ctx)))!.toString()) as RawManifest;
    const { rows: tables } = await w.mlflow.query(`SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1`);
    expect(manifest.tables.map((t) => t.table).sort()).toEqual(tables.map((t) => t.table_name).sort());
    for (const e of manifest.tables) {
      const body = (await objects.read(e.uri))!;
      expect(createHash('sha256').update(body).digest('hex')).toBe(e.sha256);
      expect(body.length).toBe(e.bytes);
      const { rows } = await w.mlflow.query(`SELECT count(*)::int AS n FROM "${e.table}"`);
      expect(e.rows, e.table).toBe(rows[0].n);
    }
    const metrics = gunzipSync((await objects.read(manifest.tables.find((t) => t.table === 'metrics')!.uri))!).toString();
    expect(metrics.split('\n')[0]).toBe('key,value,timestamp,run_uuid,step,is_nan');
    expect(res.facts).toMatchObject({ tables: manifest.tables.length });
  });

  it('checkPhase0 passes after backfill, verify and export, and fails when the store changed since', async () => {
    const { activities } = createDataActivities({ databases: w.databases, objects });
    const ctx = w.ctx();
    const planned = await activities.planBackfill(ctx);
    for (const b of planned.facts!.batches as any[]) await activities.backfillBatch(ctx, b);
    const verified = await activities.verifyMigration(ctx);
    const gate = await activities.checkPhase0({ ...ctx, facts: { '0.5': verified.facts } });
    expect(gate.checks.map((c) => [c.name, c.ok])).toEqual([
      ['completeness', true],
      ['fidelity', true],
      ['raw export manifest', true],
    ]);
    await w.mlflow.query(`INSERT INTO tags (key, value, run_uuid) VALUES ('late', 'x', $1)`, [w.runIds[0]]);
    const after = await activities.checkPhase0({ ...ctx, facts: {} });
    const detail = after.checks.find((c) => c.name === 'raw export manifest')!.detail;
    expect(detail).toMatch(/tags: \d+ rows exported, \d+ in the store now/);
    // 0.6 cannot run again inside a running migration: the advice is what an operator can send.
    expect(detail).toMatch(/`rollback`.*start the migration again.*`retry` the gate/);
    expect(detail).not.toMatch(/run step 0.6/);
    expect(after.checks.find((c) => c.name === 'fidelity')!.ok).toBe(false);
  });

  it('a cancelled 0.6 stops its stream at the next chunk and writes no manifest', async () => {
    const store = new MemoryObjectStore();
    const { activities } = createDataActivities({ databases: w.databases, objects: store });
    const env = new MockActivityEnvironment();
    const beats: unknown[] = [];
    env.on('heartbeat', (d: { bytes?: number }) => {
      beats.push(d);
      if (d.bytes !== undefined) env.cancel(); // the first chunk of the first table
    });
    const ctx = w.ctx({ migrationId: 'm-cancelled' });
    await expect(env.run(activities.exportRawTables, ctx)).rejects.toMatchObject({ name: 'AbortError' });
    expect(beats).toHaveLength(1);
    expect(await store.read(manifestUri(ctx))).toBeUndefined();
    expect([...store.objects.keys()]).toEqual([]);
  });
});
