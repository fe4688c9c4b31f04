// 1.1 and 2.1: after the cutover, new experiments carry training_metrics.json beside their
// artifacts (trainer side, Phase 1), it follows the appendix schema, and Django cached exactly it
// (Phase 2). One activity serves both steps.
import type { Databases } from '../../adapters/postgres';
import { ErrorType, fail } from '../../errors';
import type { ObjectStore } from '../../ports';
import { encodeNumber } from '../../history/encoding';
import { exactJson } from '../../history/document-json';
import { COMPARED_FIELDS, parseExactJson, parseTrainingMetricsJson, trainingMetricsSchema } from '../../history/training-metrics';
import type { Target } from '../../config/schema';
import type { StepContext, StepResult } from '../../types';
import { appPool, appResource } from './app-table';
import { defineShapeStep } from '../step';

/** How many post-cutover experiments to look at (the most recent first). */
const LOOK_AT = 20;

interface Candidate {
  id: number;
  displayName: string;
  artifactsPath: string | null;
  history: unknown;
}

async function postCutoverExperiments(databases: Databases, ctx: StepContext<Target>): Promise<Candidate[]> {
  const t = ctx.target.appTable;
  const cutover = ctx.target.data.cutoverDate;
  if (!cutover) {
    fail(ErrorType.PreconditionFailed, 'no cutover date: set data.cutoverDate in the target (when the trainer started writing training_metrics.json), or skip this step');
  }
  // Without a finished-at column, a completed experiment without an MLflow run id is one the new trainer ran.
  const where = t.finishedAt
    ? `${t.status} = $1 AND ${t.finishedAt} > $2::timestamptz ORDER BY ${t.finishedAt} DESC, ${t.id} DESC`
    : `${t.status} = $1 AND (${t.runId} IS NULL OR ${t.runId} = '') AND $2::text IS NOT NULL ORDER BY ${t.id} DESC`;
  const { rows } = await appPool(databases, ctx.target).query(
    `SELECT ${t.id} AS id, ${t.displayName} AS display_name, ${t.artifactsPath} AS path, ${t.history}::text AS history FROM ${t.table} WHERE ${where} LIMIT ${LOOK_AT}`,
    [t.completedStatus, cutover],
  );
  // Read as text and parsed exactly: steps past 2^53 compare as the integers they are.
  return rows.map((r) => ({ id: r.id, displayName: r.display_name, artifactsPath: r.path, history: r.history === null ? null : parseExactJson(r.history) }));
}

/** Key-order-free, NaN-spelling-free form for comparing a file with a cache; names are own keys, steps bigint-exact. */
function canonical(v: unknown): string {
  const norm = (x: unknown): unknown => {
    if (typeof x === 'number') return encodeNumber(x);
    if (Array.isArray(x)) return x.map(norm);
    if (x && typeof x === 'object') {
      return Object.fromEntries(
        Object.keys(x)
          .sort()
          .map((k) => [k, norm((x as Record<string, unknown>)[k])]),
      );
    }
    return x;
  };
  return exactJson(norm(v));
}

export function metricsUri(artifactsPath: string): string {
  return `${artifactsPath.replace(/\/+$/, '')}/training_metrics.json`;
}

export function createCutoverActivities(databases: Databases, objects: ObjectStore) {
  return {
    checkCutover: defineShapeStep<Target>({
      async plan(ctx) {
        if (!ctx.target.data.cutoverDate) {
          return [{ call: 'postgres.select', resource: appResource(ctx.target), description: 'would fail: set data.cutoverDate in the target, or skip this step' }];
        }
        const found = await postCutoverExperiments(databases, ctx);
        return [
          { call: 'postgres.select', resource: appResource(ctx.target), description: `find experiments finished after ${ctx.target.data.cutoverDate} (${found.length} now)` },
          ...found.filter((c) => c.artifactsPath).map((c) => ({ call: 'storage.objects.get', resource: metricsUri(c.artifactsPath!), description: `read experiment #${c.id}'s training_metrics.json` })),
        ];
      },
      async run(ctx): Promise<StepResult> {
        const found = await postCutoverExperiments(databases, ctx);
        const problems: string[] = [];
        const good: number[] = [];
        for (const c of found) {
          const label = `#${c.id} ${c.displayName}`;
          if (!c.artifactsPath) {
            problems.push(`${label}: no ${ctx.target.appTable.artifactsPath}`);
            continue;
          }
          const uri = metricsUri(c.artifactsPath);
          const body = await objects.read(uri);
          if (!body) {
            problems.push(`${label}: ${uri} missing`);
            continue;
          }
          let file: unknown;
          try {
            file = parseTrainingMetricsJson(body.toString('utf8'));
          } catch (err) {
            problems.push(`${label}: ${uri} is not JSON (${(err as Error).message})`);
            continue;
          }
          const parsed = trainingMetricsSchema.safeParse(file);
          if (!parsed.success) {
            problems.push(`${label}: ${uri} does not follow the appendix schema (${parsed.error.issues.slice(0, 3).map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')})`);
            continue;
          }
          if (c.history === null || c.history === undefined) {
            problems.push(`${label}: ${ctx.target.appTable.history} is empty (Django has not cached the file)`);
            continue;
          }
          const cache = c.history as Record<string, unknown>;
          const differs = COMPARED_FIELDS.filter((f) => canonical(cache[f]) !== canonical((file as Record<string, unknown>)[f]));
          if (differs.length) {
            problems.push(`${label}: the cache differs from ${uri} in ${differs.join(', ')}`);
            continue;
          }
          good.push(c.id);
        }
        const min = ctx.target.data.minPostCutoverExperiments;
        if (problems.length || good.length < min) {
          const need = good.length < min ? `${good.length} of the required ${min} post-cutover experiment(s) check out` : `${problems.length} experiment(s) fail`;
          fail(ErrorType.PreconditionFailed, `${need}${problems.length ? `: ${problems.slice(0, 5).join('; ')}` : ''}. Run new experiments with the MetricsCollector trainer (Phase 1) and the GCS-reading Django (Phase 2), then retry; or skip this step.`, {
            problems,
            ok: good,
          });
        }
        return {
          summary: `${good.length} experiment(s) finished after ${ctx.target.data.cutoverDate} have a valid training_metrics.json that matches their cache`,
          actions: [],
          facts: { experiments: good },
        };
      },
    }),
  };
}
