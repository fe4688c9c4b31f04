// 0.3 backfill: every completed experiment's training history, read from the MLflow
// store in one ordered pass per batch (a server-side cursor, constant memory per run) and written
// to the app table in set-based batched UPDATEs. The seed's backfill made ~50 REST calls per run;
// this makes one query per batch and one UPDATE per FLUSH_EVERY runs (or FLUSH_BYTES of JSON).
import type { Databases } from '../../adapters/postgres';
import { forEachRowChunk, type Row } from '../../adapters/postgres-streams';
import type { Target } from '../../config/schema';
import { HISTOGRAM_KEY_SQL } from '../../history/categorise';
import { RunHistoryBuilder } from '../../history/builder';
import { JsonBuffer, writeDocument } from '../../history/document-json';
import type { StepContext, StepResult } from '../../types';
import { appPool, appResource, completedWithRun, mlflowPool } from './app-table';
import { batchActions, countScope, describeScope, FLUSH_EVERY, planBatches, type BackfillBatch } from './backfill-plan';
import { heartbeat, keepAlive, lastHeartbeat, type BackfillProgress } from '../heartbeat';
import { defineShapeStep } from '../step';

export type { BackfillBatch } from './backfill-plan';

/** …and at most this many bytes of JSON per UPDATE, so wide runs (140 keys × 50 epochs,
 * ~150 kB each) do not multiply the worker's memory. */
const FLUSH_BYTES = 2_000_000;
/** Rows per FETCH from the store's cursor: one row per run and key (~50 points each, ~1 kB). */
const FETCH_SIZE = 500;

export interface BackfillOutcome {
  runs: number;
  points: number;
  /** Run ids the app names but the store does not hold (nothing written for them). */
  missing: string[];
  cursor?: string;
}

/**
 * The backfill itself: run ids in [from, to] whose cache is empty (every one with force), after
 * `resumeAfter`. Heartbeats { runsDone, runsTotal, points, cursor } after each UPDATE, and on a timer.
 */
export async function backfillRange(
  databases: Databases,
  target: Target,
  opts: { from?: string; to?: string; force: boolean; histograms: boolean; resumeAfter?: string; onlyRunIds?: string[] },
): Promise<BackfillOutcome> {
  const t = target.appTable;
  const app = appPool(databases, target);
  const { rows: idRows } = await app.query(
    `SELECT DISTINCT ${t.runId} COLLATE "C" AS run_id FROM ${t.table}
      WHERE ${completedWithRun(t)} AND ($2 OR ${t.history} IS NULL)
        AND ($3::text IS NULL OR ${t.runId} COLLATE "C" >= $3) AND ($4::text IS NULL OR ${t.runId} COLLATE "C" <= $4)
        AND ($5::text IS NULL OR ${t.runId} COLLATE "C" > $5)
        AND ($6::text[] IS NULL OR ${t.runId} = ANY($6))
      ORDER BY 1`,
    [t.completedStatus, opts.force, opts.from ?? null, opts.to ?? null, opts.resumeAfter ?? null, opts.onlyRunIds ?? null],
  );
  const runIds: string[] = idRows.map((r) => r.run_id);
  const outcome: BackfillOutcome = { runs: 0, points: 0, missing: [], cursor: opts.resumeAfter };
  if (!runIds.length) return outcome;

  const seen = new Set<string>();
  let pending: string[] = [];
  const json = new JsonBuffer();
  const flush = async () => {
    if (!pending.length) return;
    // The documents go as one JSON array in a binary text parameter: no jsonb[] literal to escape.
    await app.query(
      `UPDATE ${t.table} AS a SET ${t.history} = v.h
         FROM (SELECT r.run_id, j.h FROM unnest($2::text[]) WITH ORDINALITY AS r(run_id, n)
                 JOIN jsonb_array_elements($3::text::jsonb) WITH ORDINALITY AS j(h, n) USING (n)) AS v
        WHERE a.${t.runId} = v.run_id AND a.${t.status} = $1 AND ($4 OR a.${t.history} IS NULL)`,
      [t.completedStatus, pending, json.take(']'), opts.force],
    );
    outcome.runs += pending.length;
    outcome.cursor = pending[pending.length - 1];
    pending = [];
    heartbeat({ runsDone: outcome.runs, runsTotal: runIds.length, points: outcome.points, cursor: outcome.cursor } satisfies BackfillProgress);
  };

  let builder: RunHistoryBuilder | undefined;
  const finish = async () => {
    if (!builder) return;
    const { history, points } = builder.build();
    outcome.points += points;
    json.write(pending.length ? ',' : '[');
    writeDocument(json, history);
    json.cut();
    pending.push(builder.runUuid);
    builder = undefined;
    if (pending.length >= FLUSH_EVERY || json.bytes >= FLUSH_BYTES) await flush();
  };

  const histogramFilter = opts.histograms ? '' : `AND NOT (${HISTOGRAM_KEY_SQL})`;
  // One ordered pass: the run's row, its params, tags, then one row per metric key whose points
  // Postgres folds into "step value,step value,…" ordered by step, timestamp, value, is_nan, so the
  // last point of a step is the one that wins. One row per key instead of one per point: the
  // driver's per-row cost was most of the backfill's time.
  const sql = `
    SELECT run_uuid COLLATE "C" AS run_uuid, 0 AS kind, NULL::text AS key, NULL::text AS text, end_time, start_time
      FROM runs WHERE run_uuid = ANY($1)
    UNION ALL SELECT run_uuid, 1, key, value, NULL, NULL FROM params WHERE run_uuid = ANY($1)
    UNION ALL SELECT run_uuid, 2, key, value, NULL, NULL FROM tags WHERE run_uuid = ANY($1)
    UNION ALL SELECT run_uuid, 3, key, string_agg(step || ' ' || CASE WHEN is_nan THEN 'NaN' ELSE value::text END, ',' ORDER BY step, timestamp, value, is_nan), NULL, NULL
      FROM metrics WHERE run_uuid = ANY($1) ${histogramFilter} GROUP BY run_uuid, key
    ORDER BY 1, 2, 3`;
  // Postgres sorts the batch's metrics before the first row arrives, which on a large store can
  // outlast the heartbeat timeout: keepAlive repeats the last committed progress meanwhile, and a
  // cancelled batch (rollback) stops before its next FETCH.
  await keepAlive(undefined, async (signal) => {
    const each = async (rows: Row[]) => {
      for (const r of rows) {
        if (builder?.runUuid !== r.run_uuid) {
          await finish();
          builder = new RunHistoryBuilder(r.run_uuid, { histograms: opts.histograms });
          seen.add(r.run_uuid);
        }
        const b = builder!;
        switch (r.kind) {
          case 0:
            b.setTimes(r.end_time === null ? null : Number(r.end_time), r.start_time === null ? null : Number(r.start_time));
            break;
          case 1:
            b.param(r.key, r.text);
            break;
          case 2:
            b.tag(r.key, r.text ?? '');
            break;
          default:
            addPoints(b, r.key, r.text);
        }
      }
    };
    await forEachRowChunk(mlflowPool(databases, target), sql, [runIds], FETCH_SIZE, each, signal);
    await finish();
    await flush();
  });
  outcome.missing = runIds.filter((id) => !seen.has(id));
  return outcome;
}

