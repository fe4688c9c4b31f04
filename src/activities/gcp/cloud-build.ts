// 3.3: the Cloud Build trigger that deployed MLflow, found by name (the plan: "find exact name
// first"), snapshotted, deleted; rollback recreates it from the snapshot under a new id.
import type { CheckResult, StepContext } from '../../types';
import { readSnapshot, saveSnapshot, snapshotUri, type CloudDeps, type CloudKind } from './common';
import { describe, gcpCall, isNotFound, plain, rethrowTransient } from '../../adapters/gcp/calls';
import { defineStep } from '../step';

const ROLE = 'roles/cloudbuild.builds.editor';
/** Set by Cloud Build on create. */
const OUTPUT_ONLY = ['id', 'createTime', 'resourceName'];

type Trigger = Record<string, any>;

export function createCloudBuildActivities(deps: CloudDeps) {
  const { build } = deps.gcp;
  const project = (ctx: StepContext) => ctx.target.gcp.project;
  const triggerResource = (ctx: StepContext, id: string) => `projects/${project(ctx)}/locations/global/triggers/${id}`;
  const snapshotOf = (ctx: StepContext) => snapshotUri(ctx, 'cloud-build', ctx.target.buildTrigger);

  const findTrigger = async (ctx: StepContext): Promise<Trigger | undefined> => {
    const [triggers] = await gcpCall(`listing Cloud Build triggers in ${project(ctx)}`, ROLE, () => build.listBuildTriggers({ projectId: project(ctx) }, { autoPaginate: true }));
    const hit = triggers.find((t) => t.name === ctx.target.buildTrigger);
    return hit ? plain(hit) : undefined;
  };

  const deleteBuildTrigger = defineStep({
    requiresGate: 'phase-2',
    async plan(ctx) {
      const trigger = await findTrigger(ctx);
      if (!trigger) return [];
      return [
        { call: 'storage.objects.insert', resource: snapshotOf(ctx), description: `save trigger ${ctx.target.buildTrigger} for rollback` },
        { call: 'cloudbuild.triggers.delete', resource: triggerResource(ctx, trigger.id), description: `delete trigger ${ctx.target.buildTrigger}`, destructive: true },
      ];
    },
    async run(ctx) {
      const snapshot = snapshotOf(ctx);
      const trigger = await findTrigger(ctx);
      if (!trigger) return { summary: `trigger ${ctx.target.buildTrigger} is already gone`, actions: [], facts: (await deps.objects.stat(snapshot)) ? { snapshot } : {} };
      const resource = triggerResource(ctx, trigger.id);
      await saveSnapshot(deps.objects, snapshot, trigger);
      try {
        await gcpCall(`deleting ${resource}`, ROLE, () => build.deleteBuildTrigger({ projectId: project(ctx), triggerId: trigger.id }));
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
      return {
        summary: `deleted trigger ${ctx.target.buildTrigger} (${trigger.id}); saved at ${snapshot}`,
        actions: [{ call: 'cloudbuild.triggers.delete', resource, description: 'deleted the trigger', destructive: true }],
        facts: { deletedAt: new Date().toISOString(), snapshot, triggerId: trigger.id },
      };
    },
  });

  const restoreBuildTrigger = defineStep({
    async plan(ctx) {
      if (await findTrigger(ctx)) return [];
      return [{ call: 'cloudbuild.triggers.create', resource: `projects/${project(ctx)}/locations/global/triggers`, description: `recreate trigger ${ctx.target.buildTrigger} from ${snapshotOf(ctx)}` }];
    },
    async run(ctx) {
      if (await findTrigger(ctx)) return { summary: `trigger ${ctx.target.buildTrigger} exists; nothing to restore`, actions: [] };
      const saved = await readSnapshot<Trigger>(deps.objects, snapshotOf(ctx), `Cloud Build trigger ${ctx.target.buildTrigger}`);
      const spec = Object.fromEntries(Object.entries(saved).filter(([k]) => !OUTPUT_ONLY.includes(k)));
      const [created] = await gcpCall(`recreating trigger ${ctx.target.buildTrigger}`, ROLE, () => build.createBuildTrigger({ projectId: project(ctx), trigger: spec }));
      return {
        summary: `recreated trigger ${ctx.target.buildTrigger} as ${created.id}`,
        actions: [{ call: 'cloudbuild.triggers.create', resource: triggerResource(ctx, created.id ?? ''), description: 'recreated the trigger from its snapshot' }],
      };
    },
  });

  async function preflight(ctx: StepContext): Promise<CheckResult[]> {
    const name = `cloud-build: trigger ${ctx.target.buildTrigger}`;
    try {
      const trigger = await findTrigger(ctx);
      return [trigger ? { name, ok: true, detail: `found (${trigger.id})` } : { name, ok: false, detail: 'not found by name: check buildTrigger in the config (gcloud builds triggers list)' }];
    } catch (err) {
      rethrowTransient(err);
      return [{ name, ok: false, detail: (err as { type?: string }).type ? (err as Error).message : describe(err) }];
    }
  }

  async function remaining(ctx: StepContext): Promise<string[]> {
    const trigger = await findTrigger(ctx);
    return trigger ? [triggerResource(ctx, trigger.id)] : [];
  }

  return { activities: { deleteBuildTrigger, restoreBuildTrigger }, preflight, remaining } satisfies CloudKind<Record<string, unknown>>;
}

export type CloudBuildActivities = ReturnType<typeof createCloudBuildActivities>['activities'];
