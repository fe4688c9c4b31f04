// Cloud Run: 3.1 deletes the MLflow server (snapshot first, so rollback can recreate it) and 5.3
// removes the tracking URI from the app service (a new revision; the old entry is kept to put back).
// Snapshots keep env names and secret references only; plain values go to Secret Manager
// (env-values.ts). A service counts as restored or changed only once its terminal condition is Ready.
import { ErrorType, fail } from '../errors';
import type { CheckResult, StepContext } from '../types';
import { assertLabels, hasLabels, pollUntil, readSnapshot, saveSnapshot, snapshotUri, type CloudDeps, type CloudKind } from './cloud-common';
import { createEnvValueStore, redactEnv, restoreEnv, type SavedEnvEntry } from './env-values';
import { describe, gcpCall, gcpGet, plain, withHeartbeats, rethrowTransient } from './gcp-calls';
import { defineStep } from './step';

const ROLE = 'roles/run.admin';

/** Set by Cloud Run; a create that sends them back is refused or ignored, so restore strips them. */
const OUTPUT_ONLY = [
  'name',
  'uid',
  'generation',
  'createTime',
  'updateTime',
  'deleteTime',
  'expireTime',
  'creator',
  'lastModifier',
  'observedGeneration',
  'terminalCondition',
  'conditions',
  'latestReadyRevision',
  'latestCreatedRevision',
  'trafficStatuses',
  'uri',
  'urls',
  'reconciling',
  'etag',
  'satisfiesPzs',
  'threatDetectionEnabled',
];

type Service = Record<string, any>;
interface EnvEntry {
  name: string;
  value?: string;
  valueSource?: unknown;
}
interface TrackingUriSnapshot {
  service: string;
  variable: string;
  /** One entry per container that had the variable; the container is found again by name, else by position. */
  entries: Array<{ container: string; index: number; entry: SavedEnvEntry }>;
}
type Policy = { bindings?: Array<{ role?: string | null; members?: string[] | null; condition?: unknown }> | null; etag?: unknown };

const READY = 'CONDITION_SUCCEEDED';
const FAILED = 'CONDITION_FAILED';
/** Condition.state over REST may arrive as a name or as its number (google/cloud/run/v2/condition.proto). */
const conditionState = (c: { state?: string | number } | undefined) => (typeof c?.state === 'number' ? ['STATE_UNSPECIFIED', 'CONDITION_PENDING', 'CONDITION_RECONCILING', FAILED, READY][c.state] : c?.state);
const REVISION = 'TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION';
const LATEST = 'TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST';

export interface CloudRunOptions {
  /** How often to poll a service that is still being deleted by an earlier attempt. */
  pollIntervalMs?: number;
}

