import { CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBackfillActivities, type BackfillBatch } from '../../../src/activities/data/backfill';
import { createBackfillCountActivities } from '../../../src/activities/data/backfill-counts';
import { trainingMetricsSchema } from '../../../src/history/training-metrics';
import type { StepResult } from '../../../src/types';
import { createDataWorld, type DataWorld } from '../../fixtures/mlflow-store';

async function histories(w: DataWorld): Promise<Map<string, string | null>> {
  const { rows } = await w.app.query(`SELECT mlflow_run_id, training_history_json::text AS h FROM ml_platform_quicktest WHERE status = 'completed' AND mlflow_run_id <> '' ORDER BY id`);
  return new Map(rows.map((r) => [r.mlflow_run_id, r.h]));
}

async function backfillAll(w: DataWorld, force = false) {
  const acts = createBackfillActivities(w.databases);
  const ctx = w.ctx({ force });
  const planned = await acts.planBackfill(ctx);
  const batches = planned.facts!.batches as BackfillBatch[];
  let runs = 0;
  for (const b of batches) runs += Number((await acts.backfillBatch(ctx, b)).facts!.runs);
  return { batches, runs };
}

describe('backfill (0.2, 0.3)', () => {
  let w: DataWorld;
  beforeAll(async () => {
    w = await createDataWorld({ name: 'backfill', runs: 30, epochs: 6, app: { alreadyCached: 4, notCompleted: 3, withoutRunId: 2 } });
  });
  afterAll(() => w.close());

  it('dry run plans the batches without writing', async () => {
    const acts = createBackfillActivities(w.databases);
    const res = await acts.planBackfill(w.ctx({ dryRun: true }));
    expect(res.actions.filter((a) => a.call === 'postgres.update')).toHaveLength(3); // 26 runs to do, batches of 10
    expect(res.actions.every((a) => !a.resource.includes('postgres://'))).toBe(true);
    const batch = await acts.backfillBatch(w.ctx({ dryRun: true }), { index: 0, runs: 10, fromRunId: '0', toRunId: 'f' });
    expect(batch.summary).toMatch(/would/);
    expect([...(await histories(w)).values()].filter((h) => h !== null)).toHaveLength(4);
  });

  it('assesses the scope as the seed counts it', async () => {
    const res = await createBackfillActivities(w.databases).assessScope(w.ctx());
    expect(res.facts).toEqual({ completed: 32, withRunId: 30, cached: 4, toDo: 26 });
  });

  it('writes the appendix schema with NaN and Inf encoded, duplicates resolved, negative steps kept', async () => {
    const { runs } = await backfillAll(w);
    expect(runs).toBe(26);
    const h = await histories(w);
    const parse = (i: number) => JSON.parse(h.get(w.runIds[i])!);
    for (const id of w.runIds.slice(4)) expect(trainingMetricsSchema.safeParse(JSON.parse(h.get(id)!)).success, id).toBe(true);
    const nan = parse(10); // i % 7 = 3
    expect(nan.epochs).toEqual([0, 1, 2, 3, 4, 5]);
    expect(nan.loss.val_loss[2]).toBe('NaN');
    const inf = parse(5); // i % 11 = 5
    expect(inf.gradient_stats.query.norm[1]).toBe('Infinity');
    expect(inf.weight_stats.query.min[1]).toBe('-Infinity');
    expect(inf.gradient.total).toHaveLength(6);
    expect(Object.keys(inf.gradient).sort()).toEqual(['candidate', 'query', 'total']);
    const dup = parse(7); // i % 5 = 2: later timestamp wins, then the greater value
    expect(dup.loss.loss[1]).toBe(0.123456);
    expect(dup.loss.val_loss[0]).toBe(9.5);
    const neg = parse(17); // i % 13 = 4
    expect(neg.epochs[0]).toBe(-1);
    expect(neg.other.warmup_lr).toEqual([0.001, 0.002, null, null, null, null, null]);
    expect(neg.loss.loss[0]).toBeNull();
    const fin = parse(9); // i % 9 = 0: an 8000-character param
    expect(fin.params.notes).toHaveLength(8000);
    expect(fin.params.optimizer).toBe('adagrad');
    expect(Object.keys(fin.final_metrics).sort()).toEqual(['final_loss', 'final_val_loss', 'test_loss', 'test_recall_at_10', 'test_recall_at_100', 'test_recall_at_5', 'test_recall_at_50']);
    expect(typeof fin.final_metrics.test_loss).toBe('number');
    expect(fin.saved_at).toBe(new Date(1700000000000 + 9 * 3600000 + 6 * 1000 + 500).toISOString());
    expect(fin.available).toBe(true);
    // Already-cached rows are left alone without force.
    expect(JSON.parse(h.get(w.runIds[0])!)).toEqual({ available: true, cached_by: 'django' });
  });

  it('rerun with force writes identical JSON', async () => {
    await backfillAll(w, true);
    const first = await histories(w);
    const { runs } = await backfillAll(w, true);
    expect(runs).toBe(30);
    expect(await histories(w)).toEqual(first);
  });

  it('counts the runs and values the app table holds (0.3 totals, whatever the attempts added up)', async () => {
    const acts = createBackfillActivities(w.databases);
    let points = 0;
    for (const b of (await acts.planBackfill(w.ctx({ force: true }))).facts!.batches as BackfillBatch[]) points += Number((await acts.backfillBatch(w.ctx({ force: true }), b)).facts!.points);
    const counts = createBackfillCountActivities(w.databases);
    // The hostile runs (i = 8, 27) log final___proto__ and test_constructor at two steps; a final keeps its last value.
    expect((await counts.countBackfilled(w.ctx())).facts).toEqual({ runs: 30, points: points - 2 * 2 });
    // A crash after 12 runs, then a resumed attempt that writes the rest: the table still holds all 30.
    await w.app.query(`UPDATE ml_platform_quicktest SET training_history_json = NULL WHERE mlflow_run_id = ANY($1)`, [[...w.runIds].sort().slice(12)]);
    const partial = await counts.countBackfilled(w.ctx());
    expect(partial.facts).toMatchObject({ runs: 12 });
    expect(partial.summary).toMatch(/^12 runs cached in the app table, holding \d+ values$/);
  });

  it('resumes from its heartbeat cursor', async () => {
    await w.app.query(`UPDATE ml_platform_quicktest SET training_history_json = NULL`);
    const sorted = [...w.runIds].sort();
    const acts = createBackfillActivities(w.databases);
    const env = new MockActivityEnvironment({ heartbeatDetails: { runsDone: 5, runsTotal: 30, points: 0, cursor: sorted[4] } });
    const beats: any[] = [];
    env.on('heartbeat', (d) => beats.push(d));
    const batch: BackfillBatch = { index: 0, runs: 30, fromRunId: sorted[0], toRunId: sorted[29] };
    const res = (await env.run(acts.backfillBatch, w.ctx(), batch)) as StepResult;
    expect(res.facts!.runs).toBe(25);
    expect(res.summary).toContain(`resumed after ${sorted[4]}`);
    const h = await histories(w);
    expect(sorted.slice(0, 5).map((id) => h.get(id))).toEqual([null, null, null, null, null]);
    expect(sorted.slice(5).every((id) => h.get(id) !== null)).toBe(true);
    expect(beats.at(-1)).toMatchObject({ runsDone: 25, runsTotal: 25, cursor: sorted[29] });
  });

  it('a cancelled batch stops before its next read and writes nothing more', async () => {
    await w.app.query(`UPDATE ml_platform_quicktest SET training_history_json = NULL`);
    const sorted = [...w.runIds].sort();
    const env = new MockActivityEnvironment();
    env.cancel();
    const batch: BackfillBatch = { index: 0, runs: 30, fromRunId: sorted[0], toRunId: sorted[29] };
    await expect(env.run(createBackfillActivities(w.databases).backfillBatch, w.ctx(), batch)).rejects.toBeInstanceOf(CancelledFailure);
    expect([...(await histories(w)).values()].filter((h) => h !== null)).toEqual([]);
  });
});
