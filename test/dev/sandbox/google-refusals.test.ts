// The sandbox refuses what Google refuses: each case through the real client library, with the
// Google document it follows (see docs/gcp-fidelity.md).
import { beforeAll, describe, expect, it } from 'vitest';
import { seedCloudRunService } from '../../../dev/sandbox/services/cloud-run';
import { seedSqlInstance } from '../../../dev/sandbox/services/cloud-sql';
import { seedServiceAccount } from '../../../dev/sandbox/services/iam';
import { grantBucket, seedBucket } from '../../../dev/sandbox/services/storage';
import { isOperationInProgress } from '../../../src/adapters/gcp/clients';
import { useSandbox } from '../../support/cloud';

const cloud = useSandbox('demo-project', { pendingDeleteMs: 300 });
const P = 'demo-project';
const failure = (p: Promise<unknown>) => p.then(() => undefined, (e: { code?: number; status?: number; message?: string }) => e);
async function waitDone(name: string) {
  for (;;) {
    const [op] = await cloud.gcp.sqlOperations.get({ project: P, operation: name });
    if (op.status === 'DONE') return op;
    await new Promise((r) => setTimeout(r, 20));
  }
}

beforeAll(() => {
  seedBucket(cloud.sandbox, { name: 'demo-backups' });
});

describe('Cloud Storage', () => {
  it('objects.list refuses softDeleted together with versions (400)', async () => {
    const err = await failure(cloud.gcp.storage.bucket('demo-backups').getFiles({ softDeleted: true, versions: true }));
    expect(err?.code).toBe(400);
    expect(err?.message).toMatch(/softDeleted and versions/);
  });

  it('soft delete retention must be 0 or between 7 and 90 days', async () => {
    const err = await failure(cloud.gcp.storage.bucket('demo-backups').setMetadata({ softDeletePolicy: { retentionDurationSeconds: 3 * 86_400 } }));
    expect(err?.code).toBe(400);
  });
});

describe('Cloud SQL', () => {
  it('refuses a second operation on an instance while one runs (409 operationInProgress)', async () => {
    seedSqlInstance(cloud.sandbox, { project: P, name: 'busy-db', region: 'europe-central2' });
    await cloud.gcp.sqlInstances.patch({ project: P, instance: 'busy-db', body: { settings: { userLabels: { a: 'b' } } } });
    const err = await failure(cloud.gcp.sqlInstances.patch({ project: P, instance: 'busy-db', body: { settings: { userLabels: { c: 'd' } } } }));
    expect(err?.message).toMatch(/Operation failed because another operation was already in progress/);
    expect(isOperationInProgress(err)).toBe(true);
  });

  it('a deleted instance stays PENDING_DELETE for a while, and its name is not free meanwhile', async () => {
    seedSqlInstance(cloud.sandbox, { project: P, name: 'going-db', region: 'europe-central2' });
    const [op] = await cloud.gcp.sqlInstances.delete({ project: P, instance: 'going-db' });
    await waitDone(op.name!);
    const [instance] = await cloud.gcp.sqlInstances.get({ project: P, instance: 'going-db' });
    expect(String(instance.state)).toMatch(/PENDING_DELETE|5/);
    const err = await failure(cloud.gcp.sqlInstances.insert({ project: P, body: { name: 'going-db', region: 'europe-central2', databaseVersion: 'POSTGRES_15', settings: { tier: 'db-f1-micro' } } }));
    expect(err?.message).toMatch(/already exists/);
    await new Promise((r) => setTimeout(r, 350));
    expect((await failure(cloud.gcp.sqlInstances.get({ project: P, instance: 'going-db' })))?.code).toBe(5);
  });

  it("a recreated instance has a new service account that cannot export to the bucket until granted", async () => {
    const old = seedSqlInstance(cloud.sandbox, { project: P, name: 'again-db', region: 'europe-central2', databases: ['mlflow'] });
    grantBucket(cloud.sandbox, 'demo-backups', `serviceAccount:${old.serviceAccountEmailAddress}`, 'roles/storage.objectAdmin');
    const again = seedSqlInstance(cloud.sandbox, { project: P, name: 'again-db', region: 'europe-central2', databases: ['mlflow'] });
    expect(again.serviceAccountEmailAddress).not.toBe(old.serviceAccountEmailAddress);
    const exportTo = async (name: string) => {
      const [op] = await cloud.gcp.sqlInstances.export({ project: P, instance: 'again-db', body: { exportContext: { fileType: 'SQL', uri: `gs://demo-backups/${name}.sql.gz`, databases: ['mlflow'] } } });
      return waitDone(op.name!);
    };
    expect((await exportTo('denied')).error?.errors?.[0]?.message).toMatch(/does not have the required permissions for the bucket demo-backups/);
    grantBucket(cloud.sandbox, 'demo-backups', `serviceAccount:${again.serviceAccountEmailAddress}`, 'roles/storage.objectAdmin');
    expect((await exportTo('allowed')).error?.errors ?? []).toEqual([]);
  });

  it('restoreInstanceSettings applies to a restore into a new instance only (400 on an existing one)', async () => {
    seedSqlInstance(cloud.sandbox, { project: P, name: 'kept-db', region: 'europe-central2' });
    const [op] = await cloud.gcp.sqlInstances.delete({ project: P, instance: 'kept-db', enableFinalBackup: true });
    await waitDone(op.name!);
    const [backups] = await cloud.gcp.sqlBackups.listBackups({ parent: `projects/${P}`, filter: 'instance:kept-db AND type:FINAL' });
    expect(backups).toHaveLength(1);
    seedSqlInstance(cloud.sandbox, { project: P, name: 'other-db', region: 'europe-central2' });
    const err = await failure(cloud.gcp.sqlInstances.restoreBackup({ project: P, instance: 'other-db', body: { backup: backups[0]!.name, restoreInstanceSettings: { settings: { tier: 'db-f1-micro' } } } }));
    expect(err?.code).toBe(3);
  });
});

