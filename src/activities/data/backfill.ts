// 0.2 scope and 0.3 backfill: every completed experiment's training history, read from the MLflow
// store by groups of runs (metric-reader.ts: unordered binary COPY, ordered in the worker) and written
// to the app table in set-based batched UPDATEs. The seed's backfill made ~50 REST calls per run;
// this makes one COPY per RUNS_PER_READ runs and one UPDATE per FLUSH_EVERY runs (or FLUSH_BYTES of JSON).
import type { Databases } from '../../adapters/postgres';
import type { Target } from '../../config/schema';
import { HISTOGRAM_KEY_LIKE } from '../../history/categorise';
import { RunHistoryBuilder } from '../../history/builder';
import type { PlannedAction, StepContext, StepResult } from '../../types';
import { appPool, appResource, completedWithRun, mlflowPool, mlflowResource } from './app-table';
import { readRuns } from './metric-reader';
import { heartbeat, lastHeartbeat, type BackfillProgress } from '../heartbeat';
import { defineShapeStep } from '../step';

/** Runs per UPDATE: big enough to amortise the round trip, small enough to keep memory flat. */
const FLUSH_EVERY = 50;
/** …and at most this many bytes of JSON per UPDATE, so wide runs (140 keys × 50 epochs,
 * ~150 kB each) do not multiply the worker's memory. */
const FLUSH_BYTES = 2_000_000;
/** Runs per COPY of the store's metrics. The worker holds one group's points (~25 bytes each, ~9 MB
 * for 50 wide runs) per lane; fewer, larger COPYs read the scattered rows of random run ids faster. */
const RUNS_PER_READ = 50;

export interface BackfillBatch {
  index: number;
  runs: number;
  /** Inclusive run-id range (C collation) of this batch. */
  fromRunId: string;
  toRunId: string;
}

export interface BackfillOutcome {
  runs: number;
  points: number;
  /** Run ids the app names but the store does not hold (nothing written for them). */
  missing: string[];
  cursor?: string;
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

/** Batches of target.data.batchSize distinct run ids, as run-id ranges so the list stays small. */
export async function planBatches(databases: Databases, target: Target, force: boolean): Promise<BackfillBatch[]> {
  const t = target.appTable;
  const { rows } = await appPool(databases, target).query(
    `WITH ids AS (SELECT DISTINCT ${t.runId} COLLATE "C" AS run_id FROM ${t.table} WHERE ${completedWithRun(t)} AND ($2 OR ${t.history} IS NULL)),
          numbered AS (SELECT run_id, (row_number() OVER (ORDER BY run_id) - 1) / $3 AS idx FROM ids)
     SELECT idx::int AS index, count(*)::int AS runs, min(run_id) AS from_run_id, max(run_id) AS to_run_id
       FROM numbered GROUP BY idx ORDER BY idx`,
    [t.completedStatus, force, target.data.batchSize],
  );
  return rows.map((r) => ({ index: r.index, runs: r.runs, fromRunId: r.from_run_id, toRunId: r.to_run_id }));
}

function batchActions(target: Target, batches: BackfillBatch[]): PlannedAction[] {
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

/**
 * The backfill itself: run ids in [from, to] whose cache is empty (every one with force), after
 * `resumeAfter`. Heartbeats { runsDone, runsTotal, points, cursor } after each UPDATE, and every 10 s.
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
    writeJson(json, history);
    json.cut();
    pending.push(builder.runUuid);
    builder = undefined;
    if (pending.length >= FLUSH_EVERY || json.bytes >= FLUSH_BYTES) await flush();
  };

  // Postgres reads each group of runs unordered (no sort to wait for); the worker orders it.
  const beat = setInterval(() => heartbeat({ runsDone: outcome.runs, runsTotal: runIds.length, points: outcome.points, cursor: outcome.cursor } satisfies BackfillProgress), 10_000);
  try {
    await readRuns(mlflowPool(databases, target), runIds, { excludeKeyLike: opts.histograms ? [] : HISTOGRAM_KEY_LIKE, runsPerRead: RUNS_PER_READ }, async (run) => {
      await finish();
      const b = (builder = new RunHistoryBuilder(run.runUuid, { histograms: opts.histograms }));
      seen.add(run.runUuid);
      b.setTimes(run.endTime === null ? null : Number(run.endTime), run.startTime === null ? null : Number(run.startTime));
      for (const [k, v] of run.params) b.param(k, v);
      for (const [k, v] of run.tags) b.tag(k, v ?? '');
      for (const s of run.series) for (let i = 0; i < s.length; i++) b.metric(s.key, Number(s.steps[i]), s.values[i]!, s.isNan[i] === 1);
    });
    await finish();
    await flush();
  } finally {
    clearInterval(beat);
  }
  outcome.missing = runIds.filter((id) => !seen.has(id));
  return outcome;
}

/**
 * JSON text gathered as UTF-8 buffers of ~32 kB. A run's document is never one string: V8 puts a
 * string over 128 kB straight into old space, where a thousand of them pile up between
 * collections and push the worker's RSS past 256 MB.
 */
class JsonBuffer {
  private parts: Buffer[] = [];
  private current = '';
  private cutBytes = 0;

  get bytes(): number {
    return this.cutBytes + this.current.length;
  }

  write(s: string): void {
    this.current += s;
    if (this.current.length >= 32_768) this.cut();
  }

  /** Turns what is written so far into a buffer, so no string outlives the run it encodes. */
  cut(): void {
    if (!this.current) return;
    const b = Buffer.from(this.current, 'utf8');
    this.parts.push(b);
    this.cutBytes += b.length;
    this.current = '';
  }

  /** Everything written, then `last`, as one buffer; empties this. */
  take(last: string): Buffer {
    this.write(last);
    this.cut();
    const out = Buffer.concat(this.parts, this.cutBytes);
    this.parts = [];
    this.cutBytes = 0;
    return out;
  }
}

/** JSON.stringify(value), written piecewise: objects down to `depth` levels, their members whole. */
function writeJson(out: JsonBuffer, value: unknown, depth = 2): void {
  if (depth === 0 || value === null || typeof value !== 'object' || Array.isArray(value)) {
    out.write(JSON.stringify(value));
    return;
  }
  let first = true;
  for (const [k, v] of Object.entries(value)) {
    if (v === undefined) continue;
    out.write(`${first ? '{' : ','}${JSON.stringify(k)}:`);
    writeJson(out, v, depth - 1);
    first = false;
  }
  out.write(first ? '{}' : '}');
}

export function createBackfillActivities(databases: Databases) {
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
        return {
          summary: `${runs} runs to backfill in ${batches.length} batch(es) of up to ${ctx.target.data.batchSize}${ctx.force ? ' (force: rewriting cached runs too)' : ''}`,
          actions: batchActions(ctx.target, batches),
          facts: { batches, runs },
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

function describeScope(c: ScopeCounts): string {
  return `${c.completed} completed, ${c.withRunId} with an MLflow run id, ${c.cached} already cached, ${c.toDo} to backfill`;
}
