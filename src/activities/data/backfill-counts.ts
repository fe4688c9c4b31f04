// 0.3's totals, counted from the app table after the batches: how many runs hold a cache and how
// many values those caches hold. Added up from the batches' results instead, a batch resumed after
// a crash reports only what it wrote after the restart (issue 9: "backfilled 98 runs" of 148).
import type { Databases } from '../../adapters/postgres';
import type { Target } from '../../config/schema';
import type { StepContext, StepResult } from '../../types';
import { appPool, appResource, completedWithRun } from './app-table';
import { heartbeat } from '../heartbeat';

/** Runs per counting query: each reads its caches' jsonb once. */
const CHUNK = 500;

// The values a cache holds: series cells, final metrics, histogram counts and edges. A value is a
// number or a string ("NaN", "Infinity"); null (no point) and objects (a tower's histogram, which
// lax mode would hand to [*] whole) are not values.
const VALUE = '? (@.type() == "number" || @.type() == "string")';
const VALUE_PATHS = [
  `$.loss.*[*] ${VALUE}`,
  `$.gradient.*[*] ${VALUE}`,
  `$.other.*[*] ${VALUE}`,
  `$.final_metrics.* ${VALUE}`,
  `$.weight_stats.*.*[*] ${VALUE}`,
  `$.gradient_stats.*.*[*] ${VALUE}`,
  `$.weight_stats.*.histogram.counts[*][*] ${VALUE}`,
  `$.gradient_stats.*.histogram.counts[*][*] ${VALUE}`,
  `$.weight_stats.*.histogram.bin_edges[*] ${VALUE}`,
  `$.gradient_stats.*.histogram.bin_edges[*] ${VALUE}`,
];

export interface CacheCounts {
  /** Distinct MLflow run ids of completed experiments whose cache is filled. */
  runs: number;
  /** Values those caches hold (a final_/test_ key or a histogram edge keeps one). */
  points: number;
}

export async function countCaches(databases: Databases, target: Target): Promise<CacheCounts> {
  const t = target.appTable;
  const app = appPool(databases, target);
  const { rows: ids } = await app.query(
    `SELECT DISTINCT ${t.runId} COLLATE "C" AS run_id FROM ${t.table} WHERE ${completedWithRun(t)} AND ${t.history} IS NOT NULL ORDER BY 1`,
    [t.completedStatus],
  );
  const runIds: string[] = ids.map((r) => r.run_id);
  let points = 0;
  const sum = VALUE_PATHS.map((p) => `jsonb_array_length(jsonb_path_query_array(h, '${p}'))`).join(' + ');
  for (let i = 0; i < runIds.length; i += CHUNK) {
    // One row per run id: a run cached in two app rows counts once.
    const { rows } = await app.query(
      `SELECT coalesce(sum(${sum}), 0)::bigint AS n FROM (SELECT DISTINCT ON (${t.runId}) ${t.history} AS h FROM ${t.table}
         WHERE ${completedWithRun(t)} AND ${t.history} IS NOT NULL AND ${t.runId} = ANY($2) ORDER BY ${t.runId}, ${t.id}) c`,
      [t.completedStatus, runIds.slice(i, i + CHUNK)],
    );
    points += Number(rows[0].n);
    heartbeat({ runsCounted: Math.min(i + CHUNK, runIds.length), runsTotal: runIds.length });
  }
  return { runs: runIds.length, points };
}

export function createBackfillCountActivities(databases: Databases) {
  return {
    // 0.3, last: the totals as the app table holds them.
    async countBackfilled(ctx: StepContext<Target>): Promise<StepResult> {
      const actions = [{ call: 'postgres.select', resource: appResource(ctx.target, ctx.target.appTable.history), description: 'count the cached runs and the values they hold' }];
      if (ctx.dryRun) return { summary: 'would count the cached runs', actions };
      const c = await countCaches(databases, ctx.target);
      return { summary: `${c.runs} runs cached in the app table, holding ${c.points} values`, actions, facts: { ...c } };
    },
  };
}
