// A whole MLflow deployment for the demo and the end-to-end tests: the sandbox's Cloud Run
// services, Cloud SQL instance, trigger, buckets, service account, secrets and billing export,
// and an MLflow store with the Django app table beside it.
import pg from 'pg';
import type { z } from 'zod';
import type { Sandbox } from './sandbox';
import { seedBillingRows } from './sandbox/services/bigquery';
import { seedBuildTrigger } from './sandbox/services/cloud-build';
import { seedCloudRunService } from './sandbox/services/cloud-run';
import { seedSqlInstance } from './sandbox/services/cloud-sql';
import { seedServiceAccount } from './sandbox/services/iam';
import { seedSecret } from './sandbox/services/secret-manager';
import { grantBucket, seedBucket } from './sandbox/services/storage';
import { cloudTargetSchema } from '../src/config/schema';
import { createAppTable, createMlflowSchema, seedAppRows, seedMlflowRuns } from './mlflow-store';

export type TargetInput = z.input<typeof cloudTargetSchema>;

export const DEMO_PROJECT = 'demo-project';
export const DEMO_REGION = 'europe-central2';

/** The demo's target as it appears in the config file. */
export function demoTargetConfig(overrides: Partial<TargetInput> = {}): TargetInput {
  return {
    gcp: { project: DEMO_PROJECT, region: DEMO_REGION },
    labels: { app: 'mlflow' },
    buckets: { backup: 'demo-backups', artifacts: 'demo-mlflow-artifacts', deleteArtifacts: true },
    serviceAccount: `mlflow-server@${DEMO_PROJECT}.iam.gserviceaccount.com`,
    secrets: ['mlflow-db-password', 'mlflow-tracking-token'],
    databases: { mlflow: { urlEnv: 'MLFLOW_DATABASE_URL' }, app: { urlEnv: 'APP_DATABASE_URL' } },
    billing: { exportTable: `${DEMO_PROJECT}.billing.gcp_billing_export_v1_demo`, estimatedMonthlySavingsUsd: 50 },
    // The plan bakes for 7 days; the demo bakes for two minutes.
    bakePeriod: '2 minutes',
    ...overrides,
  };
}

/**
 * Seeds the sandbox with the deployment the target names, as it stands before the migration. With
 * `mlflowUrl`, the Cloud SQL instance holds that database: its exports are real dumps of it, deleting
 * the instance drops its tables, and a restore loads them back.
 */
