// Cloud Run 3.1: deletes the MLflow server after saving its spec and IAM policy (who may invoke it);
// its undo recreates it from them, Ready, with traffic pinned to revisions that died with it moved
// to the latest. Plain env values are kept in Secret Manager, not in the snapshot (env-values.ts).
import { ErrorType, fail } from '../../errors';
import type { StepContext } from '../../types';
import { assertLabels, pollUntil, readSnapshot, saveSnapshot, snapshotUri, type CloudDeps } from './common';
import { createEnvValueStore, redactEnv, restoreEnv, type SavedEnvEntry } from './env-values';
import { gcpCall, plain } from '../../adapters/gcp/calls';
import { defineStep } from '../step';
import { OUTPUT_ONLY, ROLE, type CloudRunOptions, type CloudRunServices, type Service } from './cloud-run-service';

/** google.iam.v1.Policy as getIamPolicy returns it; a binding's condition is a google.type.Expr. */
type Condition = { expression?: string | null; title?: string | null; description?: string | null; location?: string | null };
type Policy = { bindings?: Array<{ role?: string | null; members?: string[] | null; condition?: Condition | null }> | null; etag?: unknown };
const REVISION = 'TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION';
const LATEST = 'TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST';

export function createMlflowServiceSteps(deps: CloudDeps, services: CloudRunServices, opts: CloudRunOptions = {}) {
  const { run } = deps.gcp;
  const envValues = createEnvValueStore(deps);
  const { parentOf, mlflowName, getService, waitFor, waitReady, change } = services;
  const mlflowSnapshot = (ctx: StepContext) => snapshotUri(ctx, 'cloud-run', ctx.target.cloudRun.mlflowService);
  const policySnapshot = (ctx: StepContext) => snapshotUri(ctx, 'cloud-run-iam', ctx.target.cloudRun.mlflowService);

  const deleteMlflowService = defineStep({
    requiresGate: 'phase-2',
    async plan(ctx) {
      const name = mlflowName(ctx);
      if (!(await getService(name))) return [];
      return [
        { call: 'storage.objects.insert', resource: mlflowSnapshot(ctx), description: `save the full spec of ${name} for rollback` },
        { call: 'run.services.delete', resource: name, description: `delete the MLflow Cloud Run service ${ctx.target.cloudRun.mlflowService}`, destructive: true },
      ];
    },
    async run(ctx) {
      const name = mlflowName(ctx);
      const snapshot = mlflowSnapshot(ctx);
      let service = await getService(name);
      if (service?.deleteTime) {
        // An earlier attempt's delete is still running: wait for it rather than deleting again.
        await pollUntil(`deletion of ${name}`, async () => ((await getService(name)) ? undefined : true), { intervalMs: opts.pollIntervalMs });
        service = undefined;
      }
      if (!service) {
        const saved = await deps.objects.stat(snapshot);
        return {
          summary: `${name} is already gone`,
          actions: [],
          facts: { deletedAt: saved?.updated ?? new Date().toISOString(), ...(saved ? { snapshot } : {}) },
        };
      }
      assertLabels(`Cloud Run service ${name}`, service.labels, ctx);
      // Who may invoke it is the service's IAM policy, not part of its spec (google/cloud/run/v2/service.proto GetIamPolicy): save it too.
      const [policy] = await gcpCall(`reading the IAM policy of ${name}`, ROLE, () => run.getIamPolicy({ resource: name }));
      await saveSnapshot(deps.objects, policySnapshot(ctx), { bindings: plain<Policy>(policy).bindings ?? [] });
      await saveSnapshot(deps.objects, snapshot, await redacted(ctx, service));
      await waitFor(`deleting ${name}`, run.deleteService({ name }));
      return {
        summary: `deleted ${name}; its spec (env values kept in Secret Manager, not in the bucket) and IAM policy are saved at ${snapshot}`,
        actions: [
          { call: 'storage.objects.insert', resource: snapshot, description: 'saved the service spec and its IAM policy' },
          { call: 'run.services.delete', resource: name, description: 'deleted the service', destructive: true },
        ],
        facts: { deletedAt: new Date().toISOString(), snapshot },
      };
    },
  });

  const restoreMlflowService = defineStep({
    async plan(ctx) {
      const name = mlflowName(ctx);
      if (await getService(name)) return [];
      return [
        { call: 'storage.objects.get', resource: mlflowSnapshot(ctx), description: 'read the saved service spec and IAM policy' },
        { call: 'secretmanager.versions.access', resource: `${mlflowSnapshot(ctx)} (valueIn)`, description: 'read its plain env values back from Secret Manager' },
        { call: 'run.services.create', resource: name, description: `recreate ${ctx.target.cloudRun.mlflowService} from its snapshot; traffic pinned to deleted revisions goes to the latest` },
        { call: 'run.services.setIamPolicy', resource: name, description: 'put its IAM policy (invokers) back' },
      ];
    },
    async run(ctx) {
      const name = mlflowName(ctx);
      const snapshot = mlflowSnapshot(ctx);
      const cannot = (m: string): never =>
        fail(ErrorType.CannotRestore, `${name} was recreated but is not Ready: ${m}. Fix the cause (a secret deleted in 5.4? a missing image?), then retry this compensation, or skip it and deploy by hand.`);
      const actions: Array<{ call: string; resource: string; description: string }> = [];
      let notes = '';
      const existing = await getService(name);
      if (!existing) {
        const saved = await readSnapshot<Service>(deps.objects, snapshot, `Cloud Run service ${name}`);
        const { spec, droppedTags, repinned } = await createSpec(saved, name);
        await change(name, `recreating ${name}`, run.createService({ parent: parentOf(ctx), serviceId: ctx.target.cloudRun.mlflowService, service: spec }), cannot);
        actions.push({ call: 'run.services.create', resource: name, description: 'recreated the service from its snapshot' });
        if (repinned) notes += `; traffic pinned to deleted revision(s) now goes to the latest${droppedTags.length ? ` (tags ${droppedTags.join(', ')} dropped)` : ''}`;
      } else {
        // Created by an earlier attempt (or never deleted): it counts only once Ready.
        await waitReady(name, `checking ${name}`, cannot);
      }
      const saved = await deps.objects.read(policySnapshot(ctx));
      if (saved) {
        const wanted = (JSON.parse(saved.toString('utf8')) as Policy).bindings ?? [];
        const [current] = await gcpCall(`reading the IAM policy of ${name}`, ROLE, () => run.getIamPolicy({ resource: name }));
        if (JSON.stringify(normalise(plain<Policy>(current).bindings ?? [])) !== JSON.stringify(normalise(wanted))) {
          await gcpCall(`restoring the IAM policy of ${name}`, ROLE, () => run.setIamPolicy({ resource: name, policy: { bindings: wanted } }));
          actions.push({ call: 'run.services.setIamPolicy', resource: name, description: `put back ${wanted.length} IAM binding(s)` });
        }
      }
      return {
        summary: existing && !actions.length ? `${name} exists and is Ready; nothing to restore` : `recreated ${name} from ${snapshot}, Ready, with its IAM policy${notes}`,
        actions,
      };
    },
  });

  /** The snapshot as a create request: output-only fields out, env values back in, traffic to revisions that no longer exist moved to the latest. */
  async function createSpec(saved: Service, name: string): Promise<{ spec: Service; droppedTags: string[]; repinned: boolean }> {
    const spec = Object.fromEntries(Object.entries(saved).filter(([k]) => !OUTPUT_ONLY.includes(k)));
    if (spec.template) {
      // The old revision name is taken; Cloud Run names the new one.
      spec.template = { ...spec.template, revision: '' };
      const containers = (spec.template.containers ?? []) as Service[];
      const version = containers.flatMap((c) => (c.env ?? []) as SavedEnvEntry[]).find((e) => e.valueIn)?.valueIn;
      spec.template.containers = restoreEnv(containers, version ? await envValues.read(version, `Cloud Run service ${name}`) : {});
    }
    // A deleted service's revisions are deleted with it, and a REVISION target must name an existing
    // revision (google/cloud/run/v2/traffic_target.proto): its share goes to the latest revision.
    const traffic = (spec.traffic ?? []) as Service[];
    const repinned = traffic.some((t) => t.type === REVISION);
    if (repinned) {
      spec.traffic = [{ type: LATEST, percent: 100 }];
      return { spec, droppedTags: traffic.map((t) => t.tag).filter(Boolean), repinned };
    }
    return { spec, droppedTags: [], repinned };
  }

  /** A service as a snapshot may keep it: plain env values replaced by where they are kept. */
  async function redacted(ctx: StepContext, service: Service): Promise<Service> {
    if (!service.template?.containers) return service;
    const { containers, values } = redactEnv(service.template.containers as Service[]);
    if (!Object.keys(values).length) return service;
    const version = await envValues.save(ctx, values);
    const withVersion = containers.map((c) => ({ ...c, env: ((c.env ?? []) as SavedEnvEntry[]).map((e) => (e.valueIn !== undefined ? { ...e, valueIn: version } : e)) }));
    return { ...service, template: { ...service.template, containers: withVersion } };
  }

  return { deleteMlflowService, restoreMlflowService };
}

/** Bindings in a stable order, to compare two policies. */
function normalise(bindings: NonNullable<Policy['bindings']>): Array<{ role: string; members: string[] }> {
  return bindings.map((b) => ({ role: String(b.role ?? ''), members: [...(b.members ?? [])].sort() })).sort((a, b) => (a.role < b.role ? -1 : 1));
}