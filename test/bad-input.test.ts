// The bad-input matrix: every case is refused with an error that names what is wrong and what to
// do, and changes nothing (no mutating cloud call, the app DB untouched). Workflow-level cases
// (approving a gate that is not waiting, skipping a step that must not be skipped, a second
// migration of one target, invalid workflow input) live in test/workflows/mlflow-decommission.test.ts.
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createDeployment, type Deployment } from '../dev/deployment';
import { createActivities } from '../src/activities';
import { createGcpClients, type GcpClients } from '../src/adapters/gcp/clients';
import { createGcsObjectStore } from '../src/adapters/gcs-object-store';
import { createDatabases } from '../src/adapters/postgres';
import { MigrationInputError, startMigration } from '../src/client';
import { configFileSchema, type Target } from '../src/config';
import { loadConfigFile } from '../src/environment';
import type { StepContext } from '../src/types';

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
  async function refused(act: (a: ReturnType<typeof createActivities>, ctx: StepContext) => Promise<unknown>, opts: { target?: (t: Target) => Target; env?: Record<string, string | undefined> } = {}) {
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
