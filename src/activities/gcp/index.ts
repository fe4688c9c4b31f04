// The Google Cloud steps, one file per resource kind, and the checks that span them all:
// 5.1 / phase-3 gate (what Phase 3 deleted is gone) and 5.5 (nothing carrying the MLflow labels remains).
import { ErrorType, fail } from '../../errors';
import type { CheckResult, StepContext } from '../../types';
import { createBillingActivities } from './billing';
import { createCloudBuildActivities } from './cloud-build';
import type { CloudKind } from './common';
import { createCloudRunActivities } from './cloud-run';
import { createCloudSqlActivities, type CloudSqlDeps } from './cloud-sql';
import { createIamActivities } from './iam';
import { checkProjectPermissions } from './permissions';
import { createSecretsActivities } from './secrets';
import { defineCheck, defineStep } from '../step';
import { createStorageActivities } from './storage';

export function createCloudActivities(deps: CloudSqlDeps) {
  const kinds = {
    'Cloud Run': createCloudRunActivities(deps),
    'Cloud SQL': createCloudSqlActivities(deps),
    'Cloud Build': createCloudBuildActivities(deps),
    'Cloud Storage': createStorageActivities(deps),
    IAM: createIamActivities(deps),
    'Secret Manager': createSecretsActivities(deps),
    Billing: createBillingActivities(deps),
  };
  // Secrets are only disabled in Phase 3; they are deleted in 5.4, so 5.1 leaves them to 5.5.
  const phase3Kinds = ['Cloud Run', 'Cloud SQL', 'Cloud Build', 'Cloud Storage', 'IAM'] as const;

  async function leftovers(ctx: StepContext, names: readonly (keyof typeof kinds)[]): Promise<CheckResult[]> {
    return Promise.all(
      names.map(async (name) => {
        const left = await (kinds[name] as CloudKind<unknown>).remaining(ctx);
        return { name, ok: left.length === 0, detail: left.length ? `still present: ${left.join(', ')}` : 'nothing left' };
      }),
    );
  }

  function verifyStep(names: readonly (keyof typeof kinds)[], what: string) {
    return defineStep({
      async plan() {
        return names.map((n) => ({ call: `${n}.list`, resource: n, description: `list ${n} resources named in the config or carrying its labels` }));
      },
      async run(ctx) {
        const checks = await leftovers(ctx, names);
        const bad = checks.filter((c) => !c.ok);
        if (bad.length) {
          fail(ErrorType.VerificationFailed, `${what}: ${bad.map((c) => `${c.name} ${c.detail}`).join('; ')}. Delete them (or retry the step that should have), then retry.`, { checks });
        }
        return { summary: `${what}: ${checks.length} kinds checked, nothing left`, actions: [], facts: { checked: checks.map((c) => c.name) } };
      },
    });
  }

  const activities = Object.assign(
    {},
    ...Object.values(kinds).map((k) => k.activities),
  ) as UnionToIntersection<(typeof kinds)[keyof typeof kinds]['activities']>;

  return {
    activities: {
      ...activities,
      verifyResourcesGone: verifyStep(phase3Kinds, '5.1 Phase 3 resources gone'),
      verifyNothingLeft: verifyStep(Object.keys(kinds) as (keyof typeof kinds)[], '5.5 nothing labelled MLflow remains'),
      checkResourcesGone: defineCheck((ctx) => leftovers(ctx, phase3Kinds)),
    },
    preflight: async (ctx: StepContext) => (await Promise.all([checkProjectPermissions(deps.gcp, ctx), ...Object.values(kinds).map((k) => k.preflight(ctx))])).flat(),
  };
}

type UnionToIntersection<U> = (U extends unknown ? (k: U) => void : never) extends (k: infer I) => void ? I : never;
