// The two Postgres shapes of MLflow as a team would have them, on one Postgres server, for the
// demo (--shape) and the end-to-end tests. No GCP: the backup location is a directory.
//   shared-database (seed 000): MLflow's tables in the app's own database, beside the GPU
//     monitoring app's ten tables (one foreign key among them, its own alembic revision), and
//     the Django QuickTest table that receives the histories.
//   self-hosted (seed 002): MLflow's own database and role on the server, a second, unrelated
//     database on the same server, an artifacts directory, and the app database.
// The MLflow store is either seeded here (synthetic runs) or one a real MLflow server wrote.
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import pg from 'pg';
import type { z } from 'zod';
import { configFileSchema, type selfHostedTargetSchema, type sharedDatabaseTargetSchema, type Target } from '../src/config/schema';
import { CUTOVER, postCutoverMetrics } from './demo-data';
import { createAppTable, createMlflowSchema, seedAppRows, seedMlflowRuns } from './mlflow-store';
import { createDatabase } from './postgres';

/** An app revision in alembic_version beside MLflow's (seed 000: both use Alembic). */
export const APP_ALEMBIC_REVISION = 'f00dcafe0001';

/** Seed 000's application tables: gpu_metrics and two more reference gpu_assets. */
export const SEED_000_APP_DDL = `
CREATE TABLE gpu_assets (id SERIAL PRIMARY KEY, serial VARCHAR(64) NOT NULL UNIQUE, model VARCHAR(64) NOT NULL);
CREATE TABLE gpu_metrics (id BIGSERIAL PRIMARY KEY, gpu_id INTEGER NOT NULL REFERENCES gpu_assets (id), at TIMESTAMPTZ NOT NULL, temperature_c REAL, utilization REAL);
CREATE INDEX gpu_metrics_gpu_at ON gpu_metrics (gpu_id, at);
CREATE TABLE gpu_health_scores (id SERIAL PRIMARY KEY, gpu_id INTEGER NOT NULL REFERENCES gpu_assets (id), score REAL NOT NULL, at TIMESTAMPTZ NOT NULL);
CREATE TABLE gpu_features (id SERIAL PRIMARY KEY, gpu_id INTEGER NOT NULL, feature VARCHAR(64) NOT NULL, value DOUBLE PRECISION);
CREATE TABLE gpu_failure_predictions (id SERIAL PRIMARY KEY, gpu_id INTEGER NOT NULL, probability REAL NOT NULL, horizon_days INTEGER NOT NULL);
CREATE TABLE gpu_economic_decisions (id SERIAL PRIMARY KEY, gpu_id INTEGER NOT NULL, decision VARCHAR(32) NOT NULL);
CREATE TABLE gpu_failure_labels (id SERIAL PRIMARY KEY, gpu_id INTEGER NOT NULL, failed_at TIMESTAMPTZ);
CREATE TABLE anomalies (id SERIAL PRIMARY KEY, gpu_id INTEGER NOT NULL, kind VARCHAR(64) NOT NULL, at TIMESTAMPTZ NOT NULL);
CREATE TABLE feature_definitions (name VARCHAR(64) PRIMARY KEY, description TEXT);
INSERT INTO gpu_assets (serial, model) SELECT 'GPU-' || n, CASE WHEN n % 2 = 0 THEN 'A100' ELSE 'H100' END FROM generate_series(1, 8) n;
INSERT INTO gpu_metrics (gpu_id, at, temperature_c, utilization) SELECT 1 + n % 8, timestamptz '2026-01-01' + n * interval '1 minute', 40 + n % 30, (n % 100) / 100.0 FROM generate_series(1, 500) n;
INSERT INTO gpu_health_scores (gpu_id, score, at) SELECT 1 + n % 8, n / 50.0, timestamptz '2026-01-01' + n * interval '1 hour' FROM generate_series(1, 40) n;
INSERT INTO feature_definitions VALUES ('temp_p95', '95th percentile temperature'), ('util_mean', 'mean utilization');
INSERT INTO anomalies (gpu_id, kind, at) VALUES (3, 'thermal', '2026-01-02'), (5, 'ecc', '2026-01-03');
`;

export const SEED_000_APP_TABLES = [
  'anomalies', 'feature_definitions', 'gpu_assets', 'gpu_economic_decisions', 'gpu_failure_labels', 'gpu_failure_predictions', 'gpu_features', 'gpu_health_scores', 'gpu_metrics',
];
const QUICKTEST = { table: 'ml_platform_quicktest', id: 'id', status: 'status', completedStatus: 'completed', runId: 'mlflow_run_id', history: 'training_history_json', artifactsPath: 'gcs_artifacts_path', displayName: 'display_name', finishedAt: 'finished_at' };

export interface ShapeDeployment {
  name: string;
  target: Target;
  configPath: string;
  /** The worker's environment: the config file and every connection string the target names. */
  workerEnv: Record<string, string>;
  /** Where the dump, the raw export, snapshots and the record go (file://). */
  backupDir: string;
  runIds: string[];
  /** Connection strings, for the test's own independent reads. */
  urls: Record<string, string>;
}

