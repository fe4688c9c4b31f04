// 0.2 and 0.3's plan: the scope as the seed counts it, and the batches of run ids 0.3 spreads
// over workers (run-id ranges in C collation, so the workflow's history stays small).
import type { Databases } from '../../adapters/postgres';
import type { Target } from '../../config/schema';
import type { PlannedAction } from '../../types';
import { appPool, appResource, completedWithRun, mlflowResource } from './app-table';

/** Runs per UPDATE: big enough to amortise the round trip, small enough to keep memory flat. */
export const FLUSH_EVERY = 50;

export interface BackfillBatch {
  index: number;
  runs: number;
  /** Inclusive run-id range (C collation) of this batch. */
  fromRunId: string;
  toRunId: string;
}

export interface ScopeCounts {
  completed: number;
  withRunId: number;
  cached: number;
  toDo: number;
}

export async function countScope(databases: Databases, target: Target): Promise<ScopeCounts> {
  const t = target.appTable;
  const { rows } = await appPool(databases, target).query(
    `SELECT count(*) FILTER (WHERE ${t.status} = $1)::int AS completed,
            count(*) FILTER (WHERE ${completedWithRun(t)})::int AS with_run_id,
            count(*) FILTER (WHERE ${t.status} = $1 AND ${t.history} IS NOT NULL)::int AS cached,
            count(*) FILTER (WHERE ${completedWithRun(t)} AND ${t.history} IS NULL)::int AS to_do
       FROM ${t.table}`,
    [t.completedStatus],
  );
  const r = rows[0];
  return { completed: r.completed, withRunId: r.with_run_id, cached: r.cached, toDo: r.to_do };
}

/** At most this many batches: the plan is an activity result, and each batch is a few events. */
export const MAX_BATCHES = 256;

/**
 * Batches of target.data.batchSize distinct run ids, as run-id ranges so the list stays small;
 * bigger batches when there are more than MAX_BATCHES of them, so history and payload stay bounded.
 */
export async function planBatches(databases: Databases, target: Target, force: boolean): Promise<BackfillBatch[]> {
  const t = target.appTable;
  const { rows } = await appPool(databases, target).query(
    `WITH ids AS (SELECT DISTINCT ${t.runId} COLLATE "C" AS run_id FROM ${t.table} WHERE ${completedWithRun(t)} AND ($2 OR ${t.history} IS NULL)),
          numbered AS (SELECT run_id, (row_number() OVER (ORDER BY run_id) - 1) / GREATEST($3, ceil(count(*) OVER () / $4::numeric)::bigint) AS idx FROM ids)
     SELECT idx::int AS index, count(*)::int AS runs, min(run_id) AS from_run_id, max(run_id) AS to_run_id
       FROM numbered GROUP BY idx ORDER BY idx`,
    [t.completedStatus, force, target.data.batchSize, MAX_BATCHES],
  );
  return rows.map((r) => ({ index: r.index, runs: r.runs, fromRunId: r.from_run_id, toRunId: r.to_run_id }));
}

export function batchActions(target: Target, batches: BackfillBatch[]): PlannedAction[] {
  return batches.flatMap((b) => [
    {
      call: 'postgres.select',
      resource: mlflowResource(target, 'metrics,params,tags,runs'),
      description: `batch ${b.index + 1}: read ${b.runs} runs (${b.fromRunId}…${b.toRunId}) in one ordered pass`,
    },
    {
      call: 'postgres.update',
      resource: appResource(target, target.appTable.history),
      description: `batch ${b.index + 1}: write ${b.runs} runs' training_history_json in UPDATEs of up to ${FLUSH_EVERY}`,
    },
  ]);
}

export function describeScope(c: ScopeCounts): string {
  return `${c.completed} completed, ${c.withRunId} with an MLflow run id, ${c.cached} already cached, ${c.toDo} to backfill`;
}
