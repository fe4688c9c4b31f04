// 3.4 and its compensation against the sandbox, through the real @google-cloud/storage client.
import { ApplicationFailure } from '@temporalio/common';
import { beforeAll, describe, expect, it } from 'vitest';
import { createStorageActivities } from '../../../src/activities/gcp/storage';
import { snapshotUri } from '../../../src/activities/gcp/common';
import { GATE_IDS, type StepContext } from '../../../src/types';
import { seedBucket } from '../../../dev/sandbox/services/storage';
import { useSandbox } from '../../support/cloud';
import { demoTarget } from '../../support/fake-activities';

const cloud = useSandbox();
const ARTIFACTS = 'demo-mlflow-artifacts';

function context(over: Partial<StepContext> = {}, target = demoTarget()): StepContext {
  return { migrationId: 'storage-test', targetName: 'demo', target, dryRun: false, gatesPassed: [...GATE_IDS], force: false, facts: {}, ...over };
}
const withArtifacts = (artifacts: string) => demoTarget({ buckets: { ...demoTarget().buckets, artifacts } });
const storage = () => createStorageActivities({ gcp: cloud.gcp, objects: cloud.objects });
const callsSince = (n: number) => cloud.sandbox.calls.slice(n);
async function expectFailure(p: Promise<unknown>, type: string): Promise<ApplicationFailure> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(ApplicationFailure);
  expect((err as ApplicationFailure).type).toBe(type);
  return err as ApplicationFailure;
}