interface Common {
  adminUrl: string;
  name: string;
  dir: string;
  /** Synthetic MLflow runs to seed (default 50), when `mlflowTemplate` is not given. */
  runs?: number;
  epochs?: number;
  bakePeriod?: string;
}

/** The QuickTest table beside the runs, and post-cutover experiments whose training_metrics.json is a file on this machine. */
async function seedApp(db: pg.Client, runIds: string[], dir: string): Promise<void> {
  await createAppTable(db, QUICKTEST);
  const root = pathToFileURL(join(dir, 'training-artifacts')).href;
  await seedAppRows(db, QUICKTEST, { runIds, notCompleted: 2, withoutRunId: 1, artifactsRoot: `${root}/quicktests`, finishedFrom: '2024-01-01T00:00:00Z', finishedBefore: CUTOVER });
  for (let n = 1; n <= 3; n++) {
    const metrics = postCutoverMetrics(n);
    const folder = join(dir, 'training-artifacts', `post-cutover-${n}`);
    mkdirSync(folder, { recursive: true });
    writeFileSync(join(folder, 'training_metrics.json'), JSON.stringify(metrics));
    await db.query(`INSERT INTO ${QUICKTEST.table} (display_name, status, mlflow_run_id, training_history_json, gcs_artifacts_path, finished_at) VALUES ($1, 'completed', NULL, $2, $3, $4)`, [
      `Quick test after cutover ${n}`,
      JSON.stringify(metrics),
      pathToFileURL(folder).href,
      new Date(Date.parse(CUTOVER) + n * 86_400_000).toISOString(),
    ]);
  }
}

async function withClient<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