export function createCloudRunActivities(deps: CloudDeps, opts: CloudRunOptions = {}) {
  const { run } = deps.gcp;
  const envValues = createEnvValueStore(deps);
  const parentOf = (ctx: StepContext) => `projects/${ctx.target.gcp.project}/locations/${ctx.target.gcp.region}`;
  const serviceName = (ctx: StepContext, id: string) => `${parentOf(ctx)}/services/${id}`;
  const mlflowName = (ctx: StepContext) => serviceName(ctx, ctx.target.cloudRun.mlflowService);
  const appName = (ctx: StepContext) => serviceName(ctx, ctx.target.cloudRun.appService);
  const mlflowSnapshot = (ctx: StepContext) => snapshotUri(ctx, 'cloud-run', ctx.target.cloudRun.mlflowService);
  const envSnapshot = (ctx: StepContext) => snapshotUri(ctx, 'cloud-run-env', `${ctx.target.cloudRun.appService}.${ctx.target.cloudRun.trackingUriEnvVar}`);
  const policySnapshot = (ctx: StepContext) => snapshotUri(ctx, 'cloud-run-iam', ctx.target.cloudRun.mlflowService);

  const getService = (name: string): Promise<Service | undefined> => gcpGet(`reading Cloud Run service ${name}`, ROLE, async () => plain((await run.getService({ name }))[0]));

  /** Waits for a long-running operation the client started, heartbeating; a failed operation throws. */
  const waitFor = async (what: string, started: Promise<[{ promise(): Promise<unknown> }, ...unknown[]]>) => {
    const [operation] = await gcpCall(what, ROLE, () => started);
    return withHeartbeats(what, operation.promise(), 2_000);
  };

  /**
   * Waits until the service's terminal condition is Ready for its latest revision; a failed
   * condition (a revision that cannot start, e.g. a missing secret) fails with its message.
   */
  const waitReady = async (name: string, what: string, onFailed: (message: string) => never): Promise<Service> =>
    pollUntil(
      `${what}: ${name} becoming Ready`,
      async () => {
        const s = await getService(name);
        if (!s) throw new Error(`${name} disappeared while ${what}; the activity retries`);
        const state = conditionState(s.terminalCondition);
        if (state === FAILED) onFailed(s.terminalCondition?.message ?? 'its terminal condition failed');
        if (state === READY && !s.reconciling && (!s.latestCreatedRevision || s.latestReadyRevision === s.latestCreatedRevision)) return s;
        return undefined;
      },
      { intervalMs: opts.pollIntervalMs },
    );

  /** Runs a create or update; a failed operation is judged by the service's condition, which says why. */
  const change = async (name: string, what: string, started: Promise<[{ promise(): Promise<unknown> }, ...unknown[]]>, onFailed: (message: string) => never): Promise<Service> => {
    try {
      await waitFor(what, started);
    } catch (err) {
      if ((err as { type?: string }).type) throw err;
      if (!(await getService(name))) throw err;
    }
    return waitReady(name, what, onFailed);
  };

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
      await waitFor(`deleting ${name}`, run.deleteService({ name }) as never);
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
        await change(name, `recreating ${name}`, run.createService({ parent: parentOf(ctx), serviceId: ctx.target.cloudRun.mlflowService, service: spec }) as never, cannot);
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
          await gcpCall(`restoring the IAM policy of ${name}`, ROLE, () => run.setIamPolicy({ resource: name, policy: { bindings: wanted as never } }));
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

  const trackingEntries = (ctx: StepContext, service: Service): Array<{ container: string; index: number; entry: EnvEntry }> =>
    ((service.template?.containers ?? []) as Service[]).flatMap((c, index) => {
      const entry = ((c.env ?? []) as EnvEntry[]).find((e) => e.name === ctx.target.cloudRun.trackingUriEnvVar);
      return entry ? [{ container: c.name ?? '', index, entry: trimEntry(entry) }] : [];
    });

  const requireApp = async (ctx: StepContext): Promise<Service> => {
    const name = appName(ctx);
    const service = await getService(name);
    if (!service) fail(ErrorType.ResourceMismatch, `the app service ${name} was not found: check cloudRun.appService and gcp.region in the config, then retry.`);
    return service;
  };

  const updateStarted = (service: Service) => run.updateService({ service: Object.fromEntries(Object.entries(service).filter(([k]) => !OUTPUT_ONLY.includes(k) || k === 'name' || k === 'etag')) }) as never;

  const removeTrackingUri = defineStep({
    requiresGate: 'phase-4',
    async plan(ctx) {
      const service = await requireApp(ctx);
      if (!trackingEntries(ctx, service).length) return [];
      return [
        { call: 'storage.objects.insert', resource: envSnapshot(ctx), description: `save the ${ctx.target.cloudRun.trackingUriEnvVar} entry for rollback` },
        { call: 'run.services.update', resource: appName(ctx), description: `remove ${ctx.target.cloudRun.trackingUriEnvVar} from every container (a new revision)`, destructive: true },
      ];
    },
    async run(ctx) {
      const name = appName(ctx);
      const variable = ctx.target.cloudRun.trackingUriEnvVar;
      const service = await requireApp(ctx);
      const entries = trackingEntries(ctx, service);
      const notReady = (m: string): never =>
        fail(ErrorType.PreconditionFailed, `the new revision of ${name} without ${variable} is not Ready: ${m}. The previous revision keeps serving; fix the cause, then retry 5.3.`);
      // Already absent: a retry after the update must not overwrite the snapshot with nothing, and
      // the change counts only once its revision is Ready.
      if (!entries.length) {
        const after = await waitReady(name, `removing ${variable}`, notReady);
        return { summary: `${variable} is not set on ${name} (revision ${after.latestReadyRevision?.split('/').pop() ?? 'unknown'} Ready)`, actions: [] };
      }
      const snapshot = envSnapshot(ctx);
      const plainValues = Object.fromEntries(entries.filter((e) => e.entry.value !== undefined).map((e) => [e.container ? `name:${e.container}` : `index:${e.index}`, { [variable]: e.entry.value! }]));
      const version = Object.keys(plainValues).length ? await envValues.save(ctx, plainValues) : undefined;
      const saved = entries.map((e) => ({ ...e, entry: e.entry.valueSource ? { name: e.entry.name, valueSource: e.entry.valueSource } : { name: e.entry.name, valueIn: version } }));
      await saveSnapshot(deps.objects, snapshot, { service: name, variable, entries: saved } satisfies TrackingUriSnapshot);
      const containers = (service.template.containers as Service[]).map((c) => ({ ...c, env: ((c.env ?? []) as EnvEntry[]).filter((e) => e.name !== variable) }));
      const after = await change(name, `removing ${variable} from ${name}`, updateStarted({ ...service, template: { ...service.template, revision: '', containers } }), notReady);
      return {
        summary: `removed ${variable} from ${name} (revision ${after.latestReadyRevision?.split('/').pop() ?? 'unknown'} Ready)`,
        actions: [{ call: 'run.services.update', resource: name, description: `removed ${variable}`, destructive: true }],
        facts: { snapshot, revision: after.latestReadyRevision, containers: entries.length },
      };
    },
  });

  const restoreTrackingUri = defineStep({
    async plan(ctx) {
      return [
        { call: 'storage.objects.get', resource: envSnapshot(ctx), description: `read the saved ${ctx.target.cloudRun.trackingUriEnvVar} entry` },
        { call: 'run.services.update', resource: appName(ctx), description: `put ${ctx.target.cloudRun.trackingUriEnvVar} back as it was (a new revision)` },
      ];
    },
    async run(ctx) {
      const name = appName(ctx);
      const saved = await deps.objects.read(envSnapshot(ctx));
      // No snapshot: 5.3 never removed anything, so there is nothing to put back.
      if (!saved) return { summary: `no saved ${ctx.target.cloudRun.trackingUriEnvVar} entry for ${name}; nothing to restore`, actions: [] };
      const snapshot = JSON.parse(saved.toString('utf8')) as TrackingUriSnapshot;
      const version = snapshot.entries.find((e) => e.entry.valueIn)?.entry.valueIn;
      const values = version ? await envValues.read(version, `${snapshot.variable} on ${name}`) : {};
      // Older snapshots kept the value itself; newer ones say where it is kept.
      const entryOf = (e: TrackingUriSnapshot['entries'][number]): EnvEntry =>
        e.entry.valueSource ? { name: e.entry.name, valueSource: e.entry.valueSource } : { name: e.entry.name, value: (e.entry as EnvEntry).value ?? values[e.container ? `name:${e.container}` : `index:${e.index}`]?.[snapshot.variable] ?? '' };
      const service = await requireApp(ctx);
      const containers = (service.template?.containers ?? []) as Service[];
      let changed = false;
      const restored = containers.map((c, index) => {
        const wanted = snapshot.entries.find((e) => (e.container ? e.container === c.name : e.index === index));
        if (!wanted) return c;
        const env = ((c.env ?? []) as EnvEntry[]).filter((e) => e.name !== snapshot.variable);
        const current = ((c.env ?? []) as EnvEntry[]).find((e) => e.name === snapshot.variable);
        if (current && JSON.stringify(trimEntry(current)) === JSON.stringify(entryOf(wanted))) return c;
        changed = true;
        return { ...c, env: [...env, entryOf(wanted)] };
      });
      const cannot = (m: string): never => fail(ErrorType.CannotRestore, `${name} with ${snapshot.variable} back is not Ready: ${m}. Fix the cause, then retry this compensation.`);
      if (!changed) {
        await waitReady(name, `restoring ${snapshot.variable}`, cannot);
        return { summary: `${snapshot.variable} is already back on ${name}`, actions: [] };
      }
      await change(name, `restoring ${snapshot.variable} on ${name}`, updateStarted({ ...service, template: { ...service.template, revision: '', containers: restored } }), cannot);
      return {
        summary: `put ${snapshot.variable} back on ${name}`,
        actions: [{ call: 'run.services.update', resource: name, description: `restored ${snapshot.variable}` }],
      };
    },
  });

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

/** An env entry as the API takes it back: its name and exactly one of value or valueSource. */
function trimEntry(e: EnvEntry): EnvEntry {
  return e.valueSource ? { name: e.name, valueSource: e.valueSource } : { name: e.name, value: e.value ?? '' };
}

/** Bindings in a stable order, to compare two policies. */
function normalise(bindings: NonNullable<Policy['bindings']>): Array<{ role: string; members: string[] }> {
  return bindings.map((b) => ({ role: String(b.role ?? ''), members: [...(b.members ?? [])].sort() })).sort((a, b) => (a.role < b.role ? -1 : 1));
}

function describeFailure(err: unknown): string {
  const failure = err as { type?: string; message?: string };
  return failure.type ? failure.message ?? String(err) : describe(err);
}

export type CloudRunActivities = ReturnType<typeof createCloudRunActivities>['activities'];
