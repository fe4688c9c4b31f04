import { beforeEach, describe, expect, it } from 'vitest';
import { ageDeletedServiceAccount, iamService, seedServiceAccount } from '../../../dev/sandbox/services/iam';
import { seedBucket } from '../../../dev/sandbox/services/storage';
import { createIamActivities } from '../../../src/activities/gcp/iam';
import type { GateId, StepContext } from '../../../src/types';
import { demoTarget } from '../../support/fake-activities';
import { useSandbox } from '../../support/cloud';
import { failureOf } from '../../support/failures';

const cloud = useSandbox();
const target = demoTarget();
const email = target.serviceAccount;

let run = 0;
function context(overrides: Partial<StepContext> = {}): StepContext {
  return { migrationId: `m-${run}`, targetName: 'demo', target, dryRun: false, gatesPassed: ['phase-0', 'phase-1', 'phase-2'] as GateId[], force: false, facts: {}, ...overrides };
}
const kind = () => createIamActivities({ gcp: cloud.gcp, objects: cloud.objects });
const accounts = () => cloud.sandbox.state.iam.accounts as Record<string, any>;

beforeEach(() => {
  run++;
  cloud.sandbox.clearFaults();
  cloud.sandbox.calls.length = 0;
  seedBucket(cloud.sandbox, { name: 'demo-backups' });
  if (!cloud.sandbox.state.iam?.accounts?.[email]) seedServiceAccount(cloud.sandbox, { project: 'demo-project', email, displayName: 'MLflow server' });
});

describe('IAM activities', () => {
  it('3.5 records the uniqueId before deleting; restore undeletes by it', async () => {
    const { activities: a } = kind();
    const uniqueId = accounts()[email].uniqueId;
    const result = await a.deleteServiceAccount(context());
    expect(result.facts).toMatchObject({ uniqueId, snapshot: expect.stringMatching(/snapshots\/iam\/mlflow-server@demo-project\.iam\.gserviceaccount\.com\.json$/) });
    expect(accounts()[email]).toBeUndefined();
    const order = cloud.sandbox.calls.map((c) => c.method);
    expect(order.indexOf('POST')).toBeLessThan(order.indexOf('DELETE'));

    expect((await a.deleteServiceAccount(context())).summary).toMatch(/already gone/);
    expect(cloud.sandbox.callsTo('DELETE ')).toHaveLength(1);

    await a.restoreServiceAccount(context());
    expect(accounts()[email].uniqueId).toBe(uniqueId);
    expect(cloud.sandbox.callsTo(`POST /v1/projects/demo-project/serviceAccounts/${uniqueId}:undelete`)).toHaveLength(1);
  });

  it('restore fails with CannotRestore after the 30-day window (not with a missing permission)', async () => {
    const { activities: a } = kind();
    await a.deleteServiceAccount(context());
    ageDeletedServiceAccount(cloud.sandbox, email, 31);
    const failure = await failureOf(a.restoreServiceAccount(context()));
    // Through projects/- IAM would answer 403 for the missing account, and the step would ask for a role.
    expect(failure.type).toBe('CannotRestore');
    expect(failure.message).toMatch(/30 days.*gcloud iam service-accounts create mlflow-server/);
  });

  it('refuses before gate phase-2; dry run makes no mutating call', async () => {
    const { activities: a } = kind();
    expect((await failureOf(a.deleteServiceAccount(context({ gatesPassed: [] })))).type).toBe('GateNotPassed');
    const plan = await a.deleteServiceAccount(context({ dryRun: true, gatesPassed: [] }));
    expect(plan.actions).toContainEqual(expect.objectContaining({ call: 'iam.serviceAccounts.delete', resource: `projects/demo-project/serviceAccounts/${email}`, destructive: true }));
    expect(cloud.sandbox.calls.filter((c) => c.method !== 'GET')).toEqual([]);
  });

  it('preflight and remaining see the account; 403 is PermissionDenied', async () => {
    const k = kind();
    expect((await k.preflight(context()))[0].ok).toBe(true);
    expect(await k.remaining(context())).toEqual([`projects/demo-project/serviceAccounts/${email}`]);
    cloud.sandbox.addFault({ match: 'DELETE /v1/projects/.*/serviceAccounts/', status: 403 });
    const failure = await failureOf(k.activities.deleteServiceAccount(context()));
    expect(failure.type).toBe('PermissionDenied');
    expect(failure.message).toMatch(/roles\/iam\.serviceAccountAdmin/);
  });
});