/** A copy of a database (CREATE DATABASE … TEMPLATE): the template must have no connections, so they are ended first. */
export async function cloneDatabase(adminUrl: string, template: string, name: string): Promise<string> {
  await withClient(adminUrl, async (c) => {
    await c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    for (let attempt = 1; ; attempt++) {
      await c.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [template]);
      try {
        await c.query(`CREATE DATABASE "${name}" TEMPLATE "${template}"`);
        return;
      } catch (err) {
        if ((err as { code?: string }).code !== '55006' || attempt > 20) throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  });
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

const finish = (name: string, dir: string, target: z.input<typeof sharedDatabaseTargetSchema> | z.input<typeof selfHostedTargetSchema>, env: Record<string, string>) => {
  const configPath = join(dir, 'mlflow-decommission.config.json');
  writeFileSync(configPath, JSON.stringify({ targets: { [name]: target } }, null, 2));
  return { target: configFileSchema.parse({ targets: { [name]: target } }).targets[name], configPath, workerEnv: { MLFLOW_DECOMMISSION_CONFIG: configPath, ...env } };
};

const dataConfig = { cutoverDate: CUTOVER, batchSize: 20 };

/** Seed 000. `mlflowTemplate`: a database a real MLflow wrote, copied; else a synthetic store. `appRevision`: the app's row in alembic_version too. */
export async function createSharedDatabaseDeployment(opts: Common & { mlflowTemplate?: string; appRevision?: string }): Promise<ShapeDeployment> {
  mkdirSync(opts.dir, { recursive: true });
  const db = `${opts.name}_shared`;
  const url = opts.mlflowTemplate ? await cloneDatabase(opts.adminUrl, opts.mlflowTemplate, db) : await createDatabase(opts.adminUrl, db);
  const runIds = await withClient(url, async (c) => {
    const ids = opts.mlflowTemplate
      ? (await c.query(`SELECT run_uuid FROM runs WHERE lifecycle_stage = 'active' ORDER BY run_uuid`)).rows.map((r) => r.run_uuid)
      : await (async () => {
          await createMlflowSchema(c);
          return seedMlflowRuns(c, { runs: opts.runs ?? 50, epochs: opts.epochs ?? 20, seed: 7 });
        })();
    // A copied store keeps its tables' owner (MLflow's role there): here they are the app database's.
    const { rows: foreign } = await c.query(`SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tableowner <> current_user`);
    for (const r of foreign) await c.query(`ALTER TABLE public."${r.tablename}" OWNER TO CURRENT_USER`);
    const { rows: fns } = await c.query(`SELECT p.oid::regprocedure::text AS f FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public' AND p.proowner <> (SELECT oid FROM pg_roles WHERE rolname = current_user)`);
    for (const r of fns) await c.query(`ALTER FUNCTION ${r.f} OWNER TO CURRENT_USER`);
    await c.query(SEED_000_APP_DDL);
    if (opts.appRevision) await c.query('INSERT INTO alembic_version (version_num) VALUES ($1)', [opts.appRevision]);
    await seedApp(c, ids, opts.dir);
    return ids;
  });
  const backupDir = join(opts.dir, 'backups');
  mkdirSync(backupDir, { recursive: true });
  const target = {
    shape: 'shared-database' as const,
    // One database for both: the app's, holding MLflow's tables too.
    databases: { mlflow: { urlEnv: 'SHARED_DATABASE_URL' }, app: { urlEnv: 'SHARED_DATABASE_URL' } },
    backup: pathToFileURL(backupDir).href,
    appTable: { finishedAt: 'finished_at' },
    data: dataConfig,
    bakePeriod: opts.bakePeriod ?? '2 minutes',
  };
  return { name: opts.name, ...finish(opts.name, opts.dir, target, { SHARED_DATABASE_URL: url }), backupDir, runIds, urls: { shared: url } };
}

/** Seed 002: MLflow's database and role (LOGIN, with a password the config never holds), a second database, an artifacts directory. */
export async function createSelfHostedDeployment(
  opts: Common & {
    /** The role MLflow connects as (default `<name>_mlflow`): created here, owning MLflow's database. */
    role?: string;
    trackingUrl: string;
    /** Before the app is seeded: let a real MLflow server write the store (the URL is the role's). */
    writeStore?: (mlflowUrl: string) => Promise<void>;
  },
): Promise<ShapeDeployment & { role: string; database: string; otherDatabase: string; artifactsDir: string }> {
  mkdirSync(opts.dir, { recursive: true });
  const role = opts.role ?? `${opts.name}_mlflow`;
  const database = `${opts.name}_mlflow_tracking`;
  const otherDatabase = `${opts.name}_market_data`;
  const password = randomBytes(12).toString('hex');
  await withClient(opts.adminUrl, async (c) => {
    await c.query(`DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`);
    await c.query(`DROP ROLE IF EXISTS "${role}"`);
    await c.query(`CREATE ROLE "${role}" LOGIN PASSWORD '${password}'`);
    await c.query(`CREATE DATABASE "${database}" OWNER "${role}"`);
  });
  const mlflowUrl = new URL(opts.adminUrl);
  Object.assign(mlflowUrl, { username: role, password, pathname: `/${database}` });
  let runIds: string[];
  if (opts.writeStore) {
    await opts.writeStore(mlflowUrl.toString());
    runIds = await withClient(mlflowUrl.toString(), async (c) => (await c.query(`SELECT run_uuid FROM runs WHERE lifecycle_stage = 'active' ORDER BY run_uuid`)).rows.map((r) => r.run_uuid));
  } else {
    runIds = await withClient(mlflowUrl.toString(), async (c) => {
      await createMlflowSchema(c);
      return seedMlflowRuns(c, { runs: opts.runs ?? 50, epochs: opts.epochs ?? 20, seed: 11 });
    });
  }
  // Another service's database on the same server (seed 002: TimescaleDB shared by the trading system).
  const otherUrl = await createDatabase(opts.adminUrl, otherDatabase);
  await withClient(otherUrl, (c) => c.query(`CREATE TABLE ticks (at TIMESTAMPTZ NOT NULL, symbol TEXT NOT NULL, price NUMERIC(12, 4)); INSERT INTO ticks SELECT timestamptz '2026-01-01' + n * interval '1 second', 'BTC', 40000 + n FROM generate_series(1, 300) n`));
  const appUrl = await createDatabase(opts.adminUrl, `${opts.name}_app`);
  await withClient(appUrl, (c) => seedApp(c, runIds, opts.dir));
  const artifactsDir = join(opts.dir, 'mlflow-artifacts');
  for (const [path, body] of [['1/abc/artifacts/model/MLmodel', 'artifact_path: model\n'], ['1/abc/artifacts/loss.png', randomBytes(4096)], ['2/def/artifacts/notes.txt', 'épochs: 12\n']] as const) {
    mkdirSync(join(artifactsDir, path, '..'), { recursive: true });
    writeFileSync(join(artifactsDir, path), body);
  }
  const backupDir = join(opts.dir, 'backups');
  mkdirSync(backupDir, { recursive: true });
  const target = {
    shape: 'self-hosted' as const,
    databases: { mlflow: { urlEnv: 'MLFLOW_DATABASE_URL' }, app: { urlEnv: 'APP_DATABASE_URL' }, server: { urlEnv: 'SERVER_DATABASE_URL' } },
    mlflow: { trackingUrl: opts.trackingUrl, database, role, artifactsDirectory: artifactsDir },
    backup: pathToFileURL(backupDir).href,
    appTable: { finishedAt: 'finished_at' },
    data: dataConfig,
    bakePeriod: opts.bakePeriod ?? '2 minutes',
  };
  const env = { MLFLOW_DATABASE_URL: mlflowUrl.toString(), APP_DATABASE_URL: appUrl, SERVER_DATABASE_URL: opts.adminUrl };
  return {
    name: opts.name,
    ...finish(opts.name, opts.dir, target, env),
    backupDir,
    runIds,
    urls: { mlflow: mlflowUrl.toString(), app: appUrl, other: otherUrl, admin: opts.adminUrl },
    role,
    database,
    otherDatabase,
    artifactsDir,
  };
}
