// Cloud Run: 3.1 deletes the MLflow server (snapshot first, so rollback can recreate it) and 5.3
// removes the tracking URI from the app service (a new revision; the old entry is kept to put back).
// Snapshots keep env names and secret references only; plain values go to Secret Manager
// (env-values.ts). A service counts as restored or changed only once its terminal condition is Ready.
//
// 3.1 and its undo are in cloud-run-mlflow.ts, 5.3 and its undo in cloud-run-tracking-uri.ts, what
// they share in cloud-run-service.ts.
import type { CheckResult, StepContext } from '../../types';
import { hasLabels, type CloudDeps, type CloudKind } from './common';
import { describe, gcpCall, plain, rethrowTransient } from '../../adapters/gcp/calls';
import { createMlflowServiceSteps } from './cloud-run-mlflow';
import { createCloudRunServices, ROLE, type CloudRunOptions, type Service } from './cloud-run-service';
import { createTrackingUriSteps } from './cloud-run-tracking-uri';

export type { CloudRunOptions } from './cloud-run-service';

export function createCloudRunActivities(deps: CloudDeps, opts: CloudRunOptions = {}) {
  const { run } = deps.gcp;
  const services = createCloudRunServices(deps, opts);
  const { parentOf, mlflowName, appName, getService } = services;
  const { deleteMlflowService, restoreMlflowService } = createMlflowServiceSteps(deps, services, opts);
  const { removeTrackingUri, restoreTrackingUri } = createTrackingUriSteps(deps, services);

  async function preflight(ctx: StepContext): Promise<CheckResult[]> {
    const checks: CheckResult[] = [];
    for (const [label, name, mustCarryLabels] of [
      ['MLflow service', mlflowName(ctx), true],
      ['app service', appName(ctx), false],
    ] as const) {
      const check = `cloud-run: ${label} ${name}`;
      try {
        const service = await getService(name);
        if (!service) checks.push({ name: check, ok: false, detail: `not found: check cloudRun in the config and gcp.region` });
        else if (mustCarryLabels && !hasLabels(service.labels, ctx)) checks.push({ name: check, ok: false, detail: `readable but missing the labels ${JSON.stringify(ctx.target.labels)}: add them or fix the name` });
        else checks.push({ name: check, ok: true, detail: mustCarryLabels ? 'readable and labelled' : 'readable' });
      } catch (err) {
        rethrowTransient(err);
        checks.push({ name: check, ok: false, detail: describeFailure(err) });
      }
    }
    return checks;
  }

  async function remaining(ctx: StepContext): Promise<string[]> {
    const [services] = await gcpCall(`listing Cloud Run services in ${parentOf(ctx)}`, ROLE, () => run.listServices({ parent: parentOf(ctx) }, { autoPaginate: true }));
    return services
      .map((s) => plain<Service>(s))
      .filter((s) => s.name === mlflowName(ctx) || hasLabels(s.labels, ctx))
      .map((s) => s.name as string);
  }

  return {
    activities: { deleteMlflowService, restoreMlflowService, removeTrackingUri, restoreTrackingUri },
    preflight,
    remaining,
  } satisfies CloudKind<Record<string, unknown>>;
}


function describeFailure(err: unknown): string {
  const failure = err as { type?: string; message?: string };
  return failure.type ? failure.message ?? String(err) : describe(err);
}

export type CloudRunActivities = ReturnType<typeof createCloudRunActivities>['activities'];