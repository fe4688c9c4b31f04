import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBackfillActivities, type BackfillBatch } from '../../../src/activities/data/backfill';
import { createHistogramActivities } from '../../../src/activities/data/histograms';
import { expectedHistories, type ExpectedHistory } from '../../../src/activities/data/expected-history';
import { createVerifyActivities } from '../../../src/activities/data/verify';
import { compareChunk, type Mismatch } from '../../../src/activities/data/verify-compare';
import { createDataWorld, type DataWorld } from '../../fixtures/mlflow-store';
import { MemoryObjectStore } from '../../support/memory-object-store';
import { failureOf } from '../../support/failures';

async function backfillAll(w: DataWorld, force = false) {
  const acts = createBackfillActivities(w.databases);
  const ctx = w.ctx({ force });
  for (const b of (await acts.planBackfill(ctx)).facts!.batches as BackfillBatch[]) await acts.backfillBatch(ctx, b);
}

describe('verify (0.5)', () => {
  let w: DataWorld;
  beforeAll(async () => {
    w = await createDataWorld({ name: 'verify', runs: 25, epochs: 5, app: { alreadyCached: 3 } });
  });
  afterAll(() => w.close());

  it('fails completeness while experiments lack a cache, naming them', async () => {
    const f = await failureOf(createVerifyActivities(w.databases, new MemoryObjectStore()).verifyMigration(w.ctx()));
    expect(f.type).toBe('VerificationFailed');
    expect(f.nonRetryable).toBe(true);
    expect(f.message).toMatch(/22 completed experiment\(s\) with an MLflow run id have no training_history_json/);
    expect(f.message).toMatch(/Send retry \{"step": "0.5"\} to rewrite the 3 mismatched run\(s\) .* and cache the uncached ones/);
  });

  it('flags a stale pre-existing cache, and passes after a forced backfill', async () => {
    await backfillAll(w);
    const f = await failureOf(createVerifyActivities(w.databases, new MemoryObjectStore()).verifyMigration(w.ctx()));
    expect(f.message).toMatch(/mismatch/);
    expect(f.message).toContain(w.runIds[0]);
    await backfillAll(w, true);
    const res = await createVerifyActivities(w.databases, new MemoryObjectStore()).verifyMigration(w.ctx());
    expect(res.facts).toMatchObject({ runsVerified: 25, mismatches: 0, uncached: 0 });
    expect(Number(res.facts!.points)).toBeGreaterThan(25 * 5 * 25);
  });

  it('lists mismatches by run and key after a point is altered', async () => {
    const run = w.runIds[10]; // has a NaN at val_loss step 2
    await w.app.query(
      `UPDATE ml_platform_quicktest SET training_history_json = jsonb_set(jsonb_set(training_history_json, '{loss,val_loss,2}', '0.5'), '{gradient_stats,query,norm,3}', '"Infinity"') WHERE mlflow_run_id = $1`,
      [run],
    );
    const f = await failureOf(createVerifyActivities(w.databases, new MemoryObjectStore()).verifyMigration(w.ctx()));
    const details = f.details![0] as { mismatchList: Array<{ runId: string; key: string; problem: string }>; mismatches: number };
    expect(details.mismatches).toBe(2);
    expect(details.mismatchList.map((m) => `${m.runId} ${m.key}`).sort()).toEqual([`${run} gradients/query/norm`, `${run} val_loss`]);
    expect(details.mismatchList.find((m) => m.key === 'val_loss')!.problem).toBe('step 2: NaN in the store, 0.5 in the cache');
  });

  it('a retry of 0.5 rewrites exactly the mismatched runs it saved and caches the uncached, then passes', async () => {
    await backfillAll(w, true);
    const objects = new MemoryObjectStore();
    const [wrong, ...uncached] = [w.runIds[4], w.runIds[11], w.runIds[12]];
    await w.app.query(`UPDATE ml_platform_quicktest SET training_history_json = jsonb_set(training_history_json, '{loss,loss,1}', '7') WHERE mlflow_run_id = $1`, [wrong]);
    await w.app.query(`UPDATE ml_platform_quicktest SET training_history_json = NULL WHERE mlflow_run_id = ANY($1)`, [uncached]);
    const before = await w.app.query(`SELECT mlflow_run_id, xmin::text AS version FROM ml_platform_quicktest WHERE mlflow_run_id = ANY($1) ORDER BY id`, [w.runIds.filter((id) => id !== wrong && !uncached.includes(id))]);
    const f = await failureOf(createVerifyActivities(w.databases, objects).verifyMigration(w.ctx()));
    expect(f.message).toMatch(/Send retry \{"step": "0.5"\} to rewrite the 1 mismatched run\(s\) listed in gs:\/\/demo-backups\/.*\/verify\/mismatched-runs.json and cache the uncached ones/);
    expect(f.message).toMatch(/send rollback/);
    expect(JSON.parse((await objects.read('gs://demo-backups/mlflow-decommission/m-test/verify/mismatched-runs.json'))!.toString())).toEqual({ runIds: [wrong], fillUncached: true });
    const res = await createVerifyActivities(w.databases, objects).verifyMigration(w.ctx());
    expect(res.summary).toMatch(/^retry rewrote 1 mismatched run\(s\), cached 2 uncached run\(s\); all 25 migrated runs match/);
    // No other row was written (xmin changes on every UPDATE).
    const after = await w.app.query(`SELECT mlflow_run_id, xmin::text AS version FROM ml_platform_quicktest WHERE mlflow_run_id = ANY($1) ORDER BY id`, [before.rows.map((r) => r.mlflow_run_id)]);
    expect(after.rows).toEqual(before.rows);
  });

  it('itemises the differences of the first runs only; each further run is one mismatch', async () => {
    await backfillAll(w, true);
    const runs = [w.runIds[1], w.runIds[2]].sort();
    await w.app.query(`UPDATE ml_platform_quicktest SET training_history_json = jsonb_set(jsonb_set(training_history_json, '{loss,loss,1}', '7'), '{loss,val_loss,1}', '8') WHERE mlflow_run_id = ANY($1)`, [runs]);
    const expected: ExpectedHistory[] = [];
    await expectedHistories(w.databases, w.target, runs, async (r) => {
      expected.push(...r);
    });
    const found: Mismatch[] = [];
    await compareChunk(w.databases, w.target, runs, expected, (m) => found.push(m), { runs: 1 });
    expect(found.map((m) => m.key)).toEqual(expect.arrayContaining(['loss', 'val_loss', '(cache)']));
    expect(found).toHaveLength(3);
    expect(found.find((m) => m.key === '(cache)')!.problem).toMatch(/not itemised/);
    await backfillAll(w, true);
  });

  it('verifies a deterministic sample when fidelitySample is set', async () => {
    const sampled = { ...w.target, data: { ...w.target.data, fidelitySample: 5 } };
    await backfillAll(w, true);
    const a = await createVerifyActivities(w.databases, new MemoryObjectStore()).verifyMigration(w.ctx({ target: sampled }));
    const b = await createVerifyActivities(w.databases, new MemoryObjectStore()).verifyMigration(w.ctx({ target: sampled }));
    expect(a.facts).toMatchObject({ runsVerified: 5, mismatches: 0 });
    expect(a.facts).toEqual(b.facts);
  });
});

