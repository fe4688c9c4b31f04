// One configuration, one source of truth (seed 003): every resource of a target is named here,
// once, and validated before anything runs. Connection strings are never in the file: it names
// the env var that holds each one, so nothing secret reaches the Temporal history.
//
// Pure module (zod and ms only): the workflow bundle imports it to validate input. Each default is
// written once, on its field; an absent section is parsed as {} (prefault), which fills them in.
import ms, { type StringValue } from 'ms';
import { z } from 'zod';
import { GATE_IDS, type GateId } from '../types';

const envVarName = z
  .string()
  .regex(/^[A-Z_][A-Z0-9_]*$/, 'expected the NAME of an environment variable (e.g. MLFLOW_DATABASE_URL), not its value');
const sqlIdentifier = z.string().regex(/^[a-z_][a-z0-9_]*$/, 'expected a lower-case SQL identifier');
const duration = z.string().refine((v) => durationMs(v) > 0, 'expected a duration such as "7 days", "36h" or "90s"');
const bucketName = z.string().regex(/^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$/, 'expected a bucket name without gs://');
/** service_id: "must begin with letter, and cannot end with hyphen; must contain fewer than 50 characters" (google/cloud/run/v2/service.proto). */
const cloudRunService = z.string().regex(/^[a-z]([a-z0-9-]{0,47}[a-z0-9])?$/, 'expected a Cloud Run service name (lower-case letters, digits and hyphens, starting with a letter, under 50 characters)');
/** BuildTrigger.name: "only alphanumeric characters and dashes … 1-64 characters long … begin and end with an alphanumeric character" (cloudbuild.proto). */
const buildTriggerName = z.string().regex(/^[A-Za-z0-9]([A-Za-z0-9-]{0,62}[A-Za-z0-9])?$/, 'expected a Cloud Build trigger name (letters, digits and hyphens, at most 64)');

/**
 * A map keyed by names the operator chose. z.record skips a "__proto__" key without a word, so it is
 * refused here instead (a name is kept or refused, never lost); the result has no prototype, so a
 * lookup by a name the operator typed never finds an inherited member such as "constructor".
 */
function namedRecord<V extends z.ZodType>(key: z.ZodType<string>, value: V) {
  const record = z.record(key, value);
  return z
    .preprocess((input: z.input<typeof record>, ctx) => {
      if (input && typeof input === 'object' && Object.hasOwn(input, '__proto__')) {
        ctx.addIssue({ code: 'custom', message: `"__proto__" is not an allowed name here`, input });
      }
      return input;
    }, record)
    .transform((r) => Object.assign(Object.create(null) as Record<string, z.output<V>>, r));
}

export const approvalsSchema = z
  .object(Object.fromEntries(GATE_IDS.map((g) => [g, z.boolean().optional()])) as Record<GateId, z.ZodOptional<z.ZodBoolean>>)
  .strict();

/** Defaults from the plan: a human signs off after Phase 0, before Phase 3, at Phase 4 and before closure. */
export const DEFAULT_APPROVALS: Record<GateId, boolean> = {
  'phase-0': true,
  'phase-1': false,
  'phase-2': true,
  'phase-3': false,
  'phase-4': true,
  closure: true,
};

const database = z
  .object({
    /** Env var holding the connection string, e.g. postgres://user:pass@host/db. */
    urlEnv: envVarName,
  })
  .strict();

