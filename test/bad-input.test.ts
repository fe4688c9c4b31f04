// The bad-input matrix: every case is refused with an error that names what is wrong and what to
// do, and changes nothing (no mutating cloud call, the app DB untouched). Workflow-level cases
// (approving a gate that is not waiting, skipping a step that must not be skipped, a second
// migration of one target, invalid workflow input) live in test/workflows/mlflow-decommission.test.ts.
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createDeployment, type Deployment } from '../dev/deployment';
import { APP_ALEMBIC_REVISION, createSelfHostedDeployment, createSharedDatabaseDeployment, type ShapeDeployment } from '../dev/shape-deployment';
import { createActivities } from '../src/activities';
import { createGcpClients, type GcpClients } from '../src/adapters/gcp/clients';
import { createGcsObjectStore } from '../src/adapters/gcp/gcs-object-store';
import { createLocalObjectStore } from '../src/adapters/local-object-store';
import { createDatabases } from '../src/adapters/postgres';
import { loadConfigFile } from '../src/config/environment';
import { configFileSchema, type CloudTarget, type Target } from '../src/config/schema';
import { MigrationInputError, startMigration } from '../src/temporal/client';
import type { StepContext } from '../src/types';
import { failureOf } from './support/failures';

const example = JSON.parse(readFileSync('mlflow-decommission.config.example.json', 'utf8'));

function configWith(path: string[], value: unknown): string {
  const bad = structuredClone(example);
  let o = bad.targets['b2b-recs'];
  for (const k of path.slice(0, -1)) o = o[k] ??= {};
  o[path.at(-1)!] = value;
  const file = join(mkdtempSync(join(tmpdir(), 'cfg-')), 'config.json');
  writeFileSync(file, JSON.stringify(bad));
  return file;
}

describe('a bad config file is refused at worker start, naming the field and the expected form', () => {
  it.each([
    [['gcp', 'project'], 'My Project', 'gcp.project: expected a GCP project ID'],
    [['gcp', 'region'], 'Europe', 'gcp.region: expected a GCP region'],
    [['gcp', 'zone'], 'europe-central2-a', 'gcp: unknown field(s) "zone"'],
    [['labels'], {}, 'labels: name at least one label'],
    [['cloudSql', 'instance'], 'MLflow_DB', 'cloudSql.instance: expected a Cloud SQL instance name'],
    [['buckets', 'artifacts'], 'gs://artifacts', 'buckets.artifacts: expected a bucket name without gs://'],
    [['secrets'], ['projects/p/secrets/x'], 'secrets.0: expected a secret ID'],
    [['databases', 'app', 'urlEnv'], 'postgres://app:pw@db/app', 'databases.app.urlEnv: expected the NAME of an environment variable'],
    [['databases', 'app', 'password'], 'pw', 'databases.app: unknown field(s) "password"'],
    [['appTable', 'history'], 'training history', 'appTable.history: expected a lower-case SQL identifier'],
    [['data', 'histograms'], 'maybe', 'data.histograms'],
    [['data', 'batchSize'], 0, 'data.batchSize'],
    [['data', 'cutoverDate'], 'next Tuesday', 'data.cutoverDate'],
    [['data', 'acceptMlflowRevisions'], ['latest'], 'data.acceptMlflowRevisions.0: expected an Alembic revision id'],
    [['billing', 'exportTable'], 'billing_export', 'billing.exportTable: expected project.dataset.table'],
    [['approvals', 'phase-9'], true, 'approvals: unknown field(s) "phase-9"'],
    [['bakePeriod'], 'soon', 'bakePeriod: expected a duration'],
  ])('%j = %j', (path, value, message) => {
    expect(() => loadConfigFile(configWith(path as string[], value))).toThrow(`targets.b2b-recs.${message}`);
  });
});