export function seedDeployment(sandbox: Sandbox, target: TargetInput, opts: { mlflowUrl?: string } = {}): void {
  const project = target.gcp.project;
  const region = target.gcp.region;
  const labels = target.labels ?? { app: 'mlflow' };
  const trackingUri = 'https://mlflow-server-4kq2x7-lm.a.run.app';
  seedBucket(sandbox, { name: target.buckets.backup, labels: { app: 'platform-backups' } });
  if (target.buckets.artifacts) {
    seedBucket(sandbox, {
      name: target.buckets.artifacts,
      labels,
      objects: { '1/0a1b2c/artifacts/model/MLmodel': 'artifact_path: model\nflavors: {}\n', '1/0a1b2c/artifacts/loss.png': Buffer.alloc(2048, 7) },
    });
  }
  seedCloudRunService(sandbox, {
    project,
    region,
    name: target.cloudRun?.mlflowService ?? 'mlflow-server',
    labels,
    // The Django app calls MLflow as its own service account.
    invokers: [`serviceAccount:django-app@${project}.iam.gserviceaccount.com`],
    image: `${region}-docker.pkg.dev/${project}/mlflow/mlflow-server:2.16.2`,
    serviceAccount: target.serviceAccount,
    env: [
      { name: 'MLFLOW_ARTIFACTS_DESTINATION', value: `gs://${target.buckets.artifacts ?? 'artifacts'}` },
      { name: 'MLFLOW_BACKEND_STORE_URI', valueSource: { secretKeyRef: { secret: 'mlflow-db-password', version: 'latest' } } },
    ],
  });
  seedCloudRunService(sandbox, {
    project,
    region,
    name: target.cloudRun?.appService ?? 'django-app',
    labels: { app: 'django' },
    image: `${region}-docker.pkg.dev/${project}/app/django-app:1.42.0`,
    env: [
      { name: 'DJANGO_SETTINGS_MODULE', value: 'platform.settings.production' },
      { name: target.cloudRun?.trackingUriEnvVar ?? 'MLFLOW_TRACKING_URI', value: trackingUri },
      { name: 'MLFLOW_TRACKING_TOKEN', valueSource: { secretKeyRef: { secret: 'mlflow-tracking-token', version: '2' } } },
    ],
  });
  const database = target.cloudSql?.database ?? 'mlflow';
  const instance = seedSqlInstance(sandbox, {
    project,
    region,
    name: target.cloudSql?.instance ?? 'mlflow-db',
    labels,
    databases: [database],
    users: ['mlflow'],
    deletionProtection: true,
    backing: opts.mlflowUrl ? { [database]: opts.mlflowUrl } : {},
    settings: {
      tier: 'db-g1-small',
      ipConfiguration: { ipv4Enabled: false, privateNetwork: `projects/${project}/global/networks/default`, requireSsl: true },
      locationPreference: { zone: `${region}-b` },
      maintenanceWindow: { day: 7, hour: 3, updateTrack: 'stable' },
      backupConfiguration: { enabled: true, startTime: '02:00', pointInTimeRecoveryEnabled: true },
    },
  });
  // Set up before the migration, as 0.1 asks: the instance may write its exports to the backup bucket.
  grantBucket(sandbox, target.buckets.backup, `serviceAccount:${instance.serviceAccountEmailAddress}`, 'roles/storage.objectAdmin');
  seedBuildTrigger(sandbox, { project, name: target.buildTrigger ?? 'mlflow-server' });
  seedServiceAccount(sandbox, { project, email: target.serviceAccount, displayName: 'MLflow tracking server' });
  for (const id of target.secrets ?? []) seedSecret(sandbox, { project, id, labels, versions: [`${id}-v1`, `${id}-v2`] });
  if (target.billing?.exportTable) {
    // A month of MLflow costs before the migration; nothing after it (the point of 5.2).
    const day = 86_400_000;
    const rows = [];
    for (let d = 30; d >= 1; d--) {
      const at = new Date(Date.now() - d * day).toISOString();
      rows.push(
        { service: 'Cloud SQL', sku: 'db-g1-small', cost: 0.95, usage_start_time: at, labels, resource: `projects/${project}/instances/mlflow-db` },
        { service: 'Cloud Run', sku: 'CPU allocation', cost: 0.62, usage_start_time: at, labels, resource: `projects/${project}/locations/${region}/services/mlflow-server` },
        { service: 'Cloud Run', sku: 'CPU allocation', cost: 1.8, usage_start_time: at, labels: { app: 'django' }, resource: `projects/${project}/locations/${region}/services/django-app` },
      );
    }
    seedBillingRows(sandbox, { table: target.billing.exportTable, rows });
  }
  sandbox.save();
}

export interface SeedDemoOptions {
  mlflowUrl: string;
  appUrl: string;
  sandbox: Sandbox;
  /** MLflow runs, one completed QuickTest each (default 200). */
  runs?: number;
  epochs?: number;
  /** Runs per backfill batch (the config's data.batchSize). */
  batchSize?: number;
}

export const CUTOVER = '2024-06-01T00:00:00Z';
const TRAINING_BUCKET = 'demo-training-artifacts';