/** Seed 001: MLflow on Cloud Run with its own Cloud SQL instance, and what surrounds it on GCP. */
export const cloudTargetSchema = z
  .object({
    /** The deployment's shape (see targetSchema); `cloud-sql-dedicated`, its first name, is still read in existing config files. */
    shape: z
      .enum(['cloud', 'cloud-sql-dedicated'])
      .default('cloud')
      .transform(() => 'cloud' as const),
    gcp: z
      .object({
        project: z.string().regex(/^[a-z][a-z0-9-]{4,28}[a-z0-9]$/, 'expected a GCP project ID (6–30 lower-case letters, digits, hyphens)'),
        region: z.string().regex(/^[a-z]+-[a-z]+[0-9]+$/, 'expected a GCP region such as europe-central2'),
      })
      .strict(),
    /** Labels every MLflow resource carries; a step refuses a resource without them, and 5.5 looks for leftovers by them. */
    labels: namedRecord(z.string().regex(/^[a-z][a-z0-9_-]{0,62}$/), z.string()).refine((l) => Object.keys(l).length > 0, 'name at least one label').default({ app: 'mlflow' }),
    cloudRun: z
      .object({
        mlflowService: cloudRunService.default('mlflow-server'),
        appService: cloudRunService.default('django-app'),
        /** The env var removed from appService in step 5.3. */
        trackingUriEnvVar: envVarName.default('MLFLOW_TRACKING_URI'),
      })
      .strict()
      .prefault({}),
    cloudSql: z
      .object({
        instance: z.string().regex(/^[a-z][a-z0-9-]{0,96}$/, 'expected a Cloud SQL instance name').default('mlflow-db'),
        database: z.string().default('mlflow'),
        /**
         * What undoing 3.2 restores from: the final backup Cloud SQL takes at the delete (databases,
         * users and data up to the delete), or a SQL export 3.2 takes after 3.1 stopped MLflow.
         */
        restoreFrom: z.enum(['final-backup', 'export']).default('final-backup'),
      })
      .strict()
      .prefault({}),
    buckets: z
      .object({
        /** Snapshots, the SQL export and the raw CSV export go here; it is never deleted. */
        backup: bucketName,
        /** MLflow's artifact bucket, deleted in 3.4 only when deleteArtifacts is true. */
        artifacts: bucketName.optional(),
        deleteArtifacts: z.boolean().default(false),
        /** Object prefix inside the backup bucket. */
        prefix: z.string().default('mlflow-decommission'),
      })
      .strict(),
    buildTrigger: buildTriggerName.default('mlflow-server'),
    serviceAccount: z.string().email('expected a service account email such as mlflow-server@PROJECT.iam.gserviceaccount.com'),
    /** Secret Manager secret IDs (not values): disabled in 3.6, deleted in Phase 5 after the bake period. */
    secrets: z.array(z.string().regex(/^[A-Za-z0-9_-]{1,255}$/, 'expected a secret ID')).default([]),
    databases: z
      .object({
        mlflow: database,
        app: database,
      })
      .strict(),
    /** The Django QuickTest table that receives training_history_json. */
    appTable: z
      .object({
        table: sqlIdentifier.default('ml_platform_quicktest'),
        id: sqlIdentifier.default('id'),
        status: sqlIdentifier.default('status'),
        completedStatus: z.string().default('completed'),
        runId: sqlIdentifier.default('mlflow_run_id'),
        history: sqlIdentifier.default('training_history_json'),
        artifactsPath: sqlIdentifier.default('gcs_artifacts_path'),
        displayName: sqlIdentifier.default('display_name'),
        finishedAt: sqlIdentifier.optional(),
      })
      .strict()
      .prefault({}),
    data: z
      .object({
        /** 0.4: option A skips histogram series (the plan's recommendation), B includes them. */
        histograms: z.enum(['skip', 'include']).default('skip'),
        /** Verify every migrated run point for point, or a sample of this many on very large stores. */
        fidelitySample: z.number().int().positive().optional(),
        /** Runs per backfill batch. */
        batchSize: z.number().int().positive().default(500),
        /** Batches backfilled at once over all workers (README, Adding workers); unset: one worker's activity slots. */
        backfillLanes: z.number().int().min(1).max(256).optional(),
        /** Phases 1–2: experiments finished after this date must have training_metrics.json. */
        cutoverDate: z.iso.datetime({ offset: true }).optional(),
        minPostCutoverExperiments: z.number().int().nonnegative().default(2),
        /** Seed 004: app tables holding MLflow run ids, checked against the export. */
        referenceTables: z.array(z.object({ table: sqlIdentifier, column: sqlIdentifier }).strict()).default([]),
        /** MLflow schema (Alembic) revisions newer than the tool knows, accepted after a dry run looked right. */
        acceptMlflowRevisions: z.array(z.string().regex(/^[0-9a-f]{12,13}$/, 'expected an Alembic revision id such as 867495a8f9d4')).default([]),
      })
      .strict()
      .prefault({}),
    billing: z
      .object({
        /** BigQuery billing export, e.g. my-project.billing.gcp_billing_export_v1_XXXX. Absent: a human checks the console. */
        exportTable: z.string().regex(/^[a-z0-9-]+\.[A-Za-z0-9_]+\.[A-Za-z0-9_]+$/, 'expected project.dataset.table').optional(),
        /** For the completion record. */
        estimatedMonthlySavingsUsd: z.number().nonnegative().default(50),
      })
      .strict()
      .prefault({}),
    /** Phase 5: wait this long after the deletions before checking the bill. */
    bakePeriod: duration.default('7 days'),
    approvals: approvalsSchema.default({}),
  })
  .strict();

/** Where a shape without Cloud SQL keeps its dump, raw export, snapshots and record: a bucket, or a directory on the worker. */
const backupLocation = z
  .string()
  .regex(/^(gs:\/\/[a-z0-9][a-z0-9._-]{1,61}[a-z0-9](\/[^\s]*)?|file:\/\/\/[^\s]*)$/, 'expected gs://BUCKET[/path] or file:///absolute/directory (on the worker)')
  .transform((v) => v.replace(/\/+$/, ''));

/** What every shape shares: the app table that receives the histories, the data options, the timing and the gates. */
const everyShape = cloudTargetSchema.pick({ appTable: true, data: true, bakePeriod: true, approvals: true }).shape;