describe('bad workflow input is refused before anything starts', () => {
  const client = new Proxy({}, { get: () => { throw new Error('must not reach Temporal'); } }) as never;
  it.each([
    [{}, 'target: '],
    [{ target: 'demo', dryRun: 'yes' }, 'dryRun'],
    [{ target: 'demo', force: 1 }, 'force'],
    [{ target: 'demo', bakePeriod: '-5m' }, 'bakePeriod: expected a duration'],
    [{ target: 'demo', approvals: { 'phase-0': 'no' } }, 'approvals.phase-0'],
    [{ target: 'demo', databaseUrl: 'postgres://u:p@h/db' }, 'unknown field(s) "databaseUrl"'],
  ])('%j', async (input, message) => {
    const err = await startMigration(client, input as never).catch((e: Error) => e);
    expect(err).toBeInstanceOf(MigrationInputError);
    expect((err as Error).message).toContain(message);
  });
});

describe('at preflight and at the steps, against a real deployment', () => {
  let d: Deployment;
  let gcp: GcpClients;
  let mlflow: pg.Client;
  const PASSWORD = 'Sup3r-s3cret-pw';

  beforeAll(async () => {
    d = await createDeployment({ adminUrl: inject('pgAdminUrl'), name: `bad${process.pid}`, dir: mkdtempSync(join(tmpdir(), 'bad-')), runs: 10, epochs: 5, operationDelayMs: 20 });
    gcp = createGcpClients({ apiEndpoint: d.sandbox.url, project: d.target.gcp.project });
    mlflow = new pg.Client({ connectionString: d.mlflowUrl });
    await mlflow.connect();
  });
  afterAll(async () => {
    await mlflow?.end();
    await gcp?.close();
    await d?.close();
  });

  /** Runs `act` with the real activities over a variant of the target and env; returns its error and proves nothing changed. */
  async function refused(act: (a: ReturnType<typeof createActivities>, ctx: StepContext) => Promise<unknown>, opts: { target?: (t: CloudTarget) => CloudTarget; env?: Record<string, string | undefined> } = {}) {
    const target = (opts.target ?? ((t) => t))(structuredClone(d.target));
    const databases = createDatabases({ ...d.workerEnv, ...opts.env } as NodeJS.ProcessEnv);
    const activities = createActivities({ config: configFileSchema.parse({ targets: { bad: target } }), databases, gcp, objects: createGcsObjectStore(gcp.storage) });
    const ctx: StepContext = { migrationId: 'bad-input', targetName: 'bad', target, dryRun: false, gatesPassed: ['phase-0', 'phase-1', 'phase-2'], force: false, facts: {} };
    const before = { calls: mutatingCalls(), app: await appChecksum() };
    try {
      const err = await act(activities, ctx).then(
        () => undefined,
        (e: Error) => e,
      );
      expect(err, 'should have been refused').toBeInstanceOf(Error);
      expect(mutatingCalls().slice(before.calls.length)).toEqual([]);
      expect(await appChecksum()).toBe(before.app);
      expect(String((err as Error).message)).not.toContain(PASSWORD);
      return err as Error & { type?: string; nonRetryable?: boolean };
    } finally {
      await databases.close();
    }
  }
  const mutatingCalls = () => d.sandbox.mutations();
  async function appChecksum() {
    const c = new pg.Client({ connectionString: d.appUrl });
    await c.connect();
    try {
      const { rows } = await c.query(`SELECT coalesce(string_agg(id || ':' || coalesce(training_history_json::text, '-'), ',' ORDER BY id), '') AS s FROM ml_platform_quicktest`);
      return createHash('sha256').update(rows[0].s).digest('hex');
    } finally {
      await c.end();
    }
  }

  it('a database env var that is not set is named', async () => {
    const err = await refused((a, ctx) => a.preflight(ctx), { env: { MLFLOW_DATABASE_URL: undefined } });
    expect(err.message).toMatch(/env var MLFLOW_DATABASE_URL is not set/);
    expect(err.type).toBe('PreconditionFailed');
  });

  it('a database host that does not resolve (seed 003) is found in preflight, without the password', async () => {
    const err = await refused((a, ctx) => a.preflight(ctx), { env: { APP_DATABASE_URL: `postgres://app:${PASSWORD}@app-db.invalid:5432/app` } });
    expect(err.message).toMatch(/app database \(APP_DATABASE_URL\).*cannot connect.*check the connection string in env var APP_DATABASE_URL/);
  });

  it('a database port where nothing listens is found in preflight', async () => {
    const err = await refused((a, ctx) => a.preflight(ctx), { env: { MLFLOW_DATABASE_URL: `postgres://mlflow:${PASSWORD}@127.0.0.1:1/mlflow` } });
    expect(err.message).toMatch(/mlflow database \(MLFLOW_DATABASE_URL\).*cannot connect/);
  });

  it('the wrong project: the configured resources are not there', async () => {
    const err = await refused((a, ctx) => a.preflight(ctx), { target: (t) => ({ ...t, gcp: { ...t.gcp, project: 'someone-elses-project' } }) });
    expect(err.message).toMatch(/someone-elses-project/);
    expect(err.type).toBe('PreconditionFailed');
  });

  it('an MLflow schema revision the tool does not know', async () => {
    const { rows } = await mlflow.query('SELECT version_num FROM alembic_version');
    await mlflow.query(`UPDATE alembic_version SET version_num = 'fedcba987654'`);
    try {
      const err = await refused((a, ctx) => a.preflight(ctx));
      expect(err.message).toMatch(/revision fedcba987654 is not an MLflow schema this tool knows.*data\.acceptMlflowRevisions/);
    } finally {
      await mlflow.query('UPDATE alembic_version SET version_num = $1', [rows[0].version_num]);
    }
  });

  it('an MLflow store without a column the backfill reads', async () => {
    await mlflow.query('ALTER TABLE metrics RENAME COLUMN is_nan TO is_nan_renamed');
    try {
      const err = await refused((a, ctx) => a.preflight(ctx));
      expect(err.message).toMatch(/missing metrics\.is_nan/);
    } finally {
      await mlflow.query('ALTER TABLE metrics RENAME COLUMN is_nan_renamed TO is_nan');
    }
  });

  it('an app table column that does not exist', async () => {
    const err = await refused((a, ctx) => a.preflight(ctx), { target: (t) => ({ ...t, appTable: { ...t.appTable, history: 'training_history' } }) });
    expect(err.message).toMatch(/missing ml_platform_quicktest\.training_history: fix appTable/);
  });

  it('a backup bucket that does not exist', async () => {
    const err = await refused((a, ctx) => a.preflight(ctx), { target: (t) => ({ ...t, buckets: { ...t.buckets, backup: 'no-such-backups' } }) });
    expect(err.message).toMatch(/gs:\/\/no-such-backups does not exist/);
  });

  it('a permission the worker lacks is listed', async () => {
    d.sandbox.state.deniedPermissions = ['storage.objects.create'];
    try {
      const err = await refused((a, ctx) => a.preflight(ctx));
      expect(err.message).toMatch(/lacks storage\.objects\.create/);
    } finally {
      delete d.sandbox.state.deniedPermissions;
    }
  });

  it('a project permission the worker lacks is listed with the phase and the role that grants it', async () => {
    d.sandbox.state.deniedPermissions = ['cloudsql.instances.delete', 'iam.serviceAccounts.undelete'];
    try {
      const err = await refused((a, ctx) => a.preflight(ctx));
      expect(err.message).toMatch(/lacks cloudsql\.instances\.delete \(phase 3 \(delete\) and rollback: grant roles\/cloudsql\.admin\).*iam\.serviceAccounts\.undelete/);
    } finally {
      delete d.sandbox.state.deniedPermissions;
    }
  });

  it('preflight checks what the way back needs: bucket and object restore on the project, final backups, restoreBackup', async () => {
    d.sandbox.state.deniedPermissions = ['storage.buckets.restore', 'storage.objects.restore', 'cloudsql.backupRuns.list', 'cloudsql.instances.restoreBackup'];
    try {
      const err = await refused((a, ctx) => a.preflight(ctx));
      expect(err.message).toMatch(/lacks cloudsql\.backupRuns\.list \(phase 0 \(backup, export\)/);
      expect(err.message).toMatch(/cloudsql\.instances\.restoreBackup \(phase 3 \(delete\) and rollback: grant roles\/cloudsql\.admin\)/);
      expect(err.message).toMatch(/storage\.buckets\.restore, storage\.objects\.restore \(phase 3 rollback \(artifacts bucket\): grant roles\/storage\.admin\)/);
    } finally {
      delete d.sandbox.state.deniedPermissions;
    }
  });

  it('a Cloud Run service without the MLflow labels is refused by preflight and by 3.1', async () => {
    const service = d.sandbox.state.cloudRun.services[Object.keys(d.sandbox.state.cloudRun.services).find((k) => k.endsWith('/mlflow-server'))!];
    const labels = service.labels;
    service.labels = { app: 'payments' };
    try {
      expect((await refused((a, ctx) => a.preflight(ctx))).message).toMatch(/label/);
      const err = await refused((a, ctx) => a.deleteMlflowService(ctx));
      expect(err.type).toBe('ResourceMismatch');
      expect(err.message).toMatch(/does not carry the label\(s\) app=mlflow.*left alone/);
    } finally {
      service.labels = labels;
    }
  });

  it('a missing SQL export fails the gate check and 3.2 refuses to delete the instance', async () => {
    const facts = { '0.1': { exportUri: `gs://${d.target.buckets.backup}/nowhere/mlflow.sql.gz` } };
    const check = await refused(async (a, ctx) => {
      const { checks } = await a.checkExportVerified({ ...ctx, facts });
      if (checks.some((c) => !c.ok)) throw new Error(checks.map((c) => c.detail).join('; '));
    });
    expect(check.message).toMatch(/nowhere\/mlflow\.sql\.gz/);
    const err = await refused((a, ctx) => a.deleteMlflowDatabase({ ...ctx, facts }));
    expect(err.type).toBe('PreconditionFailed');
  });

  it('a truncated (empty) SQL export is as good as none', async () => {
    const uri = `gs://${d.target.buckets.backup}/truncated/mlflow.sql.gz`;
    const objects = createGcsObjectStore(gcp.storage);
    await objects.write(uri, Buffer.alloc(0));
    const facts = { '0.1': { exportUri: uri } };
    const err = await refused((a, ctx) => a.deleteMlflowDatabase({ ...ctx, facts }));
    expect(err.type).toBe('PreconditionFailed');
    expect(err.message).toMatch(/truncated\/mlflow\.sql\.gz/);
  });

  it('a destructive step refuses to act before its gate passed', async () => {
    const err = await refused((a, ctx) => a.deleteMlflowService({ ...ctx, gatesPassed: ['phase-0'] }));
    expect(err.type).toBe('GateNotPassed');
    expect(err.message).toMatch(/gate phase-2 has not passed/);
  });
});

// --- the Postgres shapes (seeds 000 and 002) ---------------------------------------------------

const SHARED = {
  shape: 'shared-database',
  databases: { mlflow: { urlEnv: 'SHARED_DATABASE_URL' }, app: { urlEnv: 'SHARED_DATABASE_URL' } },
  backup: 'file:///var/backups/mlflow-decommission',
};
const SELF_HOSTED = {
  shape: 'self-hosted',
  databases: { mlflow: { urlEnv: 'MLFLOW_DATABASE_URL' }, app: { urlEnv: 'APP_DATABASE_URL' }, server: { urlEnv: 'SERVER_DATABASE_URL' } },
  mlflow: { trackingUrl: 'http://mlflow:5000', database: 'mlflow_tracking', role: 'ultrathink', artifactsDirectory: '/srv/mlflow/artifacts' },
  backup: 'gs://ultrathink-backups/mlflow',
};

describe('a bad shape in the config is refused, naming the field', () => {
  const load = (target: object) => {
    const file = join(mkdtempSync(join(tmpdir(), 'cfg-')), 'config.json');
    writeFileSync(file, JSON.stringify({ targets: { t: target } }));
    return () => loadConfigFile(file);
  };
  it.each([
    [{ ...SHARED, shape: 'kubernetes' }, 'targets.t.shape: expected "cloud" (the default), "shared-database" or "self-hosted"'],
    [{ ...SHARED, cloudSql: { instance: 'mlflow-db' } }, 'targets.t: unknown field(s) "cloudSql"'],
    [{ ...SHARED, backup: 'backups' }, 'targets.t.backup: expected gs://BUCKET[/path] or file:///absolute/directory'],
    [{ ...SHARED, backup: undefined }, 'targets.t.backup'],
    [{ ...SELF_HOSTED, serviceAccount: 'mlflow@p.iam.gserviceaccount.com' }, 'targets.t: unknown field(s) "serviceAccount"'],
    [{ ...SELF_HOSTED, mlflow: { ...SELF_HOSTED.mlflow, trackingUrl: 'mlflow:5000' } }, 'targets.t.mlflow.trackingUrl: expected the tracking server URL'],
    [{ ...SELF_HOSTED, mlflow: { ...SELF_HOSTED.mlflow, role: 'Ultra Think' } }, 'targets.t.mlflow.role: expected a lower-case SQL identifier'],
    [{ ...SELF_HOSTED, mlflow: { ...SELF_HOSTED.mlflow, password: 'changeme_in_production' } }, 'targets.t.mlflow: unknown field(s) "password"'],
    [{ ...SELF_HOSTED, mlflow: { ...SELF_HOSTED.mlflow, artifactsDirectory: 'artifacts' } }, 'targets.t.mlflow.artifactsDirectory: expected an absolute directory path'],
    [{ ...SELF_HOSTED, databases: { mlflow: { urlEnv: 'MLFLOW_DATABASE_URL' }, app: { urlEnv: 'APP_DATABASE_URL' } } }, 'targets.t.databases.server'],
  ])('%j', (target, message) => {
    expect(load(target)).toThrow(message);
  });

  it('the first name of the cloud shape is still read, as cloud', () => {
    const cloud = configFileSchema.parse({ targets: { t: { ...example.targets['b2b-recs'], shape: 'cloud-sql-dedicated' } } }).targets.t;
    expect(cloud.shape).toBe('cloud');
  });
});

describe('the Postgres shapes refuse what would touch the app or the server, say which case, and change nothing', () => {
  const gates: StepContext['gatesPassed'] = ['phase-0', 'phase-1', 'phase-2'];
  let shared: ShapeDeployment;
  let hosted: Awaited<ReturnType<typeof createSelfHostedDeployment>>;
  let gcp: GcpClients;

  beforeAll(async () => {
    gcp = createGcpClients({ apiEndpoint: 'http://127.0.0.1:9', project: 'unused-project' });
    shared = await createSharedDatabaseDeployment({ adminUrl: inject('pgAdminUrl'), name: `badsd${process.pid}`, dir: mkdtempSync(join(tmpdir(), 'bad-sd-')), runs: 4, epochs: 3, appRevision: APP_ALEMBIC_REVISION });
    hosted = await createSelfHostedDeployment({ adminUrl: inject('pgAdminUrl'), name: `badsh${process.pid}`, dir: mkdtempSync(join(tmpdir(), 'bad-sh-')), runs: 4, epochs: 3, trackingUrl: 'http://127.0.0.1:9' });
  });
  afterAll(async () => {
    await gcp?.close();
  });

  async function withActivities<T>(d: ShapeDeployment, fn: (a: ReturnType<typeof createActivities>, ctx: StepContext<Target>) => Promise<T>, over: Partial<StepContext<Target>> = {}, env: Record<string, string> = {}) {
    const databases = createDatabases({ ...d.workerEnv, ...env } as NodeJS.ProcessEnv);
    try {
      const a = createActivities({ config: configFileSchema.parse({ targets: { [d.name]: d.target } }), databases, gcp, objects: createLocalObjectStore() });
      return await fn(a, { migrationId: 'bad-input', targetName: d.name, target: d.target, dryRun: false, gatesPassed: gates, force: false, facts: {}, ...over });
    } finally {
      await databases.close();
    }
  }

  /** Everything in the database that 3.1 could touch: tables with their rows, functions, alembic_version. */
  async function snapshotOf(url: string): Promise<string> {
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      const { rows: tables } = await c.query(`SELECT tablename AS t FROM pg_tables WHERE schemaname = 'public' ORDER BY 1`);
      const out: string[] = [];
      for (const { t } of tables) out.push(`${t}:${(await c.query(`SELECT md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) AS d FROM public."${t}" x`)).rows[0].d}`);
      out.push(...(await c.query(`SELECT proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE nspname = 'public' ORDER BY 1`)).rows.map((r) => r.proname));
      return createHash('sha256').update(out.join('\n')).digest('hex');
    } finally {
      await c.end();
    }
  }

  /** `plant` the fault, run 3.1, expect its refusal, prove nothing changed, take the fault out again. */
  async function refusedDrop(plant: string, unplant: string) {
    const url = shared.urls.shared;
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      await c.query(plant);
      const before = await snapshotOf(url);
      const err = await withActivities(shared, (a, ctx) => a.dropMlflowTables(ctx)).then(() => undefined, (e: Error & { type?: string }) => e);
      expect(err, 'should have been refused').toBeInstanceOf(Error);
      expect(await snapshotOf(url)).toBe(before);
      // And the phase-2 gate, before 3.1 ever runs, fails on it: the objects' check or the dump's.
      const failing = async (name: 'checkMlflowTablesDroppable' | 'checkDumpVerified') =>
        (await withActivities(shared, (a, ctx) => a[name](ctx)).catch((e: Error) => ({ checks: [{ name: 'thrown', ok: false, detail: e.message }] }))).checks.filter((x) => !x.ok);
      expect([...(await failing('checkMlflowTablesDroppable')), ...(await failing('checkDumpVerified'))]).not.toEqual([]);
      return err as Error & { type?: string };
    } finally {
      await c.query(unplant);
      await c.end();
    }
  }

  it('shared-database: 3.1 without the dump of 0.1 drops nothing', async () => {
    const err = await failureOf(withActivities(shared, (a, ctx) => a.dropMlflowTables(ctx)));
    expect(err.type).toBe('PreconditionFailed');
    expect(err.message).toMatch(/the dump from step 0\.1 .* is missing, so dropping MLflow's tables is not done/);
  });

  it('shared-database: before its gate, 3.1 refuses to act', async () => {
    const err = await failureOf(withActivities(shared, (a, ctx) => a.dropMlflowTables(ctx), { gatesPassed: ['phase-0'] }));
    expect(err.type).toBe('GateNotPassed');
  });

  describe('with the dump taken', () => {
    beforeAll(async () => {
      await withActivities(shared, (a, ctx) => a.dumpMlflowTables(ctx));
    });

    it.each([
      ['a table with MLflow’s name and other columns (not MLflow’s)', 'ALTER TABLE tags ADD COLUMN app_note TEXT', 'ALTER TABLE tags DROP COLUMN app_note', 'ResourceMismatch', /not MLflow's table: "tags" has MLflow's name but not the columns .*\+app_note text/],
      ['an app foreign key onto MLflow’s runs', 'ALTER TABLE gpu_assets ADD COLUMN trained_by VARCHAR(32) REFERENCES runs (run_uuid)', 'ALTER TABLE gpu_assets DROP COLUMN trained_by', 'ResourceMismatch', /an app table references MLflow's: foreign key "gpu_assets_trained_by_fkey" on "gpu_assets" references "runs".*DROP CONSTRAINT/],
      ['an app view over MLflow’s runs', 'CREATE VIEW app_runs AS SELECT run_uuid FROM runs', 'DROP VIEW app_runs', 'ResourceMismatch', /an app view reads MLflow's table: "app_runs" selects from "runs"/],
      ['alembic_version without MLflow’s revision', `UPDATE alembic_version SET version_num = '0000aaaa0000' WHERE version_num = '867495a8f9d4'`, `UPDATE alembic_version SET version_num = '867495a8f9d4' WHERE version_num = '0000aaaa0000'`, 'ResourceMismatch', /alembic_version holds 0000aaaa0000, f00dcafe0001, none of them MLflow's/],
      ['rows MLflow wrote after the dump', `INSERT INTO experiments (name, lifecycle_stage) VALUES ('late', 'active')`, `DELETE FROM experiments WHERE name = 'late'`, 'PreconditionFailed', /MLflow's tables changed since the dump of step 0\.1 \(experiments: \d+ rows in the dump, \d+ now\)/],
    ])('%s', async (_case, plant, unplant, type, message) => {
      const err = await refusedDrop(plant, unplant);
      expect(err.type).toBe(type);
      expect(err.message).toMatch(message);
    });

    it('the dry run lists the refusal with the objects, and the gate check fails on it', async () => {
      const url = shared.urls.shared;
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      try {
        await c.query('CREATE VIEW app_runs AS SELECT run_uuid FROM runs');
        const plan = await withActivities(shared, (a, ctx) => a.dropMlflowTables(ctx), { dryRun: true });
        expect(plan.actions.filter((x) => x.call === 'refuse').map((x) => x.description)).toEqual([expect.stringMatching(/REFUSED.*"app_runs"/)]);
        expect(plan.actions.find((x) => x.resource.endsWith('/alembic_version'))!.description).toMatch(/keep alembic_version .*f00dcafe0001.*delete only MLflow's row 867495a8f9d4/);
      } finally {
        await c.query('DROP VIEW app_runs');
        await c.end();
      }
    });
  });

  it('self-hosted: a database that holds a table that is not MLflow’s is not dropped', async () => {
    await withActivities(hosted, (a, ctx) => a.dumpMlflowTables(ctx));
    const c = new pg.Client({ connectionString: hosted.urls.mlflow });
    await c.connect();
    try {
      await c.query('CREATE TABLE trading_signals (id INT)');
      const err = await failureOf(withActivities(hosted, (a, ctx) => a.dropTrackingDatabase(ctx)));
      expect(err.type).toBe('ResourceMismatch');
      expect(err.message).toMatch(/also holds tables that are not MLflow's \(trading_signals\)/);
      await c.query('DROP TABLE trading_signals');
    } finally {
      await c.end();
    }
    const admin = new pg.Client({ connectionString: hosted.urls.admin });
    await admin.connect();
    expect((await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [hosted.database])).rows).toHaveLength(1);
    await admin.end();
  });

  it('self-hosted: a server connection that is on MLflow’s database itself is refused', async () => {
    const err = await failureOf(withActivities(hosted, (a, ctx) => a.dropTrackingDatabase(ctx), {}, { SERVER_DATABASE_URL: hosted.urls.mlflow }));
    expect(err.message).toMatch(/databases\.server \(SERVER_DATABASE_URL\) is connected to .* itself/);
  });

  it('self-hosted: the role is not dropped while its database exists', async () => {
    const err = await failureOf(withActivities(hosted, (a, ctx) => a.dropTrackingRole(ctx)));
    expect(err.type).toBe('PreconditionFailed');
    expect(err.message).toMatch(/still exists: 3\.2 drops it first/);
  });

  it('self-hosted: a tracking server that still answers /health holds the phase-2 gate, saying stopping it is the operator’s part', async () => {
    const server = createServer((req, res) => res.end(req.url === '/health' ? 'OK' : ''));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    try {
      const target = { ...hosted.target, mlflow: { ...(hosted.target as { mlflow: object }).mlflow, trackingUrl: `http://127.0.0.1:${port}` } } as Target;
      const { checks } = await withActivities(hosted, (a, ctx) => a.checkTrackingServerStopped(ctx), { target });
      expect(checks[0]).toMatchObject({ ok: false, detail: expect.stringMatching(/still answers \(200\): stop the MLflow container \(your part/) });
    } finally {
      server.close();
    }
    const { checks } = await withActivities(hosted, (a, ctx) => a.checkTrackingServerStopped(ctx));
    expect(checks[0].ok).toBe(true);
  });
});
