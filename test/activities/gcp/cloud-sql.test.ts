// 0.1, the phase-2 check, 3.2 and its undo against the sandbox's Cloud SQL, whose instance holds a
// real MLflow database: the export is a real dump, the delete drops the data, the undo loads it back.
import { gzipSync } from 'node:zlib';
import { beforeEach, describe, expect, it } from 'vitest';
import { finalBackupsOf, seedSqlInstance } from '../../../dev/sandbox/services/cloud-sql';
import { grantBucket, seedBucket } from '../../../dev/sandbox/services/storage';
import { createCloudSqlActivities } from '../../../src/activities/gcp/cloud-sql';
import type { GateId, StepContext, StepResult } from '../../../src/types';
import { demoTarget } from '../../support/fake-activities';
import { useMlflowDatabase, useSandbox } from '../../support/cloud';
import { failureOf } from '../../support/failures';

// A deleted instance stays PENDING_DELETE for a while after its delete operation, as on Cloud SQL.
const cloud = useSandbox('demo-project', { pendingDeleteMs: 400 });
const store = useMlflowDatabase('cloudsql');
const target = demoTarget();
const instance = 'projects/demo-project/instances/mlflow-db';
const SETTINGS = {
  ipConfiguration: { ipv4Enabled: false, privateNetwork: 'projects/demo-project/global/networks/default', requireSsl: true },
  locationPreference: { zone: 'europe-central2-b' },
  maintenanceWindow: { day: 7, hour: 3 },
  backupConfiguration: { enabled: true, startTime: '02:00' },
};

let run = 0;
function context(overrides: Partial<StepContext> = {}, t = target): StepContext {
  return { migrationId: `m-${run}`, targetName: 'demo', target: t, dryRun: false, gatesPassed: ['phase-0', 'phase-1', 'phase-2'] as GateId[], force: false, facts: {}, ...overrides };
}
const withRestoreFrom = (restoreFrom: 'final-backup' | 'export') => demoTarget({ cloudSql: { ...target.cloudSql, restoreFrom } });
const kind = () => createCloudSqlActivities({ gcp: cloud.gcp, objects: cloud.objects, databases: store.databases }, { pollIntervalMs: 20 });
const sql = () => cloud.sandbox.state.cloudSql as { instances: Record<string, any>; databases: Record<string, string[]>; users: Record<string, any[]>; backupRuns: Record<string, any[]> };
const exportUri = () => `gs://demo-backups/mlflow-decommission/m-${run}/sql/mlflow.sql.gz`;
const grants = (member: string) =>
  (cloud.sandbox.state.storage.buckets['demo-backups'].policy?.bindings ?? []).filter((b: { members: string[] }) => b.members.includes(member)).map((b: { role: string }) => b.role);

function seedInstance(opts: { backed?: boolean } = {}) {
  const i = seedSqlInstance(cloud.sandbox, {
    project: 'demo-project',
    name: 'mlflow-db',
    region: 'europe-central2',
    labels: { app: 'mlflow' },
    databases: ['mlflow'],
    users: ['mlflow'],
    deletionProtection: true,
    settings: SETTINGS,
    backing: opts.backed === false ? {} : { mlflow: store.url },
  });
  // The operator let the instance write its exports to the backup bucket, as 0.1 asks.
  grantBucket(cloud.sandbox, 'demo-backups', `serviceAccount:${i.serviceAccountEmailAddress}`, 'roles/storage.objectAdmin');
  return i;
}

beforeEach(async () => {
  run++;
  cloud.sandbox.clearFaults();
  cloud.sandbox.calls.length = 0;
  seedBucket(cloud.sandbox, { name: 'demo-backups' });
  await store.reset();
  seedInstance();
});

/** Step 0.1, then 3.2, as the workflow runs them: each with the facts of those before. */
async function backupThenDelete(ctx = context()): Promise<{ ctx: StepContext; deleted: StepResult }> {
  const { activities: a } = kind();
  const backup = await a.backupDatabase(ctx);
  const next = { ...ctx, facts: { '0.1': backup.facts } };
  return { ctx: next, deleted: await a.deleteMlflowDatabase(next) };
}

