// 3.6, its undo and 5.4 against the sandbox, through the real Secret Manager client (REST fallback).
import { ApplicationFailure } from '@temporalio/common';
import { beforeAll, describe, expect, it } from 'vitest';
import { createSecretsActivities } from '../../../src/activities/gcp/secrets';
import { snapshotUri } from '../../../src/activities/gcp/common';
import { GATE_IDS, type StepContext } from '../../../src/types';
import { seedBucket } from '../../../dev/sandbox/services/storage';
import { seedSecret } from '../../../dev/sandbox/services/secret-manager';
import { useSandbox } from '../../support/cloud';
import { demoTarget } from '../../support/fake-activities';
import { failureOf } from '../../support/failures';

const cloud = useSandbox();
const SECRET = 'projects/demo-project/secrets/MLFLOW_DB_PASSWORD';

function context(over: Partial<StepContext> = {}, target = demoTarget()): StepContext {
  return { migrationId: 'secrets-test', targetName: 'demo', target, dryRun: false, gatesPassed: [...GATE_IDS], force: false, facts: {}, ...over };
}
const secrets = () => createSecretsActivities({ gcp: cloud.gcp, objects: cloud.objects });
const versionStates = async (name = SECRET) => {
  const [versions] = await cloud.gcp.secrets.listSecretVersions({ parent: name });
  return Object.fromEntries(versions.map((v) => [v.name!.split('/').pop(), String(v.state)]));
};
describe('secrets activities', () => {
  beforeAll(async () => {
    seedBucket(cloud.sandbox, { name: 'demo-backups' });
    seedSecret(cloud.sandbox, { project: 'demo-project', id: 'MLFLOW_DB_PASSWORD', labels: { app: 'mlflow' }, versions: ['old', 'older-but-disabled', 'current'] });
    // Version 2 was already disabled before the migration: undo must leave it disabled.
    await cloud.gcp.secrets.disableSecretVersion({ name: `${SECRET}/versions/2` });
    seedSecret(cloud.sandbox, { project: 'demo-project', id: 'MLFLOW_EXTRA', labels: { app: 'mlflow' }, versions: ['x'] });
    seedSecret(cloud.sandbox, { project: 'demo-project', id: 'DJANGO_SECRET', versions: ['keep'] });
  });

  it('preflight reads metadata only, never a payload', async () => {
    const before = cloud.sandbox.calls.length;
    const checks = await secrets().preflight(context({}, demoTarget({ secrets: ['MLFLOW_DB_PASSWORD', 'ALREADY_GONE'] })));
    expect(checks).toEqual([
      { name: 'secret MLFLOW_DB_PASSWORD', ok: true, detail: 'readable (metadata only): 3 version(s), 2 enabled' },
      expect.objectContaining({ name: 'secret ALREADY_GONE', ok: true }),
    ]);
    expect(cloud.sandbox.calls.slice(before).filter((c) => c.path.endsWith(':access'))).toEqual([]);
  });

  it('refuses before gate phase-2, and a dry run makes no call that changes anything', async () => {
    const before = cloud.sandbox.calls.length;
    expect((await failureOf(secrets().activities.disableSecrets(context({ gatesPassed: ['phase-0'] })))).type).toBe('GateNotPassed');
    const plan = await secrets().activities.disableSecrets(context({ dryRun: true }));
    expect(plan.actions.map((a) => `${a.call} ${a.resource}`)).toEqual([
      `storage.objects.insert ${snapshotUri(context(), 'secret', 'MLFLOW_DB_PASSWORD')}`,
      `secretmanager.versions.disable ${SECRET}/versions/3`,
      `secretmanager.versions.disable ${SECRET}/versions/1`,
    ]);
    expect(cloud.sandbox.calls.slice(before).filter((c) => c.method !== 'GET')).toEqual([]);
  });

  it('refuses an unlabelled secret before touching any', async () => {
    const err = await failureOf(secrets().activities.disableSecrets(context({}, demoTarget({ secrets: ['MLFLOW_DB_PASSWORD', 'DJANGO_SECRET'] }))));
    expect(err.type).toBe('ResourceMismatch');
    expect(err.message).toContain('DJANGO_SECRET');
    expect(await versionStates()).toEqual({ '1': 'ENABLED', '2': 'DISABLED', '3': 'ENABLED' });
  });

  it('3.6 records the enabled versions, disables them; undo re-enables exactly those', async () => {
    const ctx = context();
    const result = await secrets().activities.disableSecrets(ctx);
    expect(result.summary).toBe('disabled 2 version(s) of 1 secret(s)');
    expect(await versionStates()).toEqual({ '1': 'DISABLED', '2': 'DISABLED', '3': 'DISABLED' });
    const saved = JSON.parse((await cloud.objects.read(snapshotUri(ctx, 'secret', 'MLFLOW_DB_PASSWORD')))!.toString());
    expect(saved.enabledVersions.sort()).toEqual([`${SECRET}/versions/1`, `${SECRET}/versions/3`]);

    // A retry finds nothing enabled and keeps the first record.
    expect((await secrets().activities.disableSecrets(ctx)).summary).toBe('disabled 0 version(s) of 1 secret(s)');
    expect(JSON.parse((await cloud.objects.read(snapshotUri(ctx, 'secret', 'MLFLOW_DB_PASSWORD')))!.toString()).enabledVersions).toHaveLength(2);

    const undo = await secrets().activities.enableSecrets(ctx);
    expect(undo.summary).toBe('re-enabled 2 secret version(s)');
    expect(await versionStates()).toEqual({ '1': 'ENABLED', '2': 'DISABLED', '3': 'ENABLED' });
  });

  it('5.4 refuses before the closure gate, refuses a re-enabled secret, then deletes; twice is a no-op', async () => {
    const ctx = context();
    expect((await failureOf(secrets().activities.deleteSecrets(context({ gatesPassed: ['phase-0', 'phase-1', 'phase-2', 'phase-3', 'phase-4'] })))).type).toBe('GateNotPassed');
    // The previous test re-enabled versions 1 and 3.
    const err = await failureOf(secrets().activities.deleteSecrets(ctx));
    expect(err.type).toBe('PreconditionFailed');
    expect(err.message).toMatch(/re-enabled/);
    await secrets().activities.disableSecrets(ctx);

    expect(await secrets().remaining(ctx)).toEqual([SECRET, 'projects/demo-project/secrets/MLFLOW_EXTRA']);
    // The Cloud Run env values 3.1 kept for rollback go with them: no rollback is offered after 5.4.
    seedSecret(cloud.sandbox, { project: 'demo-project', id: 'mlflow-decommission-demo-env', versions: ['{}'] });
    const result = await secrets().activities.deleteSecrets(ctx);
    expect(result.summary).toBe('deleted 1 secret(s)');
    expect(result.actions.map((a) => a.resource)).toContain('projects/demo-project/secrets/mlflow-decommission-demo-env');
    expect(cloud.sandbox.state.secretManager.secrets['projects/demo-project/secrets/mlflow-decommission-demo-env']).toBeUndefined();
    expect(await secrets().remaining(ctx)).toEqual(['projects/demo-project/secrets/MLFLOW_EXTRA']);
    const again = await secrets().activities.deleteSecrets(ctx);
    expect(again.summary).toBe('deleted 0 secret(s); already gone: MLFLOW_DB_PASSWORD');
    expect(cloud.sandbox.callsTo(`^DELETE /v1/${SECRET}$`)).toHaveLength(1);
  });

  it('undo after the secret is gone fails CannotRestore', async () => {
    const err = await failureOf(secrets().activities.enableSecrets(context()));
    expect(err.type).toBe('CannotRestore');
    expect(err.message).toContain(`${SECRET}/versions/`);
  });

  it('PERMISSION_DENIED names the role; 503 stays retryable', async () => {
    const ctx = context({}, demoTarget({ secrets: ['MLFLOW_EXTRA'] }));
    cloud.sandbox.addFault({ match: 'GET /v1/projects/demo-project/secrets/MLFLOW_EXTRA$', status: 403, times: 1 });
    const denied = await failureOf(secrets().activities.disableSecrets(ctx));
    expect(denied.type).toBe('PermissionDenied');
    expect(denied.message).toContain('roles/secretmanager.admin');
    cloud.sandbox.addFault({ match: 'GET /v1/projects/demo-project/secrets/MLFLOW_EXTRA$', status: 503, times: 1 });
    const err = await secrets().activities.disableSecrets(ctx).then(() => undefined, (e: unknown) => e);
    // gax may retry UNAVAILABLE itself; if it surfaces, it must not be a non-retryable failure.
    if (err) expect(err).not.toBeInstanceOf(ApplicationFailure);
  });
});