describe('histograms (0.4)', () => {
  let w: DataWorld;
  beforeAll(async () => {
    w = await createDataWorld({ name: 'histograms', runs: 6, epochs: 3, histogramBins: 4, app: { alreadyCached: 0 } });
  });
  afterAll(() => w.close());

  it('skips by default (option A) and verification ignores histogram keys', async () => {
    await backfillAll(w);
    const res = await createHistogramActivities(w.databases).cacheHistograms(w.ctx());
    expect(res.summary).toMatch(/skipped: option A/);
    expect((await createVerifyActivities(w.databases, new MemoryObjectStore()).verifyMigration(w.ctx())).facts).toMatchObject({ mismatches: 0 });
  });

  it('includes them with option B, in the shape the appendix gives, and they verify', async () => {
    const include = { ...w.target, data: { ...w.target.data, histograms: 'include' as const } };
    const res = await createHistogramActivities(w.databases).cacheHistograms(w.ctx({ target: include }));
    expect(res.facts).toMatchObject({ histograms: 'include', runs: 6 });
    const { rows } = await w.app.query(`SELECT training_history_json AS h FROM ml_platform_quicktest WHERE mlflow_run_id = $1`, [w.runIds[0]]);
    const hist = rows[0].h.weight_stats.query.histogram;
    expect(hist.bin_edges).toEqual([-1, -0.5, 0, 0.5, 1]);
    expect(hist.steps).toEqual([0, 1, 2]);
    expect(hist.counts).toHaveLength(3);
    expect(hist.counts[0]).toHaveLength(4);
    expect((await createVerifyActivities(w.databases, new MemoryObjectStore()).verifyMigration(w.ctx({ target: include }))).facts).toMatchObject({ mismatches: 0, runsVerified: 6 });
  });
});
