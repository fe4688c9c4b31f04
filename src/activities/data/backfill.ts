// 0.3 backfill: every completed experiment's training history, read from the MLflow store by
// groups of runs (metric-reader.ts: unordered binary COPY, ordered in the worker) and written
// to the app table in set-based batched UPDATEs. The seed's backfill made ~50 REST calls per run;
// this makes one COPY per RUNS_PER_READ runs and one UPDATE per FLUSH_EVERY runs (or FLUSH_BYTES of JSON).
import type { Databases } from '../../adapters/postgres';
import type { Target } from '../../config/schema';
import { HISTOGRAM_KEY_SQL } from '../../history/categorise';
import { RunHistoryBuilder } from '../../history/builder';
import { JsonBuffer, writeDocument } from '../../history/document-json';
import type { StepContext, StepResult } from '../../types';
import { appPool, appResource, completedWithRun, mlflowPool } from './app-table';
import { batchActions, countScope, describeScope, FLUSH_EVERY, planBatches, type BackfillBatch } from './backfill-plan';
import { readRuns } from './metric-reader';
import { heartbeat, keepAlive, lastHeartbeat, type BackfillProgress } from '../heartbeat';
import { defineShapeStep } from '../step';

export type { BackfillBatch } from './backfill-plan';

/** …and at most this many bytes of JSON per UPDATE, so wide runs (140 keys × 50 epochs,
 * ~150 kB each) do not multiply the worker's memory. */
const FLUSH_BYTES = 2_000_000;
/** Runs per COPY of the store's metrics. The worker holds one group's points (~25 bytes each, ~9 MB
 * for 50 wide runs) per lane; fewer, larger COPYs read the scattered rows of random run ids faster. */
const RUNS_PER_READ = 50;

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

  // Postgres reads each group of runs unordered (no sort to wait for); the worker orders it.
  // keepAlive repeats the last committed progress meanwhile, and a cancelled batch (rollback)
  // stops at the next network chunk.
  await keepAlive(undefined, async (signal) => {
    const excludeKeys = opts.histograms ? undefined : HISTOGRAM_KEY_SQL;
    const onChunk = () => signal.throwIfAborted();
    await readRuns(mlflowPool(databases, target), runIds, { excludeKeys, runsPerRead: RUNS_PER_READ, onChunk }, async (run) => {
      signal.throwIfAborted();
      await finish();
      const b = (builder = new RunHistoryBuilder(run.runUuid, { histograms: opts.histograms }));
      seen.add(run.runUuid);
      b.setTimes(run.endTime === null ? null : Number(run.endTime), run.startTime === null ? null : Number(run.startTime));
      for (const [k, v] of run.params) b.param(k, v);
      for (const [k, v] of run.tags) b.tag(k, v ?? '');
      // Steps stay exact: int8 from the COPY as bigint, handed over as its decimal text.
      for (const s of run.series) for (let i = 0; i < s.length; i++) b.metric(s.key, String(s.steps[i]), s.values[i]!, s.isNan[i] === 1);
    });
    await finish();
    await flush();
  });
  outcome.missing = runIds.filter((id) => !seen.has(id));
  return outcome;
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