/** A key's points as the query folds them, "step value,…" (NaN for is_nan), into the builder in order. */
function addPoints(b: RunHistoryBuilder, key: string, folded: string): void {
  let start = 0;
  while (start < folded.length) {
    let end = folded.indexOf(',', start);
    if (end < 0) end = folded.length;
    const space = folded.indexOf(' ', start);
    // The step stays int8 text (64-bit, exact); float8 text is exact (extra_float_digits, set by
    // forEachRowChunk); "NaN" parses to NaN.
    b.metric(key, folded.slice(start, space), Number(folded.slice(space + 1, end)), false);
    start = end + 1;
  }
}

/** `defaultLanes`: 0.3's lanes when the target sets no data.backfillLanes (the worker's activity slots). */
export function createBackfillActivities(databases: Databases, defaultLanes = 4) {
  return {
    // 0.2
    assessScope: defineShapeStep<Target>({
      async plan(ctx) {
        const c = await countScope(databases, ctx.target);
        return [{ call: 'postgres.select', resource: appResource(ctx.target), description: `count the cache scope (now: ${describeScope(c)})` }];
      },
      async run(ctx): Promise<StepResult> {
        const c = await countScope(databases, ctx.target);
        return {
          summary: describeScope(c),
          actions: [{ call: 'postgres.select', resource: appResource(ctx.target), description: 'count the cache scope' }],
          facts: { ...c },
        };
      },
    }),

    // 0.3, first half: the workflow spreads these batches over workers.
    planBackfill: defineShapeStep<Target>({
      async plan(ctx) {
        return batchActions(ctx.target, await planBatches(databases, ctx.target, ctx.force));
      },
      async run(ctx): Promise<StepResult> {
        const batches = await planBatches(databases, ctx.target, ctx.force);
        const runs = batches.reduce((n, b) => n + b.runs, 0);
        const size = Math.max(0, ...batches.map((b) => b.runs));
        const lanes = ctx.target.data.backfillLanes ?? defaultLanes;
        return {
          summary: `${runs} runs to backfill in ${batches.length} batch(es) of up to ${size}, ${lanes} at a time${ctx.force ? ' (force: rewriting cached runs too)' : ''}`,
          actions: batchActions(ctx.target, batches),
          facts: { batches, runs, lanes },
        };
      },
    }),

    // 0.3, one batch. A retry resumes after the run id of its last heartbeat.
    async backfillBatch(ctx: StepContext<Target>, batch: BackfillBatch): Promise<StepResult> {
      const actions = batchActions(ctx.target, [batch]);
      if (ctx.dryRun) return { summary: `would backfill ${batch.runs} runs`, actions };
      const resumeAfter = lastHeartbeat<BackfillProgress>()?.cursor;
      const out = await backfillRange(databases, ctx.target, {
        from: batch.fromRunId,
        to: batch.toRunId,
        force: ctx.force,
        histograms: ctx.target.data.histograms === 'include',
        resumeAfter,
      });
      const missing = out.missing.length ? `; ${out.missing.length} run id(s) not in the MLflow store: ${out.missing.slice(0, 5).join(', ')}` : '';
      return {
        summary: `batch ${batch.index + 1}: ${out.runs} runs, ${out.points} points${resumeAfter ? ` (resumed after ${resumeAfter})` : ''}${missing}`,
        actions,
        facts: { runs: out.runs, points: out.points, missing: out.missing.slice(0, 20), missingCount: out.missing.length },
      };
    },
  };
}