describe('storage activities', () => {
  beforeAll(() => {
    // The backup bucket carries the labels too: remaining() must still never name it.
    seedBucket(cloud.sandbox, { name: 'demo-backups', labels: { app: 'mlflow' } });
    seedBucket(cloud.sandbox, { name: ARTIFACTS, labels: { app: 'mlflow' }, versioning: true, objects: { 'runs/1/model.pkl': 'model v1', 'runs/1/metrics.json': '{"loss":0.1}' } });
    seedBucket(cloud.sandbox, { name: ARTIFACTS, objects: { 'runs/1/model.pkl': 'model v2' } });
    seedBucket(cloud.sandbox, { name: 'someone-elses-bucket', objects: { 'keep.txt': 'keep' } });
  });

  it('refuses before gate phase-2', async () => {
    const before = cloud.sandbox.calls.length;
    const err = await expectFailure(storage().activities.deleteArtifactsBucket(context({ gatesPassed: ['phase-0', 'phase-1'] })), 'GateNotPassed');
    expect(err.message).toContain('phase-2');
    expect(callsSince(before)).toEqual([]);
  });

  it('dry run makes no call', async () => {
    const before = cloud.sandbox.calls.length;
    const result = await storage().activities.deleteArtifactsBucket(context({ dryRun: true, gatesPassed: [] }));
    expect(callsSince(before).filter((c) => c.method !== 'GET')).toEqual([]);
    expect(result.actions.map((a) => a.call)).toEqual(['storage.buckets.get', 'storage.objects.insert', 'storage.objects.delete', 'storage.objects.delete', 'storage.objects.delete', 'storage.buckets.delete']);
    expect(result.actions.at(-1)).toMatchObject({ resource: `gs://${ARTIFACTS}`, destructive: true });
  });

  it('refuses an unlabelled bucket', async () => {
    const err = await expectFailure(storage().activities.deleteArtifactsBucket(context({}, withArtifacts('someone-elses-bucket'))), 'ResourceMismatch');
    expect(err.message).toContain('app=mlflow');
    expect(await cloud.objects.read('gs://someone-elses-bucket/keep.txt')).toEqual(Buffer.from('keep'));
  });

  it('skips with a clear summary when deleteArtifacts is false', async () => {
    const target = demoTarget({ buckets: { ...demoTarget().buckets, deleteArtifacts: false } });
    const result = await storage().activities.deleteArtifactsBucket(context({}, target));
    expect(result.summary).toMatch(/skipped: buckets.deleteArtifacts is false/);
  });

  it('3.4 snapshots then deletes every version; restore brings the bucket back', async () => {
    const ctx = context();
    const kind = storage();
    expect(await kind.remaining(ctx)).toEqual([`gs://${ARTIFACTS}`]);
    const before = cloud.sandbox.calls.length;
    const result = await kind.activities.deleteArtifactsBucket(ctx);
    expect(result.summary).toContain('3 object version(s)');

    const calls = callsSince(before).map((c) => `${c.method} ${c.path}`);
    const snapshotWrite = calls.findIndex((c) => c === 'POST /upload/storage/v1/b/demo-backups/o');
    const firstDelete = calls.findIndex((c) => c.startsWith(`DELETE /storage/v1/b/${ARTIFACTS}/o/`));
    expect(snapshotWrite).toBeGreaterThanOrEqual(0);
    expect(firstDelete).toBeGreaterThan(snapshotWrite);
    expect(calls.filter((c) => c.startsWith(`DELETE /storage/v1/b/${ARTIFACTS}/o/`))).toHaveLength(3);
    expect(calls.at(-1)).toBe(`DELETE /storage/v1/b/${ARTIFACTS}`);

    const snapshot = JSON.parse((await cloud.objects.read(snapshotUri(ctx, 'bucket', ARTIFACTS)))!.toString());
    expect(snapshot.bucket.labels).toEqual({ app: 'mlflow' });
    expect(snapshot.objects.map((o: { name: string }) => o.name).sort()).toEqual(['runs/1/metrics.json', 'runs/1/model.pkl', 'runs/1/model.pkl']);
    expect(await kind.remaining(ctx)).toEqual([]);

    const restored = await kind.activities.restoreArtifactsBucket(ctx);
    expect(restored.summary).toContain('restored 3 of 3');
    expect(await cloud.objects.read(`gs://${ARTIFACTS}/runs/1/model.pkl`)).toEqual(Buffer.from('model v2'));
    expect(await cloud.objects.read(`gs://${ARTIFACTS}/runs/1/metrics.json`)).toEqual(Buffer.from('{"loss":0.1}'));
    const [versions] = await cloud.gcp.storage.bucket(ARTIFACTS).getFiles({ versions: true });
    expect(versions).toHaveLength(3);
    expect(await kind.remaining(ctx)).toEqual([`gs://${ARTIFACTS}`]);
  });

  it('delete twice is a no-op', async () => {
    seedBucket(cloud.sandbox, { name: 'twice-artifacts', labels: { app: 'mlflow' }, objects: { a: '1' } });
    const ctx = context({}, withArtifacts('twice-artifacts'));
    await storage().activities.deleteArtifactsBucket(ctx);
    const before = cloud.sandbox.calls.length;
    const again = await storage().activities.deleteArtifactsBucket(ctx);
    expect(again.summary).toBe('gs://twice-artifacts is already gone');
    expect(callsSince(before).filter((c) => c.method !== 'GET')).toEqual([]);
  });

  it('restore fails CannotRestore naming the snapshot when no soft-deleted generation is left', async () => {
    seedBucket(cloud.sandbox, { name: 'gone-artifacts', labels: { app: 'mlflow' }, objects: { a: '1' }, softDeleteRetentionSeconds: 1 });
    const ctx = context({}, withArtifacts('gone-artifacts'));
    await storage().activities.deleteArtifactsBucket(ctx);
    await new Promise((r) => setTimeout(r, 1_100));
    const err = await expectFailure(storage().activities.restoreArtifactsBucket(ctx), 'CannotRestore');
    expect(err.message).toContain(snapshotUri(ctx, 'bucket', 'gone-artifacts'));
  });

  it('a 503 on the bucket delete surfaces as a retryable error, and the retry finishes', async () => {
    const ctx = context();
    cloud.sandbox.addFault({ match: `DELETE /storage/v1/b/${ARTIFACTS}$`, status: 503, times: 2 });
    for (let attempt = 0; attempt < 2; attempt++) {
      const err = await storage().activities.deleteArtifactsBucket(ctx).then(() => undefined, (e: unknown) => e);
      // Not an ApplicationFailure: Temporal's retry policy retries it.
      expect(err).toBeDefined();
      expect(err).not.toBeInstanceOf(ApplicationFailure);
      expect((err as { code?: number }).code).toBe(503);
    }
    const result = await storage().activities.deleteArtifactsBucket(ctx);
    expect(result.summary).toMatch(/deleted gs:\/\/demo-mlflow-artifacts and its 3 object version/);
    expect(cloud.sandbox.callsTo(`DELETE /storage/v1/b/${ARTIFACTS}$`).map((c) => c.status)).toEqual([204, 503, 503, 204]);
    // The snapshot still lists every version, although the retries found the bucket already empty.
    const snapshot = JSON.parse((await cloud.objects.read(snapshotUri(ctx, 'bucket', ARTIFACTS)))!.toString());
    expect(snapshot.objects).toHaveLength(3);
  });

  it('preflight: backup bucket writable, artifacts bucket readable', async () => {
    const checks = await storage().preflight(context({}, withArtifacts('someone-elses-bucket')));
    expect(checks[0]).toMatchObject({ name: 'backup bucket gs://demo-backups', ok: true });
    expect(checks[1]).toMatchObject({ name: 'artifacts bucket gs://someone-elses-bucket', ok: false });
    expect(checks[1].detail).toContain('app=mlflow');
  });
});
