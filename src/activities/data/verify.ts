// 0.5: completeness (no completed experiment with a run id lacks a cache) and fidelity (every
// cache equals, as jsonb, the document an independent oracle recomputes from the store in SQL:
// expected-history.ts reads docs/history-mapping.md on its own and shares nothing with the
// builder in src/history/, so a bug in one shows up against the other). On a mismatch the run ids
// are saved beside the migration's backups, and a retry of 0.5 rewrites exactly those runs first.
import type { Databases } from '../../adapters/postgres';
import type { Target } from '../../config/schema';
import { ErrorType, fail } from '../../errors';
import type { ObjectStore } from '../../ports';
import { backupUri } from '../../shapes';
import type { StepContext, StepResult } from '../../types';
import { appPool, appResource, completedWithRun, mlflowResource } from './app-table';
import { backfillRange } from './backfill';
import { expectedHistories } from './expected-history';
import { compareChunk, type Mismatch } from './verify-compare';
import { heartbeat } from '../heartbeat';
import { defineShapeStep } from '../step';

export type { Mismatch } from './verify-compare';

const CHUNK = 100;
const MAX_LISTED = 50;
export interface Completeness {
  uncached: number;
  examples: Array<{ id: number; displayName: string; runId: string }>;
}

export async function checkCompleteness(databases: Databases, target: Target): Promise<Completeness> {
  const t = target.appTable;
  const { rows } = await appPool(databases, target).query(
    `SELECT ${t.id} AS id, ${t.displayName} AS display_name, ${t.runId} AS run_id, count(*) OVER ()::int AS total
       FROM ${t.table} WHERE ${completedWithRun(t)} AND ${t.history} IS NULL ORDER BY ${t.id} LIMIT 20`,
    [t.completedStatus],
  );
  return { uncached: rows[0]?.total ?? 0, examples: rows.map((r) => ({ id: r.id, displayName: r.display_name, runId: r.run_id })) };
}

/** Run ids to verify: every cached one, or fidelitySample of them chosen by md5 (same sample every time). */
async function runsToVerify(databases: Databases, target: Target): Promise<string[]> {
  const t = target.appTable;
  const sample = target.data.fidelitySample;
  const { rows } = await appPool(databases, target).query(
    `SELECT run_id FROM (SELECT DISTINCT ${t.runId} COLLATE "C" AS run_id FROM ${t.table} WHERE ${completedWithRun(t)} AND ${t.history} IS NOT NULL) ids
      ORDER BY ${sample ? 'md5(run_id), ' : ''}run_id ${sample ? `LIMIT ${Number(sample)}` : ''}`,
    [t.completedStatus],
  );
  return rows.map((r) => r.run_id).sort();
}

export interface FidelityOutcome {
  runsVerified: number;
  points: number;
  mismatches: Mismatch[];
  mismatchCount: number;
  /** Every run with a mismatch (not only the listed ones): what a retry rewrites. */
  mismatchedRuns: string[];
}

export async function checkFidelity(databases: Databases, target: Target): Promise<FidelityOutcome> {
  const runIds = await runsToVerify(databases, target);
  const out: FidelityOutcome = { runsVerified: 0, points: 0, mismatches: [], mismatchCount: 0, mismatchedRuns: [] };
  const mismatched = new Set<string>();
  const report = (m: Mismatch) => {
    out.mismatchCount++;
    mismatched.add(m.runId);
    if (out.mismatches.length < MAX_LISTED) out.mismatches.push(m);
  };
  // Runs whose differences are listed key by key; beyond them, a run is one mismatch.
  const itemised = { runs: MAX_LISTED };
  const progress = () => heartbeat({ runsDone: out.runsVerified, runsTotal: runIds.length, points: out.points });
  // keepAlive (around every activity) heartbeats the latest progress while a chunk is built.
  for (let i = 0; i < runIds.length; i += CHUNK) {
    const chunk = runIds.slice(i, i + CHUNK);
    const expected: Parameters<typeof compareChunk>[3] = [];
    await expectedHistories(databases, target, chunk, async (runs) => {
      expected.push(...runs);
    });
    for (const e of expected) out.points += e.points;
    await compareChunk(databases, target, chunk, expected, report, itemised);
    out.runsVerified += chunk.length;
    progress();
  }
  out.mismatchedRuns = [...mismatched].sort();
  return out;
}

/** Where 0.5 keeps the run ids a retry rewrites (this migration run's folder). */
export function mismatchedRunsUri(ctx: StepContext<Target>): string {
  return backupUri(ctx, 'verify/mismatched-runs.json');
}

