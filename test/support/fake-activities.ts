// Stand-ins for the data and cloud activities, for workflow tests: built with the real
// defineStep, so dry runs and gate guards behave as in production, and every act is logged.
import { ApplicationFailure } from '@temporalio/common';
import { defineStep } from '../../src/activities/step';
import type { CloudTarget, Target } from '../../src/config/schema';
import { SHAPES } from '../../src/shapes';
import { GATE_IDS, type StepContext, type StepResult } from '../../src/types';
import { gateSpec, stepsOf, type Activities } from '../../src/workflows/steps';

type Fn = (...args: any[]) => Promise<unknown>;

export interface Fakes {
  activities: Record<string, Fn>;
  /** The fake app table: how many runs the batches cached (what countBackfilled reports). */
  table: { runs: number };
  /** Every activity that acted (not planned), in order. */
  acted: string[];
  /** Make `name` fail non-retryably the next `times` times. */
  failNext(name: string, times?: number, message?: string): void;
}

export function fakeActivities(target: Target, overrides: Partial<Record<keyof Activities, Fn>> = {}): Fakes {
  const acted: string[] = [];
  const failures = new Map<string, { times: number; message: string }>();
  const maybeFail = (name: string) => {
    const f = failures.get(name);
    if (f && f.times > 0) {
      f.times--;
      throw ApplicationFailure.nonRetryable(f.message, 'TestFailure');
    }
  };
  const step = (name: string, facts?: (ctx: StepContext) => Record<string, unknown>) =>
    defineStep({
      plan: async () => [{ call: `fake.${name}`, resource: `fake/${name}`, description: `would ${name}` }],
      run: async (ctx): Promise<StepResult> => {
        maybeFail(name);
        acted.push(name);
        return { summary: `${name} done`, actions: [], facts: facts?.(ctx) };
      },
    });
  const check = (name: string) => async () => {
    maybeFail(name);
    acted.push(name);
    return { checks: [{ name, ok: true, detail: 'ok' }] };
  };
  // What the fake app table holds: batches add their runs, countBackfilled reads it (0.3).
  const table = { runs: 0 };
  const names = new Set<string>(SHAPES.flatMap((shape) => stepsOf(shape).flatMap((s) => [s.activity, ...(s.undo ? [s.undo] : [])])));
  const activities: Record<string, Fn> = {};
  for (const n of names) activities[n] = step(n);
  for (const n of new Set(SHAPES.flatMap((shape) => GATE_IDS.flatMap((g) => gateSpec(g, shape).checks)))) activities[n] = check(n);
  Object.assign(activities, {
    loadTarget: async () => target,
    planBackfill: step('planBackfill', () => ({ batches: [0, 1, 2, 3, 4].map((index) => ({ index, runs: 10 })) })),
    backfillBatch: async (_ctx: StepContext, batch: { index: number; runs: number }) => {
      maybeFail('backfillBatch');
      acted.push(`backfillBatch#${batch.index}`);
      table.runs += batch.runs;
      return { summary: 'ok', actions: [], facts: { runs: batch.runs, points: batch.runs * 7000 } };
    },
    countBackfilled: async () => ({ summary: 'counted', actions: [], facts: { runs: table.runs, points: table.runs * 7000 } }),
    checkPhase0: check('checkPhase0'),
    checkExportVerified: check('checkExportVerified'),
    checkResourcesGone: check('checkResourcesGone'),
    writeCompletionRecord: async (ctx: StepContext) => {
      if (!ctx.dryRun) acted.push('writeCompletionRecord');
      return { summary: 'record written', actions: [{ call: 'fake.write', resource: 'fake/record', description: 'write' }] };
    },
    ...overrides,
  });
  return {
    activities,
    acted,
    table,
    failNext: (name, times = 1, message = `${name} failed (injected)`) => failures.set(name, { times, message }),
  };
}

export function demoTarget(overrides: Partial<CloudTarget> = {}): CloudTarget {
  return {
    shape: 'cloud',
    gcp: { project: 'demo-project', region: 'europe-central2' },
    labels: { app: 'mlflow' },
    cloudRun: { mlflowService: 'mlflow-server', appService: 'django-app', trackingUriEnvVar: 'MLFLOW_TRACKING_URI' },
    cloudSql: { instance: 'mlflow-db', database: 'mlflow', restoreFrom: 'final-backup' },
    buckets: { backup: 'demo-backups', artifacts: 'demo-mlflow-artifacts', deleteArtifacts: true, prefix: 'mlflow-decommission' },
    buildTrigger: 'mlflow-server',
    serviceAccount: 'mlflow-server@demo-project.iam.gserviceaccount.com',
    secrets: ['MLFLOW_DB_PASSWORD'],
    databases: { mlflow: { urlEnv: 'MLFLOW_DATABASE_URL' }, app: { urlEnv: 'APP_DATABASE_URL' } },
    appTable: {
      table: 'ml_platform_quicktest',
      id: 'id',
      status: 'status',
      completedStatus: 'completed',
      runId: 'mlflow_run_id',
      history: 'training_history_json',
      artifactsPath: 'gcs_artifacts_path',
      displayName: 'display_name',
    },
    data: { histograms: 'skip', batchSize: 500, minPostCutoverExperiments: 2, referenceTables: [], acceptMlflowRevisions: [] },
    billing: { estimatedMonthlySavingsUsd: 50 },
    bakePeriod: '2s',
    approvals: {},
    ...overrides,
  };
}
