// Where the backfill's time goes: the same runs, split over the same lanes, through the
// backfill's read alone (readRuns), then read + build (RunHistoryBuilder.build, nothing written).
// The rest of the backfill's time is serialising the JSON and the UPDATEs.
import type pg from 'pg';
import { readRuns } from '../src/activities/data/metric-reader';
import { HISTOGRAM_KEY_SQL } from '../src/history/categorise';
import { RunHistoryBuilder } from '../src/history/builder';

/**
 * `order` 'id' is the backfill's (batches and the resume cursor follow run ids, which MLflow draws
 * at random: a group's rows lie all over the heap); 'start_time' groups runs logged together,
 * whose rows lie together, which is what a physically ordered backfill would read.
 */
export async function timeReadPaths(pool: pg.Pool, lanes: number, runsPerRead: number, build: boolean, order: 'id' | 'start_time' = 'id'): Promise<{ ms: number; points: number }> {
  const by = order === 'id' ? 'run_uuid COLLATE "C"' : 'start_time, run_uuid COLLATE "C"';
  const ids: string[] = (await pool.query(`SELECT run_uuid FROM runs ORDER BY ${by}`)).rows.map((r) => r.run_uuid);
  const per = Math.ceil(ids.length / lanes);
  let points = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: lanes }, (_, l) =>
      readRuns(pool, ids.slice(l * per, (l + 1) * per), { excludeKeys: HISTOGRAM_KEY_SQL, runsPerRead }, (run) => {
        if (!build) {
          for (const s of run.series) points += s.length;
          return;
        }
        const b = new RunHistoryBuilder(run.runUuid, { histograms: false });
        b.setTimes(run.endTime === null ? null : Number(run.endTime), run.startTime === null ? null : Number(run.startTime));
        for (const [k, v] of run.params) b.param(k, v);
        for (const [k, v] of run.tags) b.tag(k, v ?? '');
        for (const s of run.series) for (let i = 0; i < s.length; i++) b.metric(s.key, String(s.steps[i]), s.values[i]!, s.isNan[i] === 1);
        points += b.build().points;
      }),
    ),
  );
  return { ms: performance.now() - t0, points };
}
