// Phase 0's data activities, composed over their clients: scope and backfill (0.2, 0.3),
// histograms (0.4), verification (0.5), raw export (0.6), reference audit (0.7), the cutover
// checks (1.1, 2.1), the phase-0 gate check, and the data half of preflight (0.0).
import type { Databases } from '../../adapters/postgres';
import { probe } from '../../adapters/postgres-streams';
import type { Target } from '../../config/schema';
import type { ObjectStore } from '../../ports';
import type { CheckResult, StepContext } from '../../types';
import { appPool, mlflowPool } from './app-table';
import { auditReferenceTables, createAuditActivities, referenceChecks } from './audit';
import { createBackfillActivities } from './backfill';
import { createBackfillCountActivities } from './backfill-counts';
import { createCutoverActivities } from './cutover';
import { checkManifest, createExportActivities } from './export';
import { createHistogramActivities } from './histograms';
import { defineShapeCheck } from '../step';
import { checkMlflowRevision } from './mlflow-schema';
import { checkCompleteness, createVerifyActivities } from './verify';

export interface DataDeps {
  databases: Databases;
  objects: ObjectStore;
  defaultBackfillLanes?: number;
}

/** The MLflow columns the backfill, verification and audit read. */
const MLFLOW_COLUMNS: Record<string, string[]> = {
  runs: ['run_uuid', 'lifecycle_stage', 'start_time', 'end_time', 'status', 'experiment_id'],
  metrics: ['key', 'value', 'timestamp', 'run_uuid', 'step', 'is_nan'],
  params: ['key', 'value', 'run_uuid'],
  tags: ['key', 'value', 'run_uuid'],
  experiments: ['experiment_id', 'name', 'lifecycle_stage'],
};

export function createDataActivities(deps: DataDeps) {
  const { databases, objects } = deps;
  const activities = {
    ...createBackfillActivities(databases, deps.defaultBackfillLanes),
    ...createBackfillCountActivities(databases),
    ...createHistogramActivities(databases),
    ...createVerifyActivities(databases, objects),
    ...createExportActivities(databases, objects),
    ...createAuditActivities(databases),
    ...createCutoverActivities(databases, objects),

    // Gate phase-0: re-checked from the source, not taken from the steps' word.
    checkPhase0: defineShapeCheck<Target>(async (ctx): Promise<CheckResult[]> => {
      const completeness = await checkCompleteness(databases, ctx.target);
      const fidelity = ctx.facts['0.5'] as { runsVerified?: number; mismatches?: number; points?: number } | undefined;
      const manifest = await checkManifest(databases, objects, ctx);
      return [
        {
          name: 'completeness',
          ok: completeness.uncached === 0,
          detail: completeness.uncached
            ? `${completeness.uncached} completed experiment(s) with a run id lack a cache (e.g. ${completeness.examples.slice(0, 5).map((e) => `#${e.id}`).join(', ')}): run 0.3 again`
            : 'every completed experiment with an MLflow run id has training_history_json',
        },
        {
          name: 'fidelity',
          ok: fidelity !== undefined && fidelity.mismatches === 0,
          detail: fidelity
            ? `0.5 verified ${fidelity.runsVerified} runs, ${fidelity.points} points, ${fidelity.mismatches} mismatches`
            : 'step 0.5 has not recorded a verification: run it',
        },
        { name: 'raw export manifest', ...manifest },
        // 0.7: dangling mlflow_run_id references (seed 004), by table and id.
        ...referenceChecks(await auditReferenceTables(databases, ctx.target)),
      ];
    }),
  };
  return { activities, preflight: (ctx: StepContext<Target>) => dataPreflight(databases, ctx.target) };
}

/** 0.0, data half: both databases answer, the MLflow schema is one we read, the app table has the configured columns. */
async function dataPreflight(databases: Databases, target: Target): Promise<CheckResult[]> {
  const checks: CheckResult[] = [];
  const reach = async (role: 'mlflow' | 'app'): Promise<CheckResult> => {
    const env = target.databases[role].urlEnv;
    const name = `${role} database (${env})`;
    let result: true | string;
    try {
      result = await probe(role === 'app' ? appPool(databases, target) : mlflowPool(databases, target));
    } catch (err) {
      result = (err as Error).message; // env var unset: the message names it, never a value
    }
    return { name, ok: result === true, detail: result === true ? 'reachable' : `cannot connect (${redact(result)}): check the connection string in env var ${env} and the network path` };
  };
  // Probed together, reported in a fixed order.
  const [mlflowDb, appDb] = await Promise.all([reach('mlflow'), reach('app')]);
  checks.push(mlflowDb, appDb);
  const [mlflowUp, appUp] = [mlflowDb.ok, appDb.ok];
  if (mlflowUp) {
    checks.push(await checkMlflowRevision(mlflowPool(databases, target), target.data.acceptMlflowRevisions));
    const missing = await missingColumns(mlflowPool(databases, target), new Map(Object.entries(MLFLOW_COLUMNS)));
    checks.push({
      name: 'mlflow schema',
      ok: missing.length === 0,
      detail: missing.length ? `not an MLflow store we can read: missing ${missing.join(', ')}` : `tables ${Object.keys(MLFLOW_COLUMNS).join(', ')} have the expected columns`,
    });
  }
  if (appUp) {
    const t = target.appTable;
    const cols = [t.id, t.status, t.runId, t.history, t.artifactsPath, t.displayName, ...(t.finishedAt ? [t.finishedAt] : [])];
    // Table names come from the target: data, never object keys.
    const expected = new Map<string, string[]>([[t.table, cols]]);
    for (const r of target.data.referenceTables) expected.set(r.table, [...(expected.get(r.table) ?? []), r.column]);
    const missing = await missingColumns(appPool(databases, target), expected);
    checks.push({
      name: 'app table',
      ok: missing.length === 0,
      detail: missing.length ? `missing ${missing.join(', ')}: fix appTable / data.referenceTables in the target` : `${t.table} has ${cols.join(', ')}`,
    });
  }
  return checks;
}

async function missingColumns(pool: ReturnType<Databases['pool']>, expected: ReadonlyMap<string, string[]>): Promise<string[]> {
  const { rows } = await pool.query(
    `SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ANY($1)`,
    [[...expected.keys()]],
  );
  const have = new Set(rows.map((r) => `${r.table_name}.${r.column_name}`));
  return [...expected].flatMap(([table, cols]) => cols.map((c) => `${table}.${c}`).filter((tc) => !have.has(tc)));
}

/** Error messages can quote a connection string; never pass one on. */
function redact(message: string): string {
  return message.replace(/postgres(ql)?:\/\/\S+/gi, '<connection string>');
}
