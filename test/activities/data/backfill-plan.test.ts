// 0.3's planner at the size where its bounds bite: 10k runs in batches of 1.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBackfillActivities, type BackfillBatch } from '../../../src/activities/data/backfill';
import { createDataWorld, seedAppRows, type DataWorld } from '../../fixtures/mlflow-store';

const MANY = 10_000;
/** Temporal's blob size limit warns from 512 KB; the plan stays well under half of that. */
const PAYLOAD_LIMIT = 256 * 1024;

const byteSize = (v: unknown) => Buffer.byteLength(JSON.stringify(v));

describe('planBackfill (0.3) on a big store', () => {
  let w: DataWorld;
  let toDo: string[];
  beforeAll(async () => {
    w = await createDataWorld({ name: 'backfill_plan', runs: 2, epochs: 1, data: { batchSize: 1 }, app: { notCompleted: 0, withoutRunId: 0 } });
    // The planner reads only the app table: run ids shaped like MLflow's (32 hex), without their store rows.
    const extra = Array.from({ length: MANY - w.runIds.length }, (_, i) => `${i.toString(16).padStart(8, '0')}${'c'.repeat(24)}`);
    await seedAppRows(w.app, w.target.appTable, { runIds: extra });
    toDo = [...w.runIds, ...extra].sort((a, b) => (Buffer.compare(Buffer.from(a), Buffer.from(b))));
  });
  afterAll(() => w.close());

  it('grows the batches so there are at most MAX_BATCHES, covering every run once, in a bounded payload', async () => {
    const res = await createBackfillActivities(w.databases).planBackfill(w.ctx());
    const batches = res.facts!.batches as BackfillBatch[];
    expect(batches.length).toBeLessThanOrEqual(256);
    expect(batches.length).toBeGreaterThan(128); // still many, so many lanes have work
    expect(batches.reduce((n, b) => n + b.runs, 0)).toBe(MANY);
    // Consecutive, non-overlapping ranges (C collation) that start and end on the store's ids.
    expect(batches[0]!.fromRunId).toBe(toDo[0]);
    expect(batches.at(-1)!.toRunId).toBe(toDo.at(-1));
    for (let i = 1; i < batches.length; i++) expect(Buffer.compare(Buffer.from(batches[i - 1]!.toRunId), Buffer.from(batches[i]!.fromRunId))).toBe(-1);
    expect(byteSize(res)).toBeLessThan(PAYLOAD_LIMIT);
    expect(res.summary).toMatch(/10000 runs to backfill in \d+ batch\(es\) of up to 40, 4 at a time/);
  });

  it('keeps a dry run plan bounded too', async () => {
    const actions = await createBackfillActivities(w.databases).planBackfill(w.ctx({ dryRun: true }));
    expect(byteSize(actions)).toBeLessThan(PAYLOAD_LIMIT);
  });

  it("names the lanes: the target's data.backfillLanes, else the worker's activity slots", async () => {
    expect((await createBackfillActivities(w.databases, 12).planBackfill(w.ctx())).facts!.lanes).toBe(12);
    const target = { ...w.target, data: { ...w.target.data, backfillLanes: 20 } };
    expect((await createBackfillActivities(w.databases, 12).planBackfill(w.ctx({ target }))).facts!.lanes).toBe(20);
  });
});
