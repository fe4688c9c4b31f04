import { ApplicationFailure } from '@temporalio/common';
import { beforeEach, describe, expect, it } from 'vitest';
import { seedCloudRunService } from '../../../dev/sandbox/services/cloud-run';
import { seedSecret } from '../../../dev/sandbox/services/secret-manager';
import { seedBucket } from '../../../dev/sandbox/services/storage';
import { createCloudRunActivities } from '../../../src/activities/gcp/cloud-run';
import type { GateId, StepContext } from '../../../src/types';
import { demoTarget } from '../../support/fake-activities';
import { useSandbox } from '../../support/cloud';
import { failureOf } from '../../support/failures';

const cloud = useSandbox();
const target = demoTarget();
const parent = 'projects/demo-project/locations/europe-central2';
const mlflowName = `${parent}/services/mlflow-server`;
const appName = `${parent}/services/django-app`;
const secretRef = { secretKeyRef: { secret: 'projects/demo-project/secrets/MLFLOW_URI', version: '3' } };
/** A password someone put in a plain env var: it must never land in the backup bucket. */
const PLAIN_SECRET = 's3cr3t-in-plain-env';

let run = 0;
function context(overrides: Partial<StepContext> = {}): StepContext {
  return { migrationId: `m-${run}`, targetName: 'demo', target, dryRun: false, gatesPassed: ['phase-0', 'phase-1', 'phase-2', 'phase-3', 'phase-4'] as GateId[], force: false, facts: {}, ...overrides };
}
const activities = () => createCloudRunActivities({ gcp: cloud.gcp, objects: cloud.objects }, { pollIntervalMs: 20 });
const state = () => cloud.sandbox.state.cloudRun.services as Record<string, any>;

beforeEach(() => {
  run++;
  cloud.sandbox.clearFaults();
  cloud.sandbox.calls.length = 0;
  for (const k of Object.keys(cloud.sandbox.state.cloudRun?.services ?? {})) delete state()[k];
  seedBucket(cloud.sandbox, { name: 'demo-backups' });
  if (!cloud.sandbox.state.secretManager?.secrets?.['projects/demo-project/secrets/MLFLOW_URI']) seedSecret(cloud.sandbox, { project: 'demo-project', id: 'MLFLOW_URI', versions: ['a', 'b', 'https://mlflow'] });
  seedCloudRunService(cloud.sandbox, {
    project: 'demo-project',
    region: 'europe-central2',
    name: 'mlflow-server',
    labels: { app: 'mlflow' },
    serviceAccount: target.serviceAccount,
    invokers: ['allUsers'],
    env: [
      { name: 'MLFLOW_BACKEND_STORE_URI', valueSource: secretRef },
      { name: 'MLFLOW_ARTIFACTS_DESTINATION', value: 'gs://demo-mlflow-artifacts' },
      { name: 'ADMIN_PASSWORD', value: PLAIN_SECRET },
    ],
  });
  seedCloudRunService(cloud.sandbox, {
    project: 'demo-project',
    region: 'europe-central2',
    name: 'django-app',
    labels: { app: 'django' },
    env: [
      { name: 'DJANGO_SETTINGS_MODULE', value: 'config.settings' },
      { name: 'MLFLOW_TRACKING_URI', valueSource: secretRef },
    ],
  });
});