/** Seeds the MLflow store, the app DB and the sandbox; returns the target for the config file. */
export async function seedDemo(opts: SeedDemoOptions): Promise<{ target: TargetInput }> {
  const target = demoTargetConfig({
    appTable: { finishedAt: 'finished_at' },
    data: { cutoverDate: CUTOVER, referenceTables: [{ table: 'model_metadata', column: 'mlflow_run_id' }], ...(opts.batchSize ? { batchSize: opts.batchSize } : {}) },
  });
  const appTable = cloudTargetSchema.shape.appTable.parse(target.appTable);
  const mlflow = new pg.Client({ connectionString: opts.mlflowUrl });
  const app = new pg.Client({ connectionString: opts.appUrl });
  await Promise.all([mlflow.connect(), app.connect()]);
  try {
    await createMlflowSchema(mlflow);
    const runIds = await seedMlflowRuns(mlflow, { runs: opts.runs ?? 200, epochs: opts.epochs ?? 30, seed: 42 });
    await createAppTable(app, appTable);
    await seedAppRows(app, appTable, {
      runIds,
      alreadyCached: 0,
      notCompleted: 4,
      withoutRunId: 3,
      artifactsRoot: `gs://${TRAINING_BUCKET}/quicktests`,
      finishedFrom: '2024-01-01T00:00:00Z',
      finishedBefore: CUTOVER,
    });
    // Seed 004: another app table holds run ids too; the audit checks each is in the export.
    await app.query(`CREATE TABLE model_metadata (id SERIAL PRIMARY KEY, model_name TEXT NOT NULL, mlflow_run_id VARCHAR(32))`);
    await app.query(`INSERT INTO model_metadata (model_name, mlflow_run_id) SELECT 'model-' || n, r FROM unnest($1::text[]) WITH ORDINALITY AS t(r, n) WHERE n % 10 = 1`, [runIds]);
    // After the cutover the trainer writes training_metrics.json itself and Django caches it.
    const objects: Record<string, string> = {};
    for (let n = 1; n <= 3; n++) {
      const metrics = postCutoverMetrics(n);
      const path = `quicktests/post-cutover-${n}`;
      objects[`${path}/training_metrics.json`] = JSON.stringify(metrics);
      await app.query(
        `INSERT INTO ${appTable.table} (${appTable.displayName}, ${appTable.status}, ${appTable.runId}, ${appTable.history}, ${appTable.artifactsPath}, finished_at)
         VALUES ($1, $2, NULL, $3, $4, $5)`,
        [`Quick test after cutover ${n}`, appTable.completedStatus, JSON.stringify(metrics), `gs://${TRAINING_BUCKET}/${path}`, new Date(Date.parse(CUTOVER) + n * 86_400_000).toISOString()],
      );
    }
    seedBucket(opts.sandbox, { name: TRAINING_BUCKET, labels: { app: 'ml-platform' }, objects });
  } finally {
    await Promise.all([mlflow.end(), app.end()]);
  }
  seedDeployment(opts.sandbox, target, { mlflowUrl: opts.mlflowUrl });
  return { target };
}

/** A training_metrics.json as the trainer's MetricsCollector writes it (the plan's appendix). */
export function postCutoverMetrics(n: number) {
  const epochs = [0, 1, 2, 3, 4];
  const curve = (base: number) => epochs.map((e) => Math.round((base / (e + 1)) * 1e6) / 1e6);
  return {
    saved_at: new Date(Date.parse(CUTOVER) + n * 86_400_000).toISOString(),
    available: true,
    epochs,
    loss: { loss: curve(0.5 + n / 10), val_loss: curve(0.6 + n / 10) },
    gradient: { total: curve(1.2) },
    weight_stats: {},
    gradient_stats: {},
    final_metrics: { final_loss: 0.1, test_recall_at_10: 0.005 * n },
    params: { epochs: '5', optimizer: 'adagrad' },
  };
}

/** `--fail-step`: the cloud call behind that step answers 403 until the fault is cleared. */
export function demoFaults(sandbox: Sandbox, step: string, target: TargetInput): void {
  const project = target.gcp.project;
  const matches: Record<string, string> = {
    '0.1': `POST /v1/projects/${project}/instances/[^/]+/export`,
    '3.1': `DELETE /v2/projects/${project}/locations/[^/]+/services/`,
    '3.2': `DELETE /v1/projects/${project}/instances/`,
    '3.3': `DELETE /v1/projects/${project}/.*triggers/`,
    '3.4': `DELETE /storage/v1/b/${target.buckets.artifacts}`,
    '3.5': `DELETE /v1/projects/${project}/serviceAccounts/`,
    '3.6': `POST /v1/projects/${project}/secrets/.*:disable`,
  };
  const match = matches[step];
  if (!match) throw new Error(`--fail-step ${step}: choose one of ${Object.keys(matches).join(', ')}`);
  sandbox.addFault({ match, status: 403 });
}
