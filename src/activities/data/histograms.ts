// 0.4: option A (default) leaves histograms behind, as the plan recommends; option B rewrites the
// cache of every run whose store holds histogram series, with weight_stats/gradient_stats
// {tower}.histogram filled in (docs/history-mapping.md).
import type { Databases } from '../../adapters/postgres';
import { forEachRowChunk } from '../../adapters/postgres-streams';
import type { Target } from '../../config/schema';
import { HISTOGRAM_KEY_SQL } from '../../history/categorise';
import type { StepResult } from '../../types';
import { mlflowPool, appResource, mlflowResource } from './app-table';
import { backfillRange } from './backfill';
import { cancellationSignal, lastHeartbeat, type BackfillProgress } from '../heartbeat';
import { defineShapeStep } from '../step';

/** A scan of all of `metrics`: through a cursor, so a cancelled 0.4 stops it on the server. */
async function runsWithHistograms(databases: Databases, target: Target): Promise<string[]> {
  const ids: string[] = [];
  await forEachRowChunk(
    mlflowPool(databases, target),
    `SELECT DISTINCT run_uuid COLLATE "C" AS run_uuid FROM metrics WHERE ${HISTOGRAM_KEY_SQL} ORDER BY 1`,
    [],
    10_000,
    (rows) => void ids.push(...rows.map((r) => r.run_uuid as string)),
    cancellationSignal(),
  );
  return ids;
}

export function createHistogramActivities(databases: Databases) {
  return {
    cacheHistograms: defineShapeStep<Target>({
      async plan(ctx) {
        if (ctx.target.data.histograms === 'skip') return [];
        const runs = await runsWithHistograms(databases, ctx.target);
        return [
          { call: 'postgres.select', resource: mlflowResource(ctx.target, 'metrics'), description: `read histogram series of ${runs.length} run(s)` },
          { call: 'postgres.update', resource: appResource(ctx.target, ctx.target.appTable.history), description: `rewrite ${runs.length} cache(s) with histograms` },
        ];
      },
      async run(ctx): Promise<StepResult> {
        if (ctx.target.data.histograms === 'skip') {
          return {
            summary: 'skipped: option A, histograms are not preserved (set data.histograms to "include" for option B)',
            actions: [],
            facts: { histograms: 'skip' },
          };
        }
        const runIds = await runsWithHistograms(databases, ctx.target);
        const out = await backfillRange(databases, ctx.target, {
          force: true,
          histograms: true,
          onlyRunIds: runIds,
          resumeAfter: lastHeartbeat<BackfillProgress>()?.cursor,
        });
        return {
          summary: `option B: ${out.runs} cache(s) rewritten with histograms (${out.points} points)`,
          actions: [],
          facts: { histograms: 'include', runs: out.runs, points: out.points },
        };
      },
    }),
  };
}