interface SavedMismatch {
  /** Runs whose cache differs: a retry rewrites them (force). */
  runIds: string[];
  /** A retry also caches runs that have none. */
  fillUncached: boolean;
}

/** 0.5 retried after it failed: rewrite exactly the runs it saved and fill the empty caches, once. */
async function repairBeforeVerifying(databases: Databases, objects: ObjectStore, ctx: StepContext<Target>): Promise<string | undefined> {
  const body = await objects.read(mismatchedRunsUri(ctx));
  if (!body) return undefined;
  const saved = JSON.parse(body.toString('utf8')) as SavedMismatch;
  if (!saved.runIds.length && !saved.fillUncached) return undefined;
  const histograms = ctx.target.data.histograms === 'include';
  const done: string[] = [];
  if (saved.runIds.length) done.push(`rewrote ${(await backfillRange(databases, ctx.target, { force: true, histograms, onlyRunIds: saved.runIds })).runs} mismatched run(s)`);
  if (saved.fillUncached) done.push(`cached ${(await backfillRange(databases, ctx.target, { force: false, histograms })).runs} uncached run(s)`);
  await objects.write(mismatchedRunsUri(ctx), JSON.stringify({ runIds: [], fillUncached: false } satisfies SavedMismatch), 'application/json');
  return done.join(', ');
}

export function createVerifyActivities(databases: Databases, objects: ObjectStore) {
  return {
    // 0.5
    verifyMigration: defineShapeStep<Target>({
      async plan(ctx) {
        const t = ctx.target;
        return [
          { call: 'postgres.select', resource: appResource(t, t.appTable.history), description: 'count completed experiments with a run id and no cache' },
          {
            call: 'postgres.select',
            resource: mlflowResource(t, 'metrics'),
            description: `compare ${t.data.fidelitySample ? `a sample of ${t.data.fidelitySample}` : 'every'} migrated run's cache with the document recomputed from the store`,
          },
          { call: 'storage.objects.get', resource: mismatchedRunsUri(ctx), description: 'on a retry: the runs the last verification found wrong, to rewrite them first' },
          { call: 'storage.objects.insert', resource: mismatchedRunsUri(ctx), description: 'on a mismatch: save the wrong runs for a retry to rewrite' },
        ];
      },
      async run(ctx): Promise<StepResult> {
        const target = ctx.target;
        const repaired = await repairBeforeVerifying(databases, objects, ctx);
        const completeness = await checkCompleteness(databases, target);
        const fidelity = await checkFidelity(databases, target);
        const facts = { runsVerified: fidelity.runsVerified, points: fidelity.points, mismatches: fidelity.mismatchCount, uncached: completeness.uncached };
        if (completeness.uncached || fidelity.mismatchCount) {
          const parts = [];
          if (completeness.uncached) {
            parts.push(`${completeness.uncached} completed experiment(s) with an MLflow run id have no training_history_json (e.g. ${completeness.examples.slice(0, 5).map((e) => `#${e.id} ${e.displayName}`).join(', ')})`);
          }
          if (fidelity.mismatchCount) {
            const first = fidelity.mismatches.slice(0, 5).map((m) => `${m.runId} ${m.key}: ${m.problem}`).join('; ');
            parts.push(`${fidelity.mismatchCount} mismatch(es) between the cache and the MLflow store (${first})`);
          }
          const uri = mismatchedRunsUri(ctx);
          await objects.write(uri, JSON.stringify({ runIds: fidelity.mismatchedRuns, fillUncached: completeness.uncached > 0 } satisfies SavedMismatch), 'application/json');
          const fix = [fidelity.mismatchedRuns.length && `rewrite the ${fidelity.mismatchedRuns.length} mismatched run(s) listed in ${uri}`, completeness.uncached && 'cache the uncached ones']
            .filter(Boolean)
            .join(' and ');
          fail(
            ErrorType.VerificationFailed,
            `0.5 verification failed${repaired ? ` after a retry that ${repaired}` : ''}: ${parts.join('; ')}. Send retry {"step": "0.5"} to ${fix}, then verify again; ` +
              'if the same runs differ again, the backfill disagrees with docs/history-mapping.md: send rollback (nothing is deleted before Phase 3) and report it.',
            {
              ...facts,
              uncachedExamples: completeness.examples,
              mismatchList: fidelity.mismatches,
              mismatchedRuns: uri,
            },
          );
        }
        return {
          summary: `${repaired ? `retry ${repaired}; ` : ''}all ${fidelity.runsVerified} migrated runs match the store point for point (${fidelity.points} points); none uncached`,
          actions: [],
          facts,
        };
      },
    }),
  };
}