describe('Cloud Run', () => {
  const parent = `projects/${P}/locations/europe-central2`;

  it('a service whose env references a secret that does not exist never becomes Ready', async () => {
    const [op] = await cloud.gcp.run.createService({
      parent,
      serviceId: 'needs-secret',
      service: { template: { containers: [{ image: 'us-docker.pkg.dev/cloudrun/container/hello', env: [{ name: 'X', valueSource: { secretKeyRef: { secret: 'nowhere', version: 'latest' } } }] }] } },
    });
    await expect(op.promise()).rejects.toThrow(/secret projects\/demo-project\/secrets\/nowhere was not found/);
    const [service] = await cloud.gcp.run.getService({ name: `${parent}/services/needs-secret` });
    expect(String(service.terminalCondition?.state)).toMatch(/CONDITION_FAILED|3/);
  });

  it('refuses traffic pinned to a revision that does not exist', async () => {
    const err = await failure(
      cloud.gcp.run.createService({ parent, serviceId: 'pinned', service: { template: { containers: [{ image: 'hello' }] }, traffic: [{ type: 'TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION', revision: 'pinned-00001-abc', percent: 100 }] } }),
    );
    expect(err?.code).toBe(3);
    expect(err?.message).toMatch(/Revision named 'pinned-00001-abc' .* does not exist/);
  });

  it('keeps a service IAM policy, which a recreated service does not have', async () => {
    seedCloudRunService(cloud.sandbox, { project: P, region: 'europe-central2', name: 'public', invokers: ['allUsers'] });
    const [policy] = await cloud.gcp.run.getIamPolicy({ resource: `${parent}/services/public` });
    expect(policy.bindings?.[0]).toMatchObject({ role: 'roles/run.invoker', members: ['allUsers'] });
  });
});

describe('IAM', () => {
  it('undelete through projects/- answers 403 for an account that does not exist, 404 through its project', async () => {
    seedServiceAccount(cloud.sandbox, { project: P, email: `gone-sa@${P}.iam.gserviceaccount.com` });
    const wildcard = await failure(cloud.gcp.iam.projects.serviceAccounts.undelete({ name: 'projects/-/serviceAccounts/123456789012345678901', requestBody: {} }));
    expect(wildcard?.status ?? (wildcard as { response?: { status?: number } })?.response?.status).toBe(403);
    const named = await failure(cloud.gcp.iam.projects.serviceAccounts.undelete({ name: `projects/${P}/serviceAccounts/123456789012345678901`, requestBody: {} }));
    expect(named?.status ?? (named as { response?: { status?: number } })?.response?.status).toBe(404);
  });
});
