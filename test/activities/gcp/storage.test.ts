// 3.4 and its compensation against the sandbox, through the real @google-cloud/storage client.
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
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
/** Every version (live and noncurrent) of a bucket: name, content, state; read with the real client. */
async function versionsOf(bucket: string): Promise<Array<[string, string, string]>> {
  const [files] = await cloud.gcp.storage.bucket(bucket).getFiles({ versions: true });
  const out = await Promise.all(files.map(async (f) => [f.name, (await f.download())[0].toString(), f.metadata.timeDeleted ? 'noncurrent' : 'live'] as [string, string, string]));
  return out.sort((a, b) => (a[0] + a[1] < b[0] + b[1] ? -1 : 1));
}
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
    expect(restored.summary).toContain('3 of 3 object version(s)');
    expect(await cloud.objects.read(`gs://${ARTIFACTS}/runs/1/model.pkl`)).toEqual(Buffer.from('model v2'));
    expect(await cloud.objects.read(`gs://${ARTIFACTS}/runs/1/metrics.json`)).toEqual(Buffer.from('{"loss":0.1}'));
    expect(await versionsOf(ARTIFACTS)).toEqual([
      ['runs/1/metrics.json', '{"loss":0.1}', 'live'],
      ['runs/1/model.pkl', 'model v1', 'noncurrent'],
      ['runs/1/model.pkl', 'model v2', 'live'],
    ]);
    expect(await kind.remaining(ctx)).toEqual([`gs://${ARTIFACTS}`]);
    // Run again: nothing is restored twice.
    await kind.activities.restoreArtifactsBucket(ctx);
    expect(await versionsOf(ARTIFACTS)).toHaveLength(3);
  });

  it('a restore that dies halfway and is retried adds no version, and noncurrent objects stay noncurrent', async () => {
    const name = 'halfway-artifacts';
    seedBucket(cloud.sandbox, { name, labels: { app: 'mlflow' }, versioning: true, objects: { 'a.txt': 'a1', 'b.txt': 'b1', 'gone.txt': 'deleted before the migration' } });
    seedBucket(cloud.sandbox, { name, objects: { 'a.txt': 'a2', 'b.txt': 'b2' } });
    // gone.txt was deleted long before 3.4: in a versioned bucket it lives on as a noncurrent version only.
    await cloud.gcp.storage.bucket(name).file('gone.txt').delete();
    const before = await versionsOf(name);
    const ctx = context({}, withArtifacts(name));
    await storage().activities.deleteArtifactsBucket(ctx);
    // The attempt stops after restoring a.txt (its call for b.txt is refused once).
    cloud.sandbox.addFault({ match: `POST /storage/v1/b/${name}/o/b.txt/restore$`, status: 403, times: 1 });
    const first = await storage().activities.restoreArtifactsBucket(ctx).then(() => undefined, (e: unknown) => e);
    expect((first as ApplicationFailure).type).toBe('PermissionDenied');
    await storage().activities.restoreArtifactsBucket(ctx);
    expect(await versionsOf(name)).toEqual(before);
    expect(await cloud.objects.read(`gs://${name}/gone.txt`)).toBeUndefined();
  });

  it('3.4 raises a retention shorter than the bake period plus a margin, and the undo puts it back', async () => {
    const name = 'short-retention-artifacts';
    seedBucket(cloud.sandbox, { name, labels: { app: 'mlflow' }, objects: { 'x.bin': 'x' }, softDeleteRetentionSeconds: 7 * 86_400 });
    const ctx = context({}, demoTarget({ bakePeriod: '7 days', buckets: { ...demoTarget().buckets, artifacts: name } }));
    expect((await storage().preflight(ctx))[1].detail).toMatch(/soft delete keeps it 7 day\(s\), less than the bake period 7 days plus 7 day\(s\): 3\.4 raises it to 14 day\(s\) before deleting, and undo puts 7 day\(s\) back/);
    const deleted = await storage().activities.deleteArtifactsBucket(ctx);
    expect(deleted.summary).toMatch(/restorable for 14 day\(s\) \(soft delete raised from 7 day\(s\); undo puts it back\)/);
    const gone = (cloud.sandbox.state.storage.deleted as Array<{ meta: Record<string, any> }>).find((b) => b.meta.name === name)!;
    expect(Date.parse(gone.meta.hardDeleteTime) - Date.parse(gone.meta.softDeleteTime)).toBe(14 * 86_400_000);
    await storage().activities.restoreArtifactsBucket(ctx);
    const [meta] = await cloud.gcp.storage.bucket(name).getMetadata();
    expect(meta.softDeletePolicy?.retentionDurationSeconds).toBe(String(7 * 86_400));
    expect(await cloud.objects.read(`gs://${name}/x.bin`)).toEqual(Buffer.from('x'));
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
    seedBucket(cloud.sandbox, { name: 'gone-artifacts', labels: { app: 'mlflow' }, objects: { a: '1' } });
    const ctx = context({}, withArtifacts('gone-artifacts'));
    await storage().activities.deleteArtifactsBucket(ctx);
    // Its retention ran out (as it would after the bake period without 3.4 raising it).
    for (const b of cloud.sandbox.state.storage.deleted as Array<{ meta: Record<string, any> }>) if (b.meta.name === 'gone-artifacts') b.meta.hardDeleteTime = new Date(Date.now() - 1000).toISOString();
    const err = await expectFailure(storage().activities.restoreArtifactsBucket(ctx), 'CannotRestore');
    expect(err.message).toContain(snapshotUri(ctx, 'bucket', 'gone-artifacts'));
  });

  it('a delete interrupted halfway and retried finishes, and its snapshot still lists every version', async () => {
    const ctx = context({ migrationId: 'storage-test-interrupted' });
    // The second version's delete is refused once: the step stops with one version already gone.
    cloud.sandbox.addFault({ match: `DELETE /storage/v1/b/${ARTIFACTS}/o/runs/1/model.pkl$`, status: 403, times: 1 });
    const err = await storage().activities.deleteArtifactsBucket(ctx).then(() => undefined, (e: unknown) => e);
    expect((err as ApplicationFailure).type).toBe('PermissionDenied');
    expect(cloud.sandbox.state.storage.buckets[ARTIFACTS]).toBeDefined();
    const result = await storage().activities.deleteArtifactsBucket(ctx);
    expect(result.summary).toMatch(/deleted gs:\/\/demo-mlflow-artifacts and its 3 object version/);
    expect(cloud.sandbox.callsTo(`DELETE /storage/v1/b/${ARTIFACTS}$`).map((c) => c.status)).toEqual([204, 204]);
    const snapshot = JSON.parse((await cloud.objects.read(snapshotUri(ctx, 'bucket', ARTIFACTS)))!.toString());
    expect(snapshot.objects).toHaveLength(3);
  });

  it('preflight: backup bucket writable, artifacts bucket readable', async () => {
    const checks = await storage().preflight(context({}, withArtifacts('someone-elses-bucket')));
    expect(checks[0]).toMatchObject({ name: 'backup bucket gs://demo-backups', ok: true });
    expect(checks[1]).toMatchObject({ name: 'artifacts bucket gs://someone-elses-bucket', ok: false });
    expect(checks[1].detail).toContain('app=mlflow');
  });

  // Last: the labelled bucket it seeds would show in remaining().
  it('a cancelled 3.4 (a rollback) stops before its next deletion', async () => {
    seedBucket(cloud.sandbox, { name: 'cancelled-artifacts', labels: { app: 'mlflow' }, objects: { 'a.txt': 'a', 'b.txt': 'b' } });
    const env = new MockActivityEnvironment();
    env.cancel();
    const before = cloud.sandbox.calls.length;
    const run = env.run(storage().activities.deleteArtifactsBucket, context({ migrationId: 'storage-cancel' }, withArtifacts('cancelled-artifacts')));
    await expect(run).rejects.toBeInstanceOf(CancelledFailure);
    expect(callsSince(before).filter((c) => c.method === 'DELETE')).toEqual([]);
    expect((await versionsOf('cancelled-artifacts')).map(([name]) => name)).toEqual(['a.txt', 'b.txt']);
  });
});
