import { type ApplicationFailure } from '@temporalio/common';
import { beforeEach, describe, expect, it } from 'vitest';
import { cloudBuildService, seedBuildTrigger } from '../../../dev/sandbox/services/cloud-build';
import { seedBucket } from '../../../dev/sandbox/services/storage';
import { createCloudBuildActivities } from '../../../src/activities/gcp/cloud-build';
import type { GateId, StepContext } from '../../../src/types';
import { demoTarget } from '../../support/fake-activities';
import { useSandbox } from '../../support/cloud';

const cloud = useSandbox();
const target = demoTarget();

let run = 0;
function context(overrides: Partial<StepContext> = {}): StepContext {
  return { migrationId: `m-${run}`, targetName: 'demo', target, dryRun: false, gatesPassed: ['phase-0', 'phase-1', 'phase-2'] as GateId[], force: false, facts: {}, ...overrides };
}
const kind = () => createCloudBuildActivities({ gcp: cloud.gcp, objects: cloud.objects });
const triggers = () => Object.values((cloud.sandbox.state.cloudBuild?.triggers ?? {}) as Record<string, any>);

beforeEach(() => {
  run++;
  cloud.sandbox.clearFaults();
  cloud.sandbox.calls.length = 0;
  seedBucket(cloud.sandbox, { name: 'demo-backups' });
  if (!triggers().some((t) => t.name === 'mlflow-server')) seedBuildTrigger(cloud.sandbox, { project: 'demo-project', name: 'mlflow-server' });
  if (!triggers().some((t) => t.name === 'django-app')) seedBuildTrigger(cloud.sandbox, { project: 'demo-project', name: 'django-app' });
});

describe('Cloud Build activities', () => {
  it('3.3 finds the trigger by name, snapshots and deletes it; restore recreates the same spec', async () => {
    const { activities: a } = kind();
    const before = structuredClone(triggers().find((t) => t.name === 'mlflow-server'));
    const result = await a.deleteBuildTrigger(context());
    expect(result.facts).toMatchObject({ triggerId: before.id });
    expect(triggers().map((t) => t.name)).toEqual(['django-app']);
    expect(cloud.sandbox.callsTo(`DELETE /v1/projects/demo-project/triggers/${before.id}$`)).toHaveLength(1);

    expect((await a.deleteBuildTrigger(context())).summary).toMatch(/already gone/);
    expect(cloud.sandbox.callsTo('DELETE ')).toHaveLength(1);

    await a.restoreBuildTrigger(context());
    const after = triggers().find((t) => t.name === 'mlflow-server');
    expect(after.id).not.toBe(before.id);
    const { id: _a, createTime: _b, resourceName: _c, ...spec } = before;
    expect(after).toMatchObject(spec);
  });

  it('refuses before gate phase-2; dry run makes no mutating call', async () => {
    const { activities: a } = kind();
    const err = await a.deleteBuildTrigger(context({ gatesPassed: [] })).catch((e: unknown) => e);
    expect((err as ApplicationFailure).type).toBe('GateNotPassed');
    const plan = await a.deleteBuildTrigger(context({ dryRun: true, gatesPassed: [] }));
    expect(plan.actions).toContainEqual(expect.objectContaining({ call: 'cloudbuild.triggers.delete', destructive: true }));
    expect(cloud.sandbox.calls.filter((c) => c.method !== 'GET')).toEqual([]);
  });

  it('preflight and remaining find it by name; 403 is PermissionDenied', async () => {
    const k = kind();
    expect((await k.preflight(context()))[0].ok).toBe(true);
    expect(await k.remaining(context())).toEqual([expect.stringMatching(/^projects\/demo-project\/locations\/global\/triggers\//)]);
    cloud.sandbox.addFault({ match: 'GET /v1/projects/demo-project/triggers$', status: 403 });
    const err = (await k.activities.deleteBuildTrigger(context()).catch((e: unknown) => e)) as ApplicationFailure;
    expect(err.type).toBe('PermissionDenied');
    expect(err.nonRetryable).toBe(true);
    expect(err.message).toMatch(/roles\/cloudbuild\.builds\.editor/);
  });
});