describe('Cloud Run activities', () => {
  it('3.1 snapshots then deletes; restore recreates the same spec, env values and invokers', async () => {
    const { activities: a } = activities();
    const before = structuredClone(state()[mlflowName]);
    const result = await a.deleteMlflowService(context());
    expect(state()[mlflowName]).toBeUndefined();
    expect(result.facts?.snapshot).toBe(`gs://demo-backups/mlflow-decommission/m-${run}/snapshots/cloud-run/mlflow-server.json`);
    expect(Date.parse(result.facts?.deletedAt as string)).not.toBeNaN();
    const raw = (await cloud.objects.read(result.facts!.snapshot as string))!.toString();
    const snapshot = JSON.parse(raw);
    expect(snapshot.name).toBe(mlflowName);
    expect(snapshot.uid).toBe(before.uid);
    // Plain env values are not kept in clear in the bucket: names stay, values sit in Secret Manager.
    expect(raw).not.toContain(PLAIN_SECRET);
    expect(raw).not.toContain('gs://demo-mlflow-artifacts');
    expect(snapshot.template.containers[0].env).toContainEqual({ name: 'ADMIN_PASSWORD', valueIn: expect.stringMatching(/^projects\/demo-project\/secrets\/mlflow-decommission-demo-env\/versions\/\d+$/) });
    // The snapshot was written before the delete was sent.
    const paths = cloud.sandbox.calls.map((c) => `${c.method} ${c.path}`);
    expect(paths.findIndex((p) => p.includes('snapshots/cloud-run') || p.includes('/upload/'))).toBeLessThan(paths.findIndex((p) => p === `DELETE /v2/${mlflowName}`));

    await a.restoreMlflowService(context());
    const after = state()[mlflowName];
    expect(after.labels).toEqual(before.labels);
    expect(after.template.containers).toEqual(before.template.containers);
    expect(after.template.serviceAccount).toBe(target.serviceAccount);
    expect(after.uid).not.toBe(before.uid);
    const [policy] = await cloud.gcp.run.getIamPolicy({ resource: mlflowName });
    expect(policy.bindings?.map((b) => [b.role, b.members])).toEqual([['roles/run.invoker', ['allUsers']]]);
    // Restoring again finds it there.
    expect((await a.restoreMlflowService(context())).summary).toMatch(/nothing to restore/);
  });

  it('restore moves traffic pinned to a revision that died with the service to the latest revision', async () => {
    const pinned = state()[mlflowName].latestReadyRevision;
    seedCloudRunService(cloud.sandbox, { project: 'demo-project', region: 'europe-central2', name: 'mlflow-server', labels: { app: 'mlflow' }, traffic: [{ type: 'TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION', revision: pinned.split('/').pop(), percent: 100, tag: 'stable' }] });
    const { activities: a } = activities();
    await a.deleteMlflowService(context());
    const restored = await a.restoreMlflowService(context());
    expect(restored.summary).toMatch(/traffic pinned to deleted revision\(s\) now goes to the latest \(tags stable dropped\)/);
    expect(state()[mlflowName].traffic).toEqual([{ type: 'TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST', percent: 100 }]);
    expect(state()[mlflowName].terminalCondition.state).toBe('CONDITION_SUCCEEDED');
  });

  it('a recreated service that cannot become Ready is not reported restored, on the first try nor on a retry', async () => {
    seedSecret(cloud.sandbox, { project: 'demo-project', id: 'MLFLOW_BACKEND', versions: ['postgres://…'] });
    seedCloudRunService(cloud.sandbox, { project: 'demo-project', region: 'europe-central2', name: 'mlflow-server', labels: { app: 'mlflow' }, env: [{ name: 'MLFLOW_BACKEND_STORE_URI', valueSource: { secretKeyRef: { secret: 'MLFLOW_BACKEND', version: 'latest' } } }] });
    const { activities: a } = activities();
    await a.deleteMlflowService(context());
    // The secret it references was deleted meanwhile (as 5.4 does).
    delete cloud.sandbox.state.secretManager.secrets['projects/demo-project/secrets/MLFLOW_BACKEND'];
    for (let attempt = 0; attempt < 2; attempt++) {
      const failure = await failureOf(a.restoreMlflowService(context()));
      expect(failure.type).toBe('CannotRestore');
      expect(failure.message).toMatch(/is not Ready: .*secret projects\/demo-project\/secrets\/MLFLOW_BACKEND was not found/);
    }
    expect(cloud.sandbox.callsTo(`POST /v2/${parent}/services`)).toHaveLength(1);
  });

  it('deleting twice calls delete once', async () => {
    const { activities: a } = activities();
    await a.deleteMlflowService(context());
    const again = await a.deleteMlflowService(context());
    expect(again.summary).toMatch(/already gone/);
    expect(again.facts?.snapshot).toMatch(/mlflow-server\.json$/);
    expect(cloud.sandbox.callsTo(`DELETE /v2/${mlflowName}$`)).toHaveLength(1);
  });

  it('refuses a service without the MLflow labels', async () => {
    seedCloudRunService(cloud.sandbox, { project: 'demo-project', region: 'europe-central2', name: 'mlflow-server', labels: { app: 'other' } });
    const failure = await failureOf(activities().activities.deleteMlflowService(context()));
    expect(failure.type).toBe('ResourceMismatch');
    expect(failure.message).toMatch(/mlflow-server.*app=mlflow/);
    expect(cloud.sandbox.callsTo('DELETE ')).toHaveLength(0);
    expect(state()[mlflowName]).toBeDefined();
  });

  it('refuses before gate phase-2', async () => {
    const failure = await failureOf(activities().activities.deleteMlflowService(context({ gatesPassed: ['phase-0', 'phase-1'] })));
    expect(failure.type).toBe('GateNotPassed');
    expect(cloud.sandbox.calls).toHaveLength(0);
  });

  it('5.3 removes the env var in a new revision; undo puts back the exact secret reference', async () => {
    const { activities: a } = activities();
    const before = structuredClone(state()[appName]);
    const result = await a.removeTrackingUri(context());
    const after = state()[appName];
    expect(after.template.containers[0].env.map((e: { name: string }) => e.name)).toEqual(['DJANGO_SETTINGS_MODULE']);
    expect(Number(after.generation)).toBe(Number(before.generation) + 1);
    expect(after.latestReadyRevision).not.toBe(before.latestReadyRevision);
    expect(result.facts?.revision).toBe(after.latestReadyRevision);
    // Already absent: nothing to do, and the snapshot keeps the entry.
    expect((await a.removeTrackingUri(context())).summary).toMatch(/not set/);
    expect(cloud.sandbox.callsTo(`PATCH /v2/${appName}`)).toHaveLength(1);

    await a.restoreTrackingUri(context());
    const restored = state()[appName].template.containers[0].env;
    expect(restored).toContainEqual({ name: 'MLFLOW_TRACKING_URI', valueSource: secretRef });
    expect(restored).toContainEqual({ name: 'DJANGO_SETTINGS_MODULE', value: 'config.settings' });
    expect(Number(state()[appName].generation)).toBe(Number(before.generation) + 2);
  });

  it('5.3 keeps a plain tracking URI out of the bucket, and puts the same value back', async () => {
    const uri = 'https://mlflow-server-xyz.a.run.app';
    seedCloudRunService(cloud.sandbox, { project: 'demo-project', region: 'europe-central2', name: 'django-app', labels: { app: 'django' }, env: [{ name: 'MLFLOW_TRACKING_URI', value: uri }] });
    const { activities: a } = activities();
    const result = await a.removeTrackingUri(context());
    expect((await cloud.objects.read(result.facts!.snapshot as string))!.toString()).not.toContain(uri);
    await a.restoreTrackingUri(context());
    expect(state()[appName].template.containers[0].env).toEqual([{ name: 'MLFLOW_TRACKING_URI', value: uri }]);
  });

  it('5.3 is not done until the new revision is Ready, also when retried', async () => {
    seedSecret(cloud.sandbox, { project: 'demo-project', id: 'APP_TOKEN', versions: ['t'] });
    seedCloudRunService(cloud.sandbox, {
      project: 'demo-project',
      region: 'europe-central2',
      name: 'django-app',
      labels: { app: 'django' },
      env: [
        { name: 'MLFLOW_TRACKING_URI', value: 'https://mlflow' },
        { name: 'TOKEN', valueSource: { secretKeyRef: { secret: 'APP_TOKEN', version: '1' } } },
      ],
    });
    delete cloud.sandbox.state.secretManager.secrets['projects/demo-project/secrets/APP_TOKEN'];
    const { activities: a } = activities();
    for (let attempt = 0; attempt < 2; attempt++) {
      const failure = await failureOf(a.removeTrackingUri(context()));
      expect(failure.type).toBe('PreconditionFailed');
      expect(failure.message).toMatch(/new revision of .*django-app without MLFLOW_TRACKING_URI is not Ready: .*APP_TOKEN was not found/);
    }
  });

  it('dry run makes no mutating call', async () => {
    const { activities: a } = activities();
    const del = await a.deleteMlflowService(context({ dryRun: true, gatesPassed: [] }));
    expect(del.actions).toContainEqual(expect.objectContaining({ call: 'run.services.delete', resource: mlflowName, destructive: true }));
    const env = await a.removeTrackingUri(context({ dryRun: true, gatesPassed: [] }));
    expect(env.actions).toContainEqual(expect.objectContaining({ call: 'run.services.update', resource: appName, destructive: true }));
    expect(cloud.sandbox.calls.filter((c) => c.method !== 'GET')).toEqual([]);
  });

  it('preflight reads both services; remaining lists what carries the labels', async () => {
    const kind = activities();
    const checks = await kind.preflight(context());
    expect(checks.every((c) => c.ok)).toBe(true);
    seedCloudRunService(cloud.sandbox, { project: 'demo-project', region: 'europe-central2', name: 'mlflow-ui', labels: { app: 'mlflow' } });
    expect((await kind.remaining(context())).sort()).toEqual([`${parent}/services/mlflow-server`, `${parent}/services/mlflow-ui`]);
    delete state()[`${parent}/services/mlflow-ui`];
  });

  it('a 503 on delete is retryable; a 403 is PermissionDenied and final', async () => {
    const { activities: a } = activities();
    cloud.sandbox.addFault({ match: 'DELETE /v2/.*/services/mlflow-server', status: 503, times: 2 });
    for (let i = 0; i < 2; i++) {
      const err = await a.deleteMlflowService(context()).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeDefined();
      expect(err instanceof ApplicationFailure && err.nonRetryable).toBe(false);
    }
    await a.deleteMlflowService(context());
    expect(state()[mlflowName]).toBeUndefined();

    cloud.sandbox.addFault({ match: 'GET /v2/.*/services/django-app', status: 403, times: 1 });
    const failure = await failureOf(a.removeTrackingUri(context()));
    expect(failure.type).toBe('PermissionDenied');
    expect(failure.nonRetryable).toBe(true);
    expect(failure.message).toMatch(/roles\/run\.admin/);
  });
});
