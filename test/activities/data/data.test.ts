import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabases } from '../../../src/adapters/postgres';
import { createDataActivities } from '../../../src/activities/data';
import { createDataWorld, type DataWorld } from '../../fixtures/mlflow-store';
import { MemoryObjectStore } from '../../support/memory-object-store';
import { failureOf } from '../../support/failures';

describe('data preflight, reference audit and cutover checks', () => {
  let w: DataWorld;
  const objects = new MemoryObjectStore();
  beforeAll(async () => {
    w = await createDataWorld({
      name: 'dataacts',
      runs: 8,
      epochs: 3,
      app: { alreadyCached: 0, finishedFrom: '2024-01-01T00:00:00Z' },
      target: { appTable: { finishedAt: 'finished_at' } },
      data: { referenceTables: [{ table: 'ml_platform_deployment', column: 'run_id' }], cutoverDate: '2024-01-01T05:30:00Z', minPostCutoverExperiments: 2 },
    });
    await w.app.query(`CREATE TABLE ml_platform_deployment (id serial primary key, run_id varchar(64))`);
    await w.app.query(`INSERT INTO ml_platform_deployment (run_id) SELECT unnest($1::text[])`, [[w.runIds[0], w.runIds[1], w.runIds[1], 'deadbeef', null]]);
  });
  afterAll(() => w.close());

  it('preflight passes on a reachable store and app table', async () => {
    const checks = await createDataActivities({ databases: w.databases, objects }).preflight(w.ctx());
    expect(checks.filter((c) => !c.ok)).toEqual([]);
    expect(checks.map((c) => c.name)).toEqual(['mlflow database (MLFLOW_DATABASE_URL)', 'app database (APP_DATABASE_URL)', 'mlflow schema revision', 'mlflow schema', 'app table']);
  });

  it('preflight names the env var, never the URL, when a database is unreachable, and lists missing columns', async () => {
    const databases = createDatabases({ MLFLOW_DATABASE_URL: 'postgres://u:secret@127.0.0.1:1/x', APP_DATABASE_URL: (w.app as any).options.connectionString });
    const target = { ...w.target, appTable: { ...w.target.appTable, displayName: 'title' } };
    const checks = await createDataActivities({ databases, objects }).preflight(w.ctx({ target }));
    await databases.close();
    const mlflow = checks.find((c) => c.name.startsWith('mlflow database'))!;
    expect(mlflow.ok).toBe(false);
    expect(mlflow.detail).toContain('MLFLOW_DATABASE_URL');
    expect(mlflow.detail).not.toContain('secret');
    expect(checks.find((c) => c.name === 'app table')!.detail).toMatch(/missing ml_platform_quicktest.title/);
  });

  it('audits reference tables against the store, listing missing ids', async () => {
    const res = await createDataActivities({ databases: w.databases, objects }).activities.auditReferences(w.ctx());
    expect(res.facts).toEqual({
      tables: [{ table: 'ml_platform_deployment', column: 'run_id', rows: 5, distinctIds: 3, missing: 1, missingIds: ['deadbeef'] }],
      missing: 1,
    });
  });

  it('the phase-0 gate lists dangling references by table and id', async () => {
    const { checks } = await createDataActivities({ databases: w.databases, objects }).activities.checkPhase0(w.ctx());
    const refs = checks.find((c) => c.name === 'references ml_platform_deployment.run_id')!;
    expect(refs.ok).toBe(false);
    expect(refs.detail).toMatch(/^1 run id\(s\) in ml_platform_deployment.run_id are not in the MLflow store: deadbeef\. /);
    await w.app.query(`UPDATE ml_platform_deployment SET run_id = NULL WHERE run_id = 'deadbeef'`);
    const after = await createDataActivities({ databases: w.databases, objects }).activities.checkPhase0(w.ctx());
    expect(after.checks.find((c) => c.name === 'references ml_platform_deployment.run_id')).toMatchObject({ ok: true });
    await w.app.query(`INSERT INTO ml_platform_deployment (run_id) VALUES ('deadbeef')`);
  });

  it('cutover check fails without a cutover date, saying what to set', async () => {
    const target = { ...w.target, data: { ...w.target.data, cutoverDate: undefined } };
    const f = await failureOf(createDataActivities({ databases: w.databases, objects }).activities.checkCutover(w.ctx({ target })));
    expect(f.type).toBe('PreconditionFailed');
    expect(f.message).toMatch(/set data.cutoverDate/);
  });

  it('cutover check validates training_metrics.json and compares it with the cache', async () => {
    const acts = createDataActivities({ databases: w.databases, objects }).activities;
    // Rows 6..8 finished after the cutover (05:30): they need files and matching caches.
    const { rows } = await w.app.query(`SELECT id, gcs_artifacts_path AS p FROM ml_platform_quicktest WHERE finished_at > '2024-01-01T05:30:00Z' AND status = 'completed' ORDER BY id`);
    expect(rows).toHaveLength(3);
    // Python's json.dumps writes NaN bare; the check reads it.
    const file = (v: string) => `{"saved_at": "2024-01-02T00:00:00Z", "available": true, "epochs": [0, 1], "loss": {"loss": [0.5, ${v}]}, "gradient": {}, "weight_stats": {"query": {}, "candidate": {}}, "gradient_stats": {"query": {}, "candidate": {}}, "final_metrics": {"test_loss": 0.3}, "params": {"epochs": 2}}`;
    for (const r of rows) {
      await objects.write(`${r.p}/training_metrics.json`, file('NaN'));
      const cache = JSON.parse(file('"NaN"'));
      await w.app.query(`UPDATE ml_platform_quicktest SET training_history_json = $2 WHERE id = $1`, [r.id, cache]);
    }
    const ok = await acts.checkCutover(w.ctx());
    expect(ok.facts).toEqual({ experiments: rows.map((r) => r.id).reverse() });

    await objects.write(`${rows[0].p}/training_metrics.json`, file('0.25'));
    await objects.write(`${rows[1].p}/training_metrics.json`, '{"available": true}');
    const f = await failureOf(acts.checkCutover(w.ctx()));
    expect(f.message).toMatch(/the cache differs from .* in loss/);
    expect(f.message).toMatch(/does not follow the appendix schema/);
  });
});
