// Cloud SQL: 0.1 backs the MLflow database up twice (an on-demand backup run and a gzip SQL export
// to the backup bucket), the gate checks the export, 3.2 deletes the instance only while that
// export exists, and rollback recreates the instance and imports the export.
//
// Cloud SQL operations are not google.longrunning ones: each call returns an Operation that is
// polled with SqlOperationsService.get until DONE, and a DONE operation may carry an error.
import { ErrorType, fail } from '../../errors';
import type { CheckResult, PlannedAction, StepContext } from '../../types';
import { assertLabels, hasLabels, migrationUri, pollUntil, readSnapshot, saveSnapshot, snapshotUri, type CloudDeps, type CloudKind } from './common';
import { describe, gcpCall, gcpGet, plain, rethrowTransient } from '../../adapters/gcp/calls';
import { activityContext } from '../heartbeat';
import { defineCheck, defineStep } from '../step';

const ROLE = 'roles/cloudsql.admin';
/** How long the final backup taken on delete is kept (the API allows 1–365 days). */
const FINAL_BACKUP_TTL_DAYS = 30;

type Instance = Record<string, any>;
interface SqlOperation {
  name?: string;
  status?: string;
  error?: { errors?: Array<{ code?: string; message?: string }> } | null;
  backupContext?: { backupId?: string | number } | null;
}

export interface CloudSqlOptions {
  /** A fixed operation polling interval (tests); by default polling backs off from 250 ms to 10 s. */
  pollIntervalMs?: number;
}

/** Sleeps; in an activity, a cancellation ends the sleep. */
async function sleep(ms: number): Promise<void> {
  const ctx = activityContext();
  if (ctx) await ctx.sleep(ms);
  else await new Promise((r) => setTimeout(r, ms));
}

export function exportUriFor(ctx: StepContext): string {
  const fromFacts = (ctx.facts['0.1'] as { exportUri?: string } | undefined)?.exportUri;
  return fromFacts ?? migrationUri(ctx, `sql/${ctx.target.cloudSql.database}.sql.gz`);
}