describe('0.1 and the export check', () => {
  it('takes a backup run and a real gzip SQL dump, and proves its rows table by table', async () => {
    const { activities: a } = kind();
    const result = await a.backupDatabase(context());
    expect(result.facts).toMatchObject({ exportUri: exportUri(), exportRows: await store.counts() });
    expect(result.summary).toMatch(/every table's rows match the MLflow database/);
    const runs = sql().backupRuns['demo-project/mlflow-db'];
    expect(runs.find((r) => r.id === result.facts?.backupRunId)?.status).toBe('SUCCESSFUL');

    // Idempotent: a second run reuses the backup run and the export it proves again.
    const again = await a.backupDatabase(context());
    expect(again.facts?.backupRunId).toBe(result.facts?.backupRunId);
    expect(cloud.sandbox.callsTo('POST .*/export$')).toHaveLength(1);
    expect(cloud.sandbox.callsTo('POST .*/backupRuns$')).toHaveLength(1);
    const gate = await a.checkExportVerified(context({ facts: { '0.1': result.facts } }));
    expect(gate.checks.map((c) => [c.name, c.ok])).toEqual([
      ['SQL export verified', true],
      ['Cloud SQL way back', true],
    ]);
    expect(gate.checks[1].detail).toMatch(/final backup kept 30 days/);
  });

  it('fails 0.1 when the export does not hold the database (an instance whose export comes out empty)', async () => {
    seedInstance({ backed: false });
    const failure = await failureOf(kind().activities.backupDatabase(context()));
    expect(failure.type).toBe('VerificationFailed');
    expect(failure.message).toMatch(/table metrics is missing from it \(\d[\d,]* row\(s\) in the database\)/);
  });

  it('the gate fails on a 226-byte stub holding one row where the store has many', async () => {
    const { activities: a } = kind();
    const result = await a.backupDatabase(context());
    const stub = gzipSync('--\n-- PostgreSQL database dump\n--\nCOPY public.experiments (experiment_id, name) FROM stdin;\n0\tDefault\n\\.\n');
    await cloud.objects.write(exportUri(), stub);
    const { checks } = await a.checkExportVerified(context({ facts: { '0.1': result.facts } }));
    expect(checks[0]).toMatchObject({ name: 'SQL export verified', ok: false });
    expect(checks[0].detail).toMatch(/table metrics is missing from it/);
    expect(checks[0].detail).toMatch(/Run step 0\.1 again/);
  });

  it('the export check fails when the export is missing', async () => {
    const { checks } = await kind().activities.checkExportVerified(context());
    expect(checks[0]).toMatchObject({ ok: false, detail: expect.stringMatching(/missing: run step 0.1/) });
  });

  it('0.1 adopts an export already running on the instance instead of starting a second one (409 on Cloud SQL)', async () => {
    // An earlier attempt started the export and died before recording it.
    await cloud.gcp.sqlInstances.export({
      project: 'demo-project',
      instance: 'mlflow-db',
      body: { exportContext: { kind: 'sql#exportContext', fileType: 'SQL', uri: exportUri(), databases: ['mlflow'] } },
    });
    const result = await kind().activities.backupDatabase(context());
    expect(result.facts?.exportRows).toEqual(await store.counts());
    expect(cloud.sandbox.callsTo('POST .*/export$').map((c) => c.status)).toEqual([200]);
  });

  it('0.1 resumes its operation by name after the attempt that waited on it died', async () => {
    const { activities: a } = kind();
    // The attempt loses its connection while polling (as a worker crash would end it).
    cloud.sandbox.addFault({ match: 'GET /v1/projects/demo-project/operations/op', status: 503, times: 1 });
    const first = await a.backupDatabase(context()).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((first as { code?: number }).code).toBeDefined();
    const result = await a.backupDatabase(context());
    expect(result.facts?.exportRows).toEqual(await store.counts());
    expect(cloud.sandbox.callsTo('POST .*/backupRuns$')).toHaveLength(1);
    expect(cloud.sandbox.callsTo('POST .*/export$')).toHaveLength(1);
  });
});

describe('3.2 and its undo', () => {
  it('3.2 refuses to delete without the export', async () => {
    const failure = await failureOf(kind().activities.deleteMlflowDatabase(context()));
    expect(failure.type).toBe('PreconditionFailed');
    expect(failure.message).toMatch(/mlflow\.sql\.gz is missing.*run step 0\.1 again or approve skip/);
    expect(sql().instances['demo-project/mlflow-db']).toBeDefined();
    expect(cloud.sandbox.callsTo('DELETE ')).toHaveLength(0);
  });

  it('restores from the final backup: every row, the users, IP configuration, zone, maintenance window and deletion protection', async () => {
    const before = await store.counts();
    const original = structuredClone(sql().instances['demo-project/mlflow-db']);
    const { ctx, deleted } = await backupThenDelete();
    expect(deleted.actions.map((x) => x.call)).toEqual(['sql.instances.patch', 'sql.instances.delete']);
    expect(deleted.facts).toMatchObject({ deletionProtectionDisabled: true, finalBackup: expect.stringMatching(/^projects\/demo-project\/backups\//) });
    expect(finalBackupsOf(cloud.sandbox, 'demo-project', 'mlflow-db').at(-1)).toMatchObject({ type: 'FINAL', state: 'SUCCESSFUL' });
    // The delete really dropped the data.
    expect(await store.counts()).toEqual({});
    // Deleting again: already gone (or still being deleted), no second delete.
    expect((await kind().activities.deleteMlflowDatabase(ctx)).summary).toMatch(/already (being deleted|gone)/);
    expect(cloud.sandbox.callsTo(`DELETE /v1/${instance}$`)).toHaveLength(1);

    // Right after the delete the instance is still PENDING_DELETE: the undo waits for it to go.
    expect(sql().instances['demo-project/mlflow-db']?.state).toBe('PENDING_DELETE');
    const restored = await kind().activities.restoreMlflowDatabase(ctx);
    expect(restored.summary).toMatch(/^restored projects\/demo-project\/instances\/mlflow-db from final backup/);
    expect(await store.counts()).toEqual(before);
    const now = sql().instances['demo-project/mlflow-db'];
    expect(now.state).toBe('RUNNABLE');
    expect(now.settings).toMatchObject({ ...SETTINGS, tier: original.settings.tier, userLabels: { app: 'mlflow' }, deletionProtectionEnabled: true });
    expect(now.gceZone).toBe('europe-central2-b');
    // A new instance has a new service account: it gets what the deleted one had on the backup bucket, so 0.1 can export again.
    expect(now.serviceAccountEmailAddress).not.toBe(original.serviceAccountEmailAddress);
    expect(grants(`serviceAccount:${now.serviceAccountEmailAddress}`)).toEqual(['roles/storage.objectAdmin']);
    expect(restored.summary).toMatch(/data up to \d{4}-\d\d-\d\dT/);
    expect(sql().users['demo-project/mlflow-db'].map((u) => u.name).sort()).toEqual(['mlflow', 'postgres']);
    expect(cloud.sandbox.callsTo(`POST /v1/${instance}/restoreBackup$`)).toHaveLength(1);
    expect(cloud.sandbox.callsTo(`POST /v1/${instance}/import$`)).toHaveLength(0);

    // A retried compensation restores nothing twice.
    await kind().activities.restoreMlflowDatabase(ctx);
    expect(cloud.sandbox.callsTo(`POST /v1/${instance}/restoreBackup$`)).toHaveLength(1);
    expect(await store.counts()).toEqual(before);
  });

  it('a restore that dies while waiting resumes the same operation, not a second restore', async () => {
    const before = await store.counts();
    const { ctx } = await backupThenDelete();
    await new Promise((r) => setTimeout(r, 500)); // past PENDING_DELETE
    cloud.sandbox.addFault({ match: 'GET /v1/projects/demo-project/operations/op', status: 503, times: 1 });
    const first = await kind().activities.restoreMlflowDatabase(ctx).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(first).toBeDefined();
    await kind().activities.restoreMlflowDatabase(ctx);
    expect(cloud.sandbox.callsTo(`POST /v1/${instance}/restoreBackup$`)).toHaveLength(1);
    expect(await store.counts()).toEqual(before);
  });

  it('restoreFrom "export": 3.2 exports after MLflow stopped; undo recreates, grants the new service account, recreates users, imports once', async () => {
    const t = withRestoreFrom('export');
    const before = await store.counts();
    const oldAccount = sql().instances['demo-project/mlflow-db'].serviceAccountEmailAddress;
    const { ctx, deleted } = await backupThenDelete(context({}, t));
    expect(deleted.facts).toMatchObject({ finalExportUri: `gs://demo-backups/mlflow-decommission/m-${run}/sql/mlflow.at-delete.sql.gz`, finalExportRows: before });
    await new Promise((r) => setTimeout(r, 500));
    // The import dies mid-wait; the retry waits on the same import.
    cloud.sandbox.addFault({ match: 'GET /v1/projects/demo-project/operations/op', status: 503, times: 4 });
    let result: StepResult | undefined;
    for (let attempt = 0; attempt < 6 && !result; attempt++) result = await kind().activities.restoreMlflowDatabase(ctx).catch(() => undefined);
    expect(result?.summary).toMatch(/from the export taken at delete .*at-delete\.sql\.gz/);
    expect(await store.counts()).toEqual(before);
    const now = sql().instances['demo-project/mlflow-db'];
    expect(now.serviceAccountEmailAddress).not.toBe(oldAccount);
    expect(grants(`serviceAccount:${now.serviceAccountEmailAddress}`)).toContain('roles/storage.objectViewer');
    expect(now.settings).toMatchObject({ ...SETTINGS, deletionProtectionEnabled: true });
    expect(sql().users['demo-project/mlflow-db'].map((u) => u.name).sort()).toEqual(['mlflow', 'postgres']);
    expect(cloud.sandbox.callsTo(`POST /v1/${instance}/import$`).filter((c) => c.status === 200)).toHaveLength(1);
  });

  it('deletion protection goes back on when 3.2 turned it off and then failed to delete', async () => {
    const { activities: a } = kind();
    const backup = await a.backupDatabase(context());
    cloud.sandbox.addFault({ match: 'DELETE /v1/projects/demo-project/instances/mlflow-db$', status: 403 });
    await failureOf(a.deleteMlflowDatabase(context({ facts: { '0.1': backup.facts } })));
    cloud.sandbox.clearFaults();
    expect(sql().instances['demo-project/mlflow-db'].settings.deletionProtectionEnabled).toBe(false);
    const undo = await a.restoreMlflowDatabase(context({ facts: { '0.1': backup.facts } }));
    expect(undo.summary).toMatch(/never deleted: nothing imported into it; deletion protection turned back on/);
    expect(sql().instances['demo-project/mlflow-db'].settings.deletionProtectionEnabled).toBe(true);
    expect(cloud.sandbox.callsTo('POST /v1/projects/demo-project/instances/mlflow-db/(import|restoreBackup)$')).toHaveLength(0);
  });

  it('rolling back a 3.2 that never began changes nothing', async () => {
    const backup = await kind().activities.backupDatabase(context());
    expect((await kind().activities.restoreMlflowDatabase(context({ facts: { '0.1': backup.facts } }))).summary).toMatch(/saved no snapshot.*nothing to restore/);
  });

  it('without the final backup, undo refuses and says how old the 0.1 export is', async () => {
    const { ctx } = await backupThenDelete();
    (cloud.sandbox.state.cloudSql.backups as Array<{ expiryTime: string }>).forEach((b) => (b.expiryTime = new Date(Date.now() - 1000).toISOString()));
    const failure = await failureOf(kind().activities.restoreMlflowDatabase(ctx));
    expect(failure.type).toBe('CannotRestore');
    expect(failure.message).toMatch(/no final backup .* is left/);
    expect(failure.message).toMatch(/the 0\.1 export gs:\/\/.*mlflow\.sql\.gz was taken .* \(\d+\.\d hours ago, before 3\.1\): restoring it would lose every MLflow write made after that/);
  });

  it('refuses an instance without the MLflow labels', async () => {
    seedSqlInstance(cloud.sandbox, { project: 'demo-project', name: 'mlflow-db', region: 'europe-central2', labels: { team: 'data' }, databases: ['mlflow'], backing: { mlflow: store.url } });
    const i = sql().instances['demo-project/mlflow-db'];
    grantBucket(cloud.sandbox, 'demo-backups', `serviceAccount:${i.serviceAccountEmailAddress}`, 'roles/storage.objectAdmin');
    const failure = await failureOf(backupThenDelete().then(() => undefined));
    expect(failure.type).toBe('ResourceMismatch');
    expect(cloud.sandbox.callsTo('DELETE |PATCH ')).toHaveLength(0);
  });

  it('dry run makes no mutating call; preflight and remaining read only', async () => {
    const k = kind();
    const plan = await k.activities.deleteMlflowDatabase(context({ dryRun: true, gatesPassed: [] }));
    expect(plan.actions.map((x) => x.call)).toEqual(['storage.objects.insert', 'sql.instances.patch', 'sql.instances.delete']);
    await k.activities.backupDatabase(context({ dryRun: true }));
    expect((await k.preflight(context())).every((c) => c.ok)).toBe(true);
    expect(await k.remaining(context())).toEqual([instance]);
    expect(cloud.sandbox.calls.filter((c) => c.method !== 'GET')).toEqual([]);
  });

  it('403 is PermissionDenied naming roles/cloudsql.admin', async () => {
    cloud.sandbox.addFault({ match: 'POST .*/backupRuns$', status: 403, times: 1 });
    const failure = await failureOf(kind().activities.backupDatabase(context()));
    expect(failure.type).toBe('PermissionDenied');
    expect(failure.message).toMatch(/roles\/cloudsql\.admin/);
  });
});
