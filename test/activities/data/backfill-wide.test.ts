// Runs as a real model logs them: 140 per-epoch keys × 50 epochs, unicode keys and one of
// exactly 250 characters, on top of the store's quirks (NaN, ±Inf, duplicates, steps-less
// finals, deleted runs). Each key must round-trip point for point and 0.5 must pass.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBackfillActivities, type BackfillBatch } from '../../../src/activities/data/backfill';
import { createVerifyActivities } from '../../../src/activities/data/verify';
import { placeMetric } from '../../../src/history/categorise';
import { decodeValue, encodeStoredValue, sameValue } from '../../../src/history/encoding';
import { LONG_KEY, UNICODE_KEYS, perEpochKeys } from '../../../dev/mlflow-store';
import { createDataWorld, type DataWorld } from '../../fixtures/mlflow-store';
import { MemoryObjectStore } from '../../support/memory-object-store';

const RUNS = 12;
const METRICS = 140;
const EPOCHS = 50;

describe('backfill of wide runs (140 metrics × 50 epochs)', () => {
  let w: DataWorld;
  beforeAll(async () => {
    w = await createDataWorld({ name: 'backfill_wide', runs: RUNS, epochs: EPOCHS, metrics: METRICS, app: { notCompleted: 0, withoutRunId: 0 } });
  });
  afterAll(() => w.close());

  it('seeds 140 per-epoch keys, unicode ones and a 250-character key, with the default quirks', async () => {
    expect(LONG_KEY).toHaveLength(250);
    const { rows } = await w.mlflow.query(
      `SELECT count(DISTINCT key)::int AS keys, max(char_length(key))::int AS longest, count(*) FILTER (WHERE is_nan)::int AS nans,
              count(*) FILTER (WHERE abs(value) = 1.7976931348623157e308)::int AS infs FROM metrics WHERE run_uuid = $1`,
      [w.runIds[3]],
    );
    expect(rows[0]).toMatchObject({ keys: METRICS + 7, longest: 250, nans: 1 });
    const { rows: deleted } = await w.mlflow.query(`SELECT count(*)::int AS n FROM runs WHERE lifecycle_stage = 'deleted'`);
    expect(deleted[0].n).toBe(1); // i = 6
    expect(perEpochKeys()).toHaveLength(25);
  });

  it('round-trips every key, unicode and 250 characters included, and passes 0.5', async () => {
    const acts = createBackfillActivities(w.databases);
    const ctx = w.ctx();
    let points = 0;
    for (const b of (await acts.planBackfill(ctx)).facts!.batches as BackfillBatch[]) points += Number((await acts.backfillBatch(ctx, b)).facts!.points);
    expect(points).toBeGreaterThan(RUNS * METRICS * EPOCHS);

    const { rows } = await w.app.query(`SELECT mlflow_run_id, training_history_json::text AS h FROM ml_platform_quicktest`);
    const caches = new Map(rows.map((r) => [r.mlflow_run_id, JSON.parse(r.h)]));
    for (const runId of [w.runIds[3], w.runIds[5], w.runIds[6]]) {
      const h = caches.get(runId)!;
      expect(h.epochs).toHaveLength(EPOCHS);
      for (const key of [...UNICODE_KEYS, LONG_KEY, 'layer_0/kernel/mean']) {
        const p = placeMetric(key);
        expect(p.kind, key).toBe('series');
        const cached: unknown[] = h[(p as { section: string }).section][(p as { name: string }).name];
        const { rows: store } = await w.mlflow.query(
          `SELECT DISTINCT ON (step) step, value, is_nan FROM metrics WHERE run_uuid = $1 AND key = $2 ORDER BY step, timestamp DESC, value DESC`,
          [runId, key],
        );
        expect(store, key).toHaveLength(EPOCHS);
        expect(cached, key).toHaveLength(EPOCHS);
        store.forEach((r, i) => expect(sameValue(decodeValue(cached[i])!, decodeValue(encodeStoredValue(Number(r.value), r.is_nan))!), `${key}@${r.step}`).toBe(true));
      }
    }
    expect(caches.get(w.runIds[3]).loss.val_loss[2]).toBe('NaN');
    expect(caches.get(w.runIds[5]).gradient_stats.query.norm[1]).toBe('Infinity');
    expect(caches.get(w.runIds[7]).loss.loss[1]).toBe(0.123456);
    expect(caches.get(w.runIds[4]).epochs[0]).toBe(-1);
    expect(Object.keys(caches.get(w.runIds[0]).other)).toContain(LONG_KEY);

    const res = await createVerifyActivities(w.databases, new MemoryObjectStore()).verifyMigration(w.ctx());
    expect(res.facts).toMatchObject({ runsVerified: RUNS, mismatches: 0, uncached: 0 });
  });
});