export function createCloudSqlActivities(deps: CloudDeps, opts: CloudSqlOptions = {}) {
  const { sqlInstances, sqlOperations, sqlBackupRuns } = deps.gcp;
  const project = (ctx: StepContext) => ctx.target.gcp.project;
  const instanceId = (ctx: StepContext) => ctx.target.cloudSql.instance;
  const resource = (ctx: StepContext) => `projects/${project(ctx)}/instances/${instanceId(ctx)}`;
  const snapshotOf = (ctx: StepContext) => snapshotUri(ctx, 'cloud-sql', instanceId(ctx));
  const restoreMarker = (ctx: StepContext) => snapshotUri(ctx, 'cloud-sql-restored', instanceId(ctx));

  const getInstance = (ctx: StepContext): Promise<Instance | undefined> =>
    gcpGet(`reading Cloud SQL instance ${resource(ctx)}`, ROLE, async () => plain((await sqlInstances.get({ project: project(ctx), instance: instanceId(ctx) }))[0]));

  /** Starts an operation and polls it to DONE; a failed operation fails the step with `onError`. */
  const runOperation = async (ctx: StepContext, what: string, start: () => Promise<unknown>, onError: (message: string) => never): Promise<SqlOperation> => {
    const [started] = (await gcpCall(what, ROLE, start)) as [SqlOperation];
    const name = started.name!;
    // Cloud SQL operations take seconds (patch) to many minutes (export): poll soon, then back off.
    let interval = opts.pollIntervalMs ?? 250;
    const done = await pollUntil(
      what,
      async () => {
        const [op] = (await gcpCall(`polling ${what}`, ROLE, () => sqlOperations.get({ project: project(ctx), operation: name }))) as unknown as [SqlOperation];
        if (op.status === 'DONE') return op;
        if (!opts.pollIntervalMs) interval = Math.min(interval * 2, 10_000);
        await sleep(interval);
        return undefined;
      },
      { intervalMs: 0 },
    );
    const errors = done.error?.errors ?? [];
    if (errors.length) onError(`operation ${name} failed: ${errors.map((e) => `${e.code}: ${e.message}`).join('; ')}`);
    return done;
  };

  const exportVerified = async (uri: string) => {
    const info = await deps.objects.stat(uri);
    return info && info.size > 0 ? info : undefined;
  };

  const backupDescription = (ctx: StepContext) => `mlflow-decommission ${ctx.migrationId}: before migration`;

  const backupDatabase = defineStep({
    async plan(ctx) {
      const actions: PlannedAction[] = [
        { call: 'sql.backupRuns.insert', resource: resource(ctx), description: `on-demand backup of ${instanceId(ctx)}` },
      ];
      const uri = migrationUri(ctx, `sql/${ctx.target.cloudSql.database}.sql.gz`);
      if (!(await exportVerified(uri))) actions.push({ call: 'sql.instances.export', resource: resource(ctx), description: `export database ${ctx.target.cloudSql.database} as gzip SQL to ${uri}` });
      return actions;
    },
    async run(ctx) {
      const uri = migrationUri(ctx, `sql/${ctx.target.cloudSql.database}.sql.gz`);
      const instance = await getInstance(ctx);
      if (!instance) fail(ErrorType.PreconditionFailed, `Cloud SQL instance ${resource(ctx)} not found: check cloudSql.instance in the config, then retry.`);
      const actions: PlannedAction[] = [];

      // A retry reuses this migration's backup run rather than taking another.
      const [runs] = await gcpCall(`listing backup runs of ${resource(ctx)}`, ROLE, () => sqlBackupRuns.list({ project: project(ctx), instance: instanceId(ctx) }));
      const existing = (plain<{ items?: Instance[] }>(runs).items ?? []).find((r) => r.description === backupDescription(ctx) && r.status === 'SUCCESSFUL');
      let backupRunId: string;
      if (existing) backupRunId = String(existing.id);
      else {
        const op = await runOperation(
          ctx,
          `backup run of ${resource(ctx)}`,
          () => sqlBackupRuns.insert({ project: project(ctx), instance: instanceId(ctx), body: { description: backupDescription(ctx) } }),
          (m) => fail(ErrorType.PreconditionFailed, `the on-demand backup of ${resource(ctx)} failed (${m}): check the instance in the console, then retry step 0.1.`),
        );
        backupRunId = String(op.backupContext?.backupId ?? '');
        actions.push({ call: 'sql.backupRuns.insert', resource: resource(ctx), description: `backup run ${backupRunId}` });
      }

      // Cloud SQL runs one operation per instance at a time, so the export follows the backup.
      if (!(await exportVerified(uri))) {
        await runOperation(
          ctx,
          `export of ${ctx.target.cloudSql.database} to ${uri}`,
          () =>
            sqlInstances.export({
              project: project(ctx),
              instance: instanceId(ctx),
              body: { exportContext: { kind: 'sql#exportContext', fileType: 'SQL', uri, databases: [ctx.target.cloudSql.database] } },
            }),
          (m) =>
            fail(
              ErrorType.PreconditionFailed,
              `the SQL export of ${resource(ctx)} to ${uri} failed (${m}): grant the instance's service account roles/storage.objectAdmin on gs://${ctx.target.buckets.backup} and check the database name, then retry step 0.1.`,
            ),
        );
        actions.push({ call: 'sql.instances.export', resource: resource(ctx), description: `exported ${ctx.target.cloudSql.database} to ${uri}` });
      }
      const info = await exportVerified(uri);
      if (!info) fail(ErrorType.VerificationFailed, `the export ${uri} is missing or empty after the export finished: retry step 0.1.`);
      return {
        summary: `backup run ${backupRunId} taken; ${ctx.target.cloudSql.database} exported to ${uri} (${info.size} bytes)`,
        actions,
        facts: { exportUri: uri, exportBytes: info.size, backupRunId },
      };
    },
  });

  const checkExportVerified = defineCheck(async (ctx) => {
    const uri = exportUriFor(ctx);
    const info = await deps.objects.stat(uri);
    return [
      {
        name: 'SQL export verified',
        ok: !!info && info.size > 0,
        detail: !info ? `${uri} is missing: run step 0.1 again` : info.size > 0 ? `${uri} (${info.size} bytes)` : `${uri} is empty: run step 0.1 again`,
      },
    ];
  });

  const protectionOn = (i: Instance | undefined) => {
    const v = i?.settings?.deletionProtectionEnabled;
    return v === true || v?.value === true;
  };

  const deleteMlflowDatabase = defineStep({
    requiresGate: 'phase-2',
    async plan(ctx) {
      const instance = await getInstance(ctx);
      if (!instance) return [];
      return [
        { call: 'storage.objects.insert', resource: snapshotOf(ctx), description: `save the settings of ${instanceId(ctx)} for rollback` },
        ...(protectionOn(instance) ? [{ call: 'sql.instances.patch', resource: resource(ctx), description: 'turn deletion protection off', destructive: true }] : []),
        { call: 'sql.instances.delete', resource: resource(ctx), description: `delete the instance (a final backup is kept ${FINAL_BACKUP_TTL_DAYS} days; deleting an instance deletes its other backups)`, destructive: true },
      ];
    },
    async run(ctx) {
      const instance = await getInstance(ctx);
      if (!instance) return { summary: `${resource(ctx)} is already gone`, actions: [], facts: { snapshot: snapshotOf(ctx) } };
      const uri = exportUriFor(ctx);
      const info = await exportVerified(uri);
      // The export is the way back once the instance (and with it every backup run) is gone.
      if (!info) fail(ErrorType.PreconditionFailed, `export ${uri} is missing or empty, so ${resource(ctx)} is not deleted: run step 0.1 again or approve skip.`);
      assertLabels(`Cloud SQL instance ${resource(ctx)}`, instance.settings?.userLabels, ctx);

      // The first snapshot wins: a retry after protection was turned off must not record it as off.
      const snapshot = snapshotOf(ctx);
      if (!(await deps.objects.stat(snapshot))) await saveSnapshot(deps.objects, snapshot, instance);
      const actions: PlannedAction[] = [];
      const wasProtected = protectionOn(instance) || protectionOn(await readSnapshot<Instance>(deps.objects, snapshot, `Cloud SQL instance ${resource(ctx)}`));
      if (protectionOn(instance)) {
        await runOperation(
          ctx,
          `turning deletion protection off on ${resource(ctx)}`,
          () => sqlInstances.patch({ project: project(ctx), instance: instanceId(ctx), body: { settings: { deletionProtectionEnabled: { value: false } } } }),
          (m) => fail(ErrorType.PreconditionFailed, `could not turn deletion protection off on ${resource(ctx)} (${m}): turn it off in the console, then retry.`),
        );
        actions.push({ call: 'sql.instances.patch', resource: resource(ctx), description: 'turned deletion protection off', destructive: true });
      }
      await runOperation(
        ctx,
        `deleting ${resource(ctx)}`,
        () =>
          sqlInstances.delete({
            project: project(ctx),
            instance: instanceId(ctx),
            enableFinalBackup: true,
            finalBackupTtlDays: FINAL_BACKUP_TTL_DAYS,
            finalBackupDescription: `mlflow-decommission ${ctx.migrationId}: final backup`,
          }),
        (m) => fail(ErrorType.PreconditionFailed, `deleting ${resource(ctx)} failed (${m}): check the instance in the console, then retry.`),
      );
      actions.push({ call: 'sql.instances.delete', resource: resource(ctx), description: `deleted, final backup kept ${FINAL_BACKUP_TTL_DAYS} days`, destructive: true });
      return {
        summary: `deleted ${resource(ctx)}${wasProtected ? ' (deletion protection turned off first)' : ''}; settings saved at ${snapshot}, data at ${uri}`,
        actions,
        facts: { deletedAt: new Date().toISOString(), snapshot, exportUri: uri, deletionProtectionDisabled: wasProtected, finalBackupTtlDays: FINAL_BACKUP_TTL_DAYS },
      };
    },
  });

  /** What of a snapshot's settings a new instance takes: the shape, not the identity. */
  const SETTINGS = ['tier', 'userLabels', 'availabilityType', 'dataDiskSizeGb', 'dataDiskType', 'activationPolicy', 'backupConfiguration', 'databaseFlags', 'edition', 'deletionProtectionEnabled'];

  const restoreMlflowDatabase = defineStep({
    async plan(ctx) {
      const instance = await getInstance(ctx);
      return [
        ...(instance
          ? []
          : [
              { call: 'sql.instances.insert', resource: resource(ctx), description: `recreate ${instanceId(ctx)} from ${snapshotOf(ctx)}` },
              { call: 'sql.databases.insert', resource: `${resource(ctx)}/databases/${ctx.target.cloudSql.database}`, description: 'create the database to import into' },
            ]),
        { call: 'sql.instances.import', resource: resource(ctx), description: `import ${exportUriFor(ctx)} into ${ctx.target.cloudSql.database}` },
      ];
    },
    async run(ctx) {
      const uri = exportUriFor(ctx);
      const actions: PlannedAction[] = [];
      let instance = await getInstance(ctx);
      const marker = await deps.objects.read(restoreMarker(ctx));
      if (instance && marker && JSON.stringify(JSON.parse(marker.toString('utf8')).createTime) === JSON.stringify(instance.createTime)) {
        return { summary: `${resource(ctx)} was already recreated and imported`, actions };
      }
      if (instance) {
        // The original instance (3.2 stopped before deleting, or was cancelled before it began):
        // importing the export into it would overwrite live data with an older copy.
        const body = await deps.objects.read(snapshotOf(ctx));
        const saved = body ? (JSON.parse(body.toString('utf8')) as Instance) : undefined;
        if (!saved || JSON.stringify(saved.createTime) === JSON.stringify(instance.createTime)) {
          return { summary: `${resource(ctx)} was never deleted: nothing to restore, and nothing imported into it`, actions };
        }
      }
      if (!instance) {
        const saved = await readSnapshot<Instance>(deps.objects, snapshotOf(ctx), `Cloud SQL instance ${resource(ctx)}`);
        const settings = Object.fromEntries(SETTINGS.filter((k) => saved.settings?.[k] !== undefined).map((k) => [k, saved.settings[k]]));
        await runOperation(
          ctx,
          `recreating ${resource(ctx)}`,
          () => sqlInstances.insert({ project: project(ctx), body: { name: instanceId(ctx), region: saved.region, databaseVersion: saved.databaseVersion, settings } }),
          (m) => fail(ErrorType.CannotRestore, `could not recreate ${resource(ctx)} (${m}): create it by hand from ${snapshotOf(ctx)}, then retry the compensation.`),
        );
        actions.push({ call: 'sql.instances.insert', resource: resource(ctx), description: 'recreated the instance from its snapshot' });
        instance = await getInstance(ctx);
      }
      if (!(await exportVerified(uri))) fail(ErrorType.CannotRestore, `cannot import into ${resource(ctx)}: the export ${uri} is missing. Restore from the final backup in the console, then skip this compensation.`);
      // A PostgreSQL SQL import needs its database to exist; a recreated instance has only `postgres`.
      const database = ctx.target.cloudSql.database;
      const dbExists = await gcpGet(`reading database ${database} on ${resource(ctx)}`, ROLE, () => deps.gcp.sqlDatabases.get({ project: project(ctx), instance: instanceId(ctx), database }));
      if (!dbExists) {
        await runOperation(
          ctx,
          `creating database ${database} on ${resource(ctx)}`,
          () => deps.gcp.sqlDatabases.insert({ project: project(ctx), instance: instanceId(ctx), body: { name: database, instance: instanceId(ctx), project: project(ctx) } }),
          (m) => fail(ErrorType.CannotRestore, `could not create database ${database} on ${resource(ctx)} (${m}): create it by hand, then retry the compensation.`),
        );
        actions.push({ call: 'sql.databases.insert', resource: `${resource(ctx)}/databases/${database}`, description: 'created the database to import into' });
      }
      await runOperation(
        ctx,
        `importing ${uri} into ${resource(ctx)}`,
        () =>
          sqlInstances.import({
            project: project(ctx),
            instance: instanceId(ctx),
            body: { importContext: { kind: 'sql#importContext', fileType: 'SQL', uri, database: ctx.target.cloudSql.database } },
          }),
        (m) => fail(ErrorType.CannotRestore, `importing ${uri} into ${resource(ctx)} failed (${m}): import it by hand (gcloud sql import sql), then skip this compensation.`),
      );
      actions.push({ call: 'sql.instances.import', resource: resource(ctx), description: `imported ${uri}` });
      await deps.objects.write(restoreMarker(ctx), JSON.stringify({ createTime: instance?.createTime, importedAt: new Date().toISOString(), from: uri }), 'application/json');
      return { summary: `recreated ${resource(ctx)} and imported ${uri}`, actions };
    },
  });

  async function preflight(ctx: StepContext): Promise<CheckResult[]> {
    const checks: CheckResult[] = [];
    const name = `cloud-sql: instance ${resource(ctx)}`;
    try {
      const instance = await getInstance(ctx);
      if (!instance) checks.push({ name, ok: false, detail: 'not found: check cloudSql.instance in the config' });
      else if (!hasLabels(instance.settings?.userLabels, ctx)) checks.push({ name, ok: false, detail: `readable but missing the labels ${JSON.stringify(ctx.target.labels)}: add them as user labels or fix the name` });
      else checks.push({ name, ok: true, detail: `readable and labelled${protectionOn(instance) ? ' (deletion protection on: 3.2 turns it off)' : ''}` });
    } catch (err) {
      rethrowTransient(err);
      checks.push({ name, ok: false, detail: (err as { type?: string }).type ? (err as Error).message : describe(err) });
    }
    checks.push({
      name: 'cloud-sql: backup bucket',
      ok: !!ctx.target.buckets.backup,
      detail: ctx.target.buckets.backup ? `exports go to gs://${ctx.target.buckets.backup}/${ctx.target.buckets.prefix}/` : 'name buckets.backup in the config',
    });
    return checks;
  }

  async function remaining(ctx: StepContext): Promise<string[]> {
    const [list] = await gcpCall(`listing Cloud SQL instances in ${project(ctx)}`, ROLE, () => sqlInstances.list({ project: project(ctx) }));
    return (plain<{ items?: Instance[] }>(list).items ?? [])
      .filter((i) => i.name === instanceId(ctx) || hasLabels(i.settings?.userLabels, ctx))
      .map((i) => `projects/${project(ctx)}/instances/${i.name}`);
  }

  return {
    activities: { backupDatabase, checkExportVerified, deleteMlflowDatabase, restoreMlflowDatabase },
    preflight,
    remaining,
  } satisfies CloudKind<Record<string, unknown>>;
}

export type CloudSqlActivities = ReturnType<typeof createCloudSqlActivities>['activities'];
