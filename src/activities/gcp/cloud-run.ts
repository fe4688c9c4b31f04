// Cloud Run: 3.1 deletes the MLflow server (snapshot first, so rollback can recreate it) and 5.3
// removes the tracking URI from the app service (a new revision; the old entry is kept to put back).
import { ErrorType, fail } from '../../errors';
import type { CheckResult, StepContext } from '../../types';
import { assertLabels, hasLabels, pollUntil, readSnapshot, saveSnapshot, snapshotUri, type CloudDeps, type CloudKind } from './common';
import { describe, gcpCall, gcpGet, plain, withHeartbeats, rethrowTransient } from '../../adapters/gcp/calls';
import { defineStep } from '../step';

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
  entries: Array<{ container: string; index: number; entry: EnvEntry }>;
}

export interface CloudRunOptions {
  /** How often to poll a service that is still being deleted by an earlier attempt. */
  pollIntervalMs?: number;
}

export function createCloudRunActivities(deps: CloudDeps, opts: CloudRunOptions = {}) {
  const { run } = deps.gcp;
  const parentOf = (ctx: StepContext) => `projects/${ctx.target.gcp.project}/locations/${ctx.target.gcp.region}`;
  const serviceName = (ctx: StepContext, id: string) => `${parentOf(ctx)}/services/${id}`;
  const mlflowName = (ctx: StepContext) => serviceName(ctx, ctx.target.cloudRun.mlflowService);
  const appName = (ctx: StepContext) => serviceName(ctx, ctx.target.cloudRun.appService);
  const mlflowSnapshot = (ctx: StepContext) => snapshotUri(ctx, 'cloud-run', ctx.target.cloudRun.mlflowService);
  const envSnapshot = (ctx: StepContext) => snapshotUri(ctx, 'cloud-run-env', `${ctx.target.cloudRun.appService}.${ctx.target.cloudRun.trackingUriEnvVar}`);

  const getService = (name: string): Promise<Service | undefined> => gcpGet(`reading Cloud Run service ${name}`, ROLE, async () => plain((await run.getService({ name }))[0]));

  /** Waits for a long-running operation the client started, heartbeating; a failed operation throws. */
  const waitFor = async (what: string, started: Promise<[{ promise(): Promise<unknown> }, ...unknown[]]>) => {
    const [operation] = await gcpCall(what, ROLE, () => started);
    return withHeartbeats(what, operation.promise(), 2_000);
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
      await saveSnapshot(deps.objects, snapshot, service);
      await waitFor(`deleting ${name}`, run.deleteService({ name }));
      return {
        summary: `deleted ${name}; its spec is saved at ${snapshot}`,
        actions: [
          { call: 'storage.objects.insert', resource: snapshot, description: 'saved the service spec' },
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
        { call: 'storage.objects.get', resource: mlflowSnapshot(ctx), description: 'read the saved service spec' },
        { call: 'run.services.create', resource: name, description: `recreate ${ctx.target.cloudRun.mlflowService} from its snapshot` },
      ];
    },
    async run(ctx) {
      const name = mlflowName(ctx);
      if (await getService(name)) return { summary: `${name} exists; nothing to restore`, actions: [] };
      const snapshot = mlflowSnapshot(ctx);
      const saved = await readSnapshot<Service>(deps.objects, snapshot, `Cloud Run service ${name}`);
      const spec = Object.fromEntries(Object.entries(saved).filter(([k]) => !OUTPUT_ONLY.includes(k)));
      // The old revision name is taken; Cloud Run names the new one.
      if (spec.template) spec.template = { ...spec.template, revision: '' };
      await waitFor(`recreating ${name}`, run.createService({ parent: parentOf(ctx), serviceId: ctx.target.cloudRun.mlflowService, service: spec }));
      return {
        summary: `recreated ${name} from ${snapshot}`,
        actions: [{ call: 'run.services.create', resource: name, description: 'recreated the service from its snapshot' }],
      };
    },
  });

  const trackingEntries = (ctx: StepContext, service: Service): TrackingUriSnapshot['entries'] =>
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

  const updateService = (what: string, service: Service) => waitFor(what, run.updateService({ service: Object.fromEntries(Object.entries(service).filter(([k]) => !OUTPUT_ONLY.includes(k) || k === 'name' || k === 'etag')) }));

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
      // Already absent: a retry after the update must not overwrite the snapshot with nothing.
      if (!entries.length) return { summary: `${variable} is not set on ${name}`, actions: [] };
      const snapshot = envSnapshot(ctx);
      await saveSnapshot(deps.objects, snapshot, { service: name, variable, entries } satisfies TrackingUriSnapshot);
      const containers = (service.template.containers as Service[]).map((c) => ({ ...c, env: ((c.env ?? []) as EnvEntry[]).filter((e) => e.name !== variable) }));
      await updateService(`removing ${variable} from ${name}`, { ...service, template: { ...service.template, revision: '', containers } });
      const after = await getService(name);
      return {
        summary: `removed ${variable} from ${name} (revision ${after?.latestReadyRevision?.split('/').pop() ?? 'unknown'})`,
        actions: [{ call: 'run.services.update', resource: name, description: `removed ${variable}`, destructive: true }],
        facts: { snapshot, revision: after?.latestReadyRevision, containers: entries.length },
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
      const service = await requireApp(ctx);
      const containers = (service.template?.containers ?? []) as Service[];
      let changed = false;
      const restored = containers.map((c, index) => {
        const wanted = snapshot.entries.find((e) => (e.container ? e.container === c.name : e.index === index));
        if (!wanted) return c;
        const env = ((c.env ?? []) as EnvEntry[]).filter((e) => e.name !== snapshot.variable);
        const current = ((c.env ?? []) as EnvEntry[]).find((e) => e.name === snapshot.variable);
        if (current && JSON.stringify(trimEntry(current)) === JSON.stringify(wanted.entry)) return c;
        changed = true;
        return { ...c, env: [...env, wanted.entry] };
      });
      if (!changed) return { summary: `${snapshot.variable} is already back on ${name}`, actions: [] };
      await updateService(`restoring ${snapshot.variable} on ${name}`, { ...service, template: { ...service.template, revision: '', containers: restored } });
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

function describeFailure(err: unknown): string {
  const failure = err as { type?: string; message?: string };
  return failure.type ? failure.message ?? String(err) : describe(err);
}

export type CloudRunActivities = ReturnType<typeof createCloudRunActivities>['activities'];
