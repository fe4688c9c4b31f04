import { gunzipSync } from 'node:zlib';
import { beforeEach, describe, expect, it } from 'vitest';
import { cloudSqlService, seedSqlInstance } from '../../../dev/sandbox/services/cloud-sql';
import { seedBucket } from '../../../dev/sandbox/services/storage';
import { createCloudSqlActivities } from '../../../src/activities/gcp/cloud-sql';
import type { GateId, StepContext } from '../../../src/types';
import { demoTarget } from '../../support/fake-activities';
import { useSandbox } from '../../support/cloud';
import { failureOf } from '../../support/failures';

const cloud = useSandbox();
const target = demoTarget();
const instance = 'projects/demo-project/instances/mlflow-db';

let run = 0;
function context(overrides: Partial<StepContext> = {}): StepContext {
  return { migrationId: `m-${run}`, targetName: 'demo', target, dryRun: false, gatesPassed: ['phase-0', 'phase-1', 'phase-2'] as GateId[], force: false, facts: {}, ...overrides };
}
const kind = () => createCloudSqlActivities({ gcp: cloud.gcp, objects: cloud.objects }, { pollIntervalMs: 20 });
const sql = () => cloud.sandbox.state.cloudSql as { instances: Record<string, any>; databases: Record<string, string[]>; backupRuns: Record<string, any[]>; finalBackups: any[] };

beforeEach(() => {
  run++;
  cloud.sandbox.clearFaults();
  cloud.sandbox.calls.length = 0;
  seedBucket(cloud.sandbox, { name: 'demo-backups' });
  seedSqlInstance(cloud.sandbox, { project: 'demo-project', name: 'mlflow-db', region: 'europe-central2', labels: { app: 'mlflow' }, databases: ['mlflow'], deletionProtection: true });
});

