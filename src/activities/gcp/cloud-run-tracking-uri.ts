// Cloud Run 5.3: removes the tracking URI from the app service (a new revision; the old entry is
// saved to put back, its plain value in Secret Manager), and its undo puts it back. A change counts
// only once the new revision is Ready.
import { ErrorType, fail } from '../../errors';
import type { StepContext } from '../../types';
import { saveSnapshot, snapshotUri, type CloudDeps } from './common';
import { createEnvValueStore, type SavedEnvEntry } from './env-values';
import { defineStep } from '../step';
import type { CloudRunServices, EnvEntry, Service } from './cloud-run-service';

interface TrackingUriSnapshot {
  service: string;
  variable: string;
  /** One entry per container that had the variable; the container is found again by name, else by position. */
  entries: Array<{ container: string; index: number; entry: SavedEnvEntry }>;
}

export function createTrackingUriSteps(deps: CloudDeps, services: CloudRunServices) {
  const envValues = createEnvValueStore(deps);
  const { appName, getService, waitReady, change, updateStarted } = services;
  const envSnapshot = (ctx: StepContext) => snapshotUri(ctx, 'cloud-run-env', `${ctx.target.cloudRun.appService}.${ctx.target.cloudRun.trackingUriEnvVar}`);

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

  return { removeTrackingUri, restoreTrackingUri };
}

/** An env entry as the API takes it back: its name and exactly one of value or valueSource. */
function trimEntry(e: EnvEntry): EnvEntry {
  return e.valueSource ? { name: e.name, valueSource: e.valueSource } : { name: e.name, value: e.value ?? '' };
}