/** No cloud bill: the estimate is only for the completion record. */
const savings = z
  .object({ estimatedMonthlySavingsUsd: z.number().nonnegative().default(0) })
  .strict()
  .prefault({});

/** Seed 000: MLflow's tables in the `public` schema of the app's own database, beside the app's tables. */
export const sharedDatabaseTargetSchema = z
  .object({
    shape: z.literal('shared-database'),
    ...everyShape,
    /** Both usually name the same database; `mlflow` must be able to drop MLflow's tables (their owner). */
    databases: z.object({ mlflow: database, app: database }).strict(),
    backup: backupLocation,
    billing: savings,
  })
  .strict();

/** Seed 002: MLflow's own database and role on a Postgres (or TimescaleDB) server that other services share. */
export const selfHostedTargetSchema = z
  .object({
    shape: z.literal('self-hosted'),
    ...everyShape,
    databases: z
      .object({
        /** MLflow's database, read in Phase 0. */
        mlflow: database,
        app: database,
        /** A role that may drop MLflow's database and role, connected to another database of the same server (e.g. `postgres`). */
        server: database,
      })
      .strict(),
    mlflow: z
      .object({
        /** The tracking server: Phase 3 waits until its /health no longer answers. */
        trackingUrl: z.url({ protocol: /^https?$/, error: 'expected the tracking server URL, e.g. http://mlflow:5000' }),
        /** The database and role MLflow uses on that server (seed 002: mlflow_tracking, ultrathink). */
        database: sqlIdentifier,
        role: sqlIdentifier,
        /** The artifacts volume as the worker sees it: archived with a manifest, then emptied, in 3.1. */
        artifactsDirectory: z.string().regex(/^\/\S*$/, 'expected an absolute directory path on the worker').optional(),
      })
      .strict(),
    backup: backupLocation,
    billing: savings,
  })
  .strict();

/** One target: the `shape` field says which MLflow deployment it is, and so which resources it names. */
export const targetSchema = z.discriminatedUnion('shape', [cloudTargetSchema, sharedDatabaseTargetSchema, selfHostedTargetSchema], {
  error: (issue) => (issue.code === 'invalid_union' ? 'expected "cloud" (the default), "shared-database" or "self-hosted"' : undefined),
});

export type Target = z.infer<typeof targetSchema>;
export type CloudTarget = z.infer<typeof cloudTargetSchema>;
export type SharedDatabaseTarget = z.infer<typeof sharedDatabaseTargetSchema>;
export type SelfHostedTarget = z.infer<typeof selfHostedTargetSchema>;

export const configFileSchema = z
  .object({
    $schema: z.string().optional(),
    targets: namedRecord(z.string().regex(/^[a-z][a-z0-9-]{0,40}$/, 'expected a target name of lower-case letters, digits and hyphens'), targetSchema),
  })
  .strict();
export type ConfigFile = z.infer<typeof configFileSchema>;

/** The one JSON object the UI's Start Workflow form sends. `{"target": "demo"}` is enough. */
export const migrationInputSchema = z
  .object({
    target: z.string().min(1, 'name the target from the config file, e.g. {"target": "demo"}'),
    dryRun: z.boolean().default(false),
    /** Per-gate override of whether a human must approve, e.g. {"phase-4": false}. */
    approvals: approvalsSchema.optional(),
    bakePeriod: duration.optional(),
    /** Backfill every completed experiment, even those already cached. */
    force: z.boolean().default(false),
  })
  .strict();
export type MigrationInput = z.input<typeof migrationInputSchema>;
export type ResolvedInput = z.output<typeof migrationInputSchema>;

/** "field.path: message; …" — the form every validation error takes, so the operator sees what to fix. */
export function describeIssues(error: z.ZodError): string {
  return error.issues
    .map((i) => {
      const path = i.path.length ? i.path.join('.') : '(root)';
      const msg = i.code === 'unrecognized_keys' ? `unknown field(s) ${i.keys.map((k) => `"${k}"`).join(', ')}` : i.message;
      return `${path}: ${msg}`;
    })
    .join('; ');
}

/** Milliseconds in a duration such as "7 days" or "36h", parsed as Temporal parses its timers (the `ms` package); NaN when it is not one. */
export function durationMs(value: string): number {
  try {
    return ms(value as StringValue);
  } catch {
    return NaN; // ms throws on an empty or over-long string
  }
}

export function workflowIdFor(target: string): string {
  return `mlflow-decommission-${target}`;
}

/** Approvals after applying the target's and then the input's overrides. */
export function effectiveApprovals(target: Target, input: ResolvedInput): Record<GateId, boolean> {
  return { ...DEFAULT_APPROVALS, ...stripUndefined(target.approvals), ...stripUndefined(input.approvals ?? {}) };
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