describe('Cloud SQL activities', () => {
  it('0.1 takes a backup run and a gzip SQL export, waits for both and verifies the object', async () => {
    const { activities: a } = kind();
    const result = await a.backupDatabase(context());
    const uri = `gs://demo-backups/mlflow-decommission/m-${run}/sql/mlflow.sql.gz`;
    expect(result.facts).toMatchObject({ exportUri: uri, exportBytes: expect.any(Number) });
    expect(result.facts?.exportBytes).toBeGreaterThan(0);
    const runs = sql().backupRuns['demo-project/mlflow-db'];
    expect(runs.find((r) => r.id === result.facts?.backupRunId)?.status).toBe('SUCCESSFUL');
    expect(gunzipSync((await cloud.objects.read(uri))!).toString()).toMatch(/PostgreSQL database dump of "mlflow"/);
    // Both operations were polled to DONE.
    expect(cloud.sandbox.callsTo('GET /v1/projects/demo-project/operations/').length).toBeGreaterThanOrEqual(2);

    // Idempotent: a second run reuses the backup run and does not export again.
    const again = await a.backupDatabase(context());
    expect(again.facts?.backupRunId).toBe(result.facts?.backupRunId);
    expect(cloud.sandbox.callsTo('POST .*/export$')).toHaveLength(1);
    expect(cloud.sandbox.callsTo('POST .*/backupRuns$')).toHaveLength(1);
    expect((await a.checkExportVerified(context({ facts: { '0.1': result.facts } }))).checks[0].ok).toBe(true);
  });

  it('the export check fails when the export is missing', async () => {
    const { checks } = await kind().activities.checkExportVerified(context());
    expect(checks[0]).toMatchObject({ ok: false, detail: expect.stringMatching(/missing: run step 0.1/) });
  });

  it('3.2 refuses to delete without the export', async () => {
    const failure = await failureOf(kind().activities.deleteMlflowDatabase(context()));
    expect(failure.type).toBe('PreconditionFailed');
    expect(failure.message).toMatch(/mlflow\.sql\.gz is missing.*run step 0\.1 again or approve skip/);
    expect(sql().instances['demo-project/mlflow-db']).toBeDefined();
    expect(cloud.sandbox.callsTo('DELETE ')).toHaveLength(0);
  });

  it('3.2 turns deletion protection off explicitly, deletes with a final backup; restore creates and imports', async () => {
    const { activities: a } = kind();
    const backup = await a.backupDatabase(context());
    const ctx = context({ facts: { '0.1': backup.facts } });
    const result = await a.deleteMlflowDatabase(ctx);
    expect(result.facts).toMatchObject({ deletionProtectionDisabled: true, snapshot: expect.stringMatching(/snapshots\/cloud-sql\/mlflow-db\.json$/) });
    expect(result.actions.map((x) => x.call)).toEqual(['sql.instances.patch', 'sql.instances.delete']);
    const patch = cloud.sandbox.callsTo(`PATCH /v1/${instance}$`);
    expect(patch).toHaveLength(1);
    expect(sql().instances['demo-project/mlflow-db']).toBeUndefined();
    expect(sql().finalBackups.at(-1)).toMatchObject({ instance: 'mlflow-db', ttlDays: 30 });
    const snapshot = JSON.parse((await cloud.objects.read(result.facts!.snapshot as string))!.toString());
    expect(snapshot.settings.userLabels).toEqual({ app: 'mlflow' });

    // Deleting again: already gone, no second delete.
    expect((await a.deleteMlflowDatabase(ctx)).summary).toMatch(/already gone/);
    expect(cloud.sandbox.callsTo(`DELETE /v1/${instance}$`)).toHaveLength(1);

    await a.restoreMlflowDatabase(ctx);
    const restored = sql().instances['demo-project/mlflow-db'];
    expect(restored).toMatchObject({ region: 'europe-central2', databaseVersion: 'POSTGRES_15', state: 'RUNNABLE' });
    expect(restored.settings).toMatchObject({ tier: 'db-custom-1-3840', userLabels: { app: 'mlflow' }, deletionProtectionEnabled: true });
    expect(sql().databases['demo-project/mlflow-db']).toContain('mlflow');
    expect(cloud.sandbox.callsTo(`POST /v1/${instance}/import$`)).toHaveLength(1);
    // A retried compensation does not import twice.
    await a.restoreMlflowDatabase(ctx);
    expect(cloud.sandbox.callsTo(`POST /v1/${instance}/import$`)).toHaveLength(1);
  });

  it('refuses an instance without the MLflow labels', async () => {
    seedSqlInstance(cloud.sandbox, { project: 'demo-project', name: 'mlflow-db', region: 'europe-central2', labels: { team: 'data' }, databases: ['mlflow'] });
    const { activities: a } = kind();
    const backup = await a.backupDatabase(context());
    const failure = await failureOf(a.deleteMlflowDatabase(context({ facts: { '0.1': backup.facts } })));
    expect(failure.type).toBe('ResourceMismatch');
    expect(cloud.sandbox.callsTo('DELETE |PATCH ')).toHaveLength(0);
  });

  it('rolling back a 3.2 that never deleted imports nothing into the live instance', async () => {
    const { activities: a } = kind();
    const backup = await a.backupDatabase(context());
    // Cancelled before it began: no snapshot.
    expect((await a.restoreMlflowDatabase(context({ facts: { '0.1': backup.facts } }))).summary).toMatch(/never deleted: nothing to restore/);
    // Snapshot taken, then the delete failed (here: a 403 on the delete itself).
    cloud.sandbox.addFault({ match: 'DELETE /v1/projects/demo-project/instances/mlflow-db$', status: 403 });
    await failureOf(a.deleteMlflowDatabase(context({ facts: { '0.1': backup.facts } })));
    cloud.sandbox.clearFaults();
    expect((await a.restoreMlflowDatabase(context({ facts: { '0.1': backup.facts } }))).summary).toMatch(/never deleted: nothing to restore/);
    expect(cloud.sandbox.callsTo('POST /v1/projects/demo-project/instances/mlflow-db/import$')).toHaveLength(0);
  });

  it('restore fails clearly when the export is gone', async () => {
    const { activities: a } = kind();
    await cloud.objects.write(`gs://demo-backups/mlflow-decommission/m-${run}/snapshots/cloud-sql/mlflow-db.json`, JSON.stringify({ region: 'europe-central2', databaseVersion: 'POSTGRES_15', settings: { tier: 'db-f1-micro' } }));
    delete sql().instances['demo-project/mlflow-db'];
    const failure = await failureOf(a.restoreMlflowDatabase(context()));
    expect(failure.type).toBe('CannotRestore');
    expect(failure.message).toMatch(/mlflow\.sql\.gz is missing/);
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
