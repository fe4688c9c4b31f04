// Cloud SQL: 0.1 takes an on-demand backup run and a gzip SQL export to the backup bucket, and
// proves the export holds every row of every MLflow table. 3.2 deletes the instance with a final
// backup (cloudSql.restoreFrom "final-backup", the default), or first exports it again after 3.1
// stopped MLflow ("export"). Its undo restores the final backup into a new instance
// (instances.restoreBackup), or recreates the instance and imports that export.
//
// Cloud SQL operations are not google.longrunning ones: each call returns an Operation that is
// polled with SqlOperationsService.get until DONE, and a DONE operation may carry an error. An
// instance runs one operation at a time, so every operation's name is saved before it is waited
// on: a retry after a crash waits on the same operation instead of starting another.
import type { Databases } from '../adapters/postgres';
import { isOperationInProgress } from '../adapters/gcp/clients';
import { ErrorType, fail } from '../errors';
import type { CheckResult, PlannedAction, StepContext } from '../types';
import { assertLabels, hasLabels, heartbeat, migrationUri, pollUntil, readSnapshot, saveSnapshot, snapshotUri, type CloudDeps, type CloudKind } from './cloud-common';
import { describe, gcpCall, gcpGet, plain, rethrowTransient } from './gcp-calls';
import { activityContext } from './heartbeat';
import { compareRows, countDumpRows, storeRowCounts, type ExportVerdict, type RowCounts } from './sql-export';
import { defineCheck, defineStep } from './step';

const ROLE = 'roles/cloudsql.admin';
/** How long the final backup taken on delete is kept (instances.delete finalBackupTtlDays: 1–365). */
const FINAL_BACKUP_TTL_DAYS = 30;

type Instance = Record<string, any>;
interface SqlOperation {
  name?: string;
  status?: string;
  operationType?: string;
  startTime?: string;
  endTime?: string;
  error?: { errors?: Array<{ code?: string; message?: string }> } | null;
  backupContext?: { backupId?: string | number } | null;
  exportContext?: { uri?: string } | null;
  importContext?: { uri?: string } | null;
}
interface SqlUser {
  name: string;
  type?: string;
}
interface Backup {
  name: string;
  description?: string;
  instance?: string;
  state?: string;
  expiryTime?: string;
  backupInterval?: { startTime?: Timestamp; endTime?: Timestamp };
}
/** A google.protobuf.Timestamp as the REST clients decode it, or its RFC 3339 string. */
type Timestamp = string | { seconds?: string | number; nanos?: number };

function isoTime(t: Timestamp | undefined): string | undefined {
  if (!t) return undefined;
  if (typeof t === 'string') return t;
  return new Date(Number(t.seconds ?? 0) * 1000 + Math.round((t.nanos ?? 0) / 1e6)).toISOString();
}

export interface CloudSqlDeps extends CloudDeps {
  /** The MLflow database itself: exports are checked row for row against it. */
  databases: Databases;
}

export interface CloudSqlOptions {
  /** A fixed operation polling interval (tests); by default polling backs off from 250 ms to 10 s. */
  pollIntervalMs?: number;
}

/**
 * What a recreated instance takes from the deleted one's settings: its shape and its place on the
 * network (IP configuration, zone, maintenance window), not its identity. A restore from a backup
 * does not keep flags, and resets backups to their defaults, so these are sent explicitly
 * (https://cloud.google.com/sql/docs/postgres/backup-recovery/restore).
 */
const CARRIED_SETTINGS = [
  'tier',
  'edition',
  'userLabels',
  'availabilityType',
  'dataDiskSizeGb',
  'dataDiskType',
  'storageAutoResize',
  'storageAutoResizeLimit',
  'activationPolicy',
  'ipConfiguration',
  'locationPreference',
  'maintenanceWindow',
  'backupConfiguration',
  'databaseFlags',
  'insightsConfig',
  'deletionProtectionEnabled',
];

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

/** The export 3.2 takes after 3.1 stopped MLflow, when the config restores from an export. */
export function finalExportUriFor(ctx: StepContext): string {
  return migrationUri(ctx, `sql/${ctx.target.cloudSql.database}.at-delete.sql.gz`);
}

const restoreFrom = (ctx: StepContext) => ctx.target.cloudSql.restoreFrom ?? 'final-backup';

export function createCloudSqlActivities(deps: CloudSqlDeps, opts: CloudSqlOptions = {}) {
  const { sqlInstances, sqlOperations, sqlBackupRuns, sqlBackups, sqlDatabases, sqlUsers, storage } = deps.gcp;
  const project = (ctx: StepContext) => ctx.target.gcp.project;
  const instanceId = (ctx: StepContext) => ctx.target.cloudSql.instance;
  const resource = (ctx: StepContext) => `projects/${project(ctx)}/instances/${instanceId(ctx)}`;
  const snapshotOf = (ctx: StepContext) => snapshotUri(ctx, 'cloud-sql', instanceId(ctx));
  const usersSnapshotOf = (ctx: StepContext) => snapshotUri(ctx, 'cloud-sql-users', instanceId(ctx));
  const operationMarker = (ctx: StepContext, key: string) => migrationUri(ctx, `operations/cloud-sql/${key}.json`);
  const finalBackupDescription = (ctx: StepContext) => `mlflow-decommission ${ctx.migrationId}: final backup`;

  const getInstance = (ctx: StepContext): Promise<Instance | undefined> =>
    gcpGet(`reading Cloud SQL instance ${resource(ctx)}`, ROLE, async () => plain((await sqlInstances.get({ project: project(ctx), instance: instanceId(ctx) }))[0]));

  const getOperation = (ctx: StepContext, name: string): Promise<SqlOperation | undefined> =>
    gcpGet(`reading Cloud SQL operation ${name}`, ROLE, async () => plain<SqlOperation>((await sqlOperations.get({ project: project(ctx), operation: name }))[0]));

  /** The instance's operations that have not finished, newest first (operations.list is reverse chronological). */
  const runningOperations = async (ctx: StepContext): Promise<SqlOperation[]> => {
    // An instance that does not exist yet (a restore into a new one) has no operations to list.
    const list = await gcpGet(`listing operations of ${resource(ctx)}`, ROLE, async () => (await sqlOperations.list({ project: project(ctx), instance: instanceId(ctx) }))[0]);
    return (plain<{ items?: SqlOperation[] }>(list ?? {}).items ?? []).filter((o) => o.status !== 'DONE');
  };

  /** Polls one operation to DONE, heartbeating its name so the UI and a retry can see it. */
  const waitFor = async (ctx: StepContext, name: string, what: string): Promise<SqlOperation> => {
    // Cloud SQL operations take seconds (patch) to many minutes (export): poll soon, then back off.
    let interval = opts.pollIntervalMs ?? 250;
    return pollUntil(
      what,
      async () => {
        const op = await getOperation(ctx, name);
        if (!op) throw new Error(`${what}: operation ${name} is no longer known to Cloud SQL; the activity retries`);
        if (op.status === 'DONE') return op;
        heartbeat({ waitingFor: what, operation: name });
        if (!opts.pollIntervalMs) interval = Math.min(interval * 2, 10_000);
        await sleep(interval);
        return undefined;
      },
      { intervalMs: 0 },
    );
  };

  /**
   * Runs one operation of a step so that it happens once however often the step is retried: a saved
   * operation is resumed (or taken as done), a matching one already running on the instance is
   * adopted, and only then is a new one started; its name is saved before it is waited on.
   */
  const runOperation = async (
    ctx: StepContext,
    step: { key: string; what: string; type: string; matches?: (op: SqlOperation) => boolean },
    start: () => Promise<unknown>,
    onError: (message: string) => never,
  ): Promise<SqlOperation> => {
    const marker = operationMarker(ctx, step.key);
    const finish = (op: SqlOperation) => {
      const errors = op.error?.errors ?? [];
      if (errors.length) onError(`operation ${op.name} failed: ${errors.map((e) => `${e.code}: ${e.message}`).join('; ')}`);
      return op;
    };
    const saved = await deps.objects.read(marker);
    if (saved) {
      const name = (JSON.parse(saved.toString('utf8')) as { name: string }).name;
      const op = await getOperation(ctx, name);
      if (op && op.status !== 'DONE') return finish(await waitFor(ctx, name, step.what));
      // Done and without error: the effect happened, do not repeat it. Failed: start it again.
      if (op && !op.error?.errors?.length) return op;
    }
    const adopt = (await runningOperations(ctx)).find((o) => o.operationType === step.type && (step.matches?.(o) ?? true));
    let name = adopt?.name;
    if (!name) {
      for (;;) {
        try {
          const [started] = (await gcpCall(step.what, ROLE, start)) as [SqlOperation];
          name = started.name!;
          break;
        } catch (err) {
          // Another operation holds the instance (a backup window, an operator's change): wait for it, then start.
          if (!isOperationInProgress(err)) throw err;
          await pollUntil(`${step.what}: waiting for the instance's running operation to finish`, async () => ((await runningOperations(ctx)).length ? undefined : true), { intervalMs: opts.pollIntervalMs ?? 5_000 });
        }
      }
    }
    await deps.objects.write(marker, JSON.stringify({ name, type: step.type, startedAt: new Date().toISOString() }), 'application/json');
    heartbeat({ waitingFor: step.what, operation: name });
    return finish(await waitFor(ctx, name, step.what));
  };

  /** Streams an export and counts its rows per table. */
  const dumpRows = async (uri: string): Promise<RowCounts | string> => {
    if (!(await deps.objects.stat(uri))) return `${uri} is missing`;
    try {
      return await countDumpRows(deps.objects.readStream(uri), { gzip: uri.endsWith('.gz'), what: uri });
    } catch (err) {
      rethrowTransient(err);
      return `${uri} cannot be read as a gzip SQL dump (${describe(err)})`;
    }
  };

  /** Exports the MLflow database to `uri` (resumably) and checks it against row counts taken around it. */
  const exportAndVerify = async (ctx: StepContext, key: string, uri: string): Promise<ExportVerdict & { bytes: number }> => {
    const before = await storeRowCounts(deps.databases, ctx);
    await runOperation(
      ctx,
      { key, what: `export of ${ctx.target.cloudSql.database} to ${uri}`, type: 'EXPORT', matches: (o) => o.exportContext?.uri === uri },
      () =>
        sqlInstances.export({
          project: project(ctx),
          instance: instanceId(ctx),
          body: { exportContext: { kind: 'sql#exportContext', fileType: 'SQL', uri, databases: [ctx.target.cloudSql.database] } },
        } as never),
      (m) =>
        fail(
          ErrorType.PreconditionFailed,
          `the SQL export of ${resource(ctx)} to ${uri} failed (${m}): grant the instance's service account roles/storage.objectAdmin on gs://${ctx.target.buckets.backup} and check the database name, then retry.`,
        ),
    );
    const after = await storeRowCounts(deps.databases, ctx);
    const rows = await dumpRows(uri);
    const verdict = typeof rows === 'string' ? { ok: false, detail: rows, rows: {} } : compareRows(rows, before, after);
    return { ...verdict, bytes: (await deps.objects.stat(uri))?.size ?? 0 };
  };

  const backupDescription = (ctx: StepContext) => `mlflow-decommission ${ctx.migrationId}: before migration`;

  // 0.1
  const backupDatabase = defineStep({
    async plan(ctx) {
      const uri = migrationUri(ctx, `sql/${ctx.target.cloudSql.database}.sql.gz`);
      return [
        { call: 'sql.backupRuns.insert', resource: resource(ctx), description: `on-demand backup of ${instanceId(ctx)}` },
        { call: 'sql.instances.export', resource: resource(ctx), description: `export database ${ctx.target.cloudSql.database} as gzip SQL to ${uri}, then count its rows per table against the database` },
      ];
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
          { key: '0.1-backup-run', what: `backup run of ${resource(ctx)}`, type: 'BACKUP_VOLUME' },
          () => sqlBackupRuns.insert({ project: project(ctx), instance: instanceId(ctx), body: { description: backupDescription(ctx) } }),
          (m) => fail(ErrorType.PreconditionFailed, `the on-demand backup of ${resource(ctx)} failed (${m}): check the instance in the console, then retry step 0.1.`),
        );
        backupRunId = String(op.backupContext?.backupId ?? '');
        actions.push({ call: 'sql.backupRuns.insert', resource: resource(ctx), description: `backup run ${backupRunId}` });
      }

      // An export from an earlier attempt is kept only if it still matches the database row for row.
      let verdict: (ExportVerdict & { bytes: number }) | undefined;
      const earlier = await deps.objects.stat(uri);
      if (earlier) {
        const rows = await dumpRows(uri);
        if (typeof rows !== 'string') verdict = { ...compareRows(rows, await storeRowCounts(deps.databases, ctx)), bytes: earlier.size };
      }
      if (!verdict?.ok) {
        // Cloud SQL runs one operation per instance at a time, so the export follows the backup.
        verdict = await exportAndVerify(ctx, `0.1-export-${earlier ? Date.now() : 'first'}`, uri);
        actions.push({ call: 'sql.instances.export', resource: resource(ctx), description: `exported ${ctx.target.cloudSql.database} to ${uri}` });
      }
      if (!verdict.ok) {
        fail(ErrorType.VerificationFailed, `the export ${uri} does not hold the MLflow database: ${verdict.detail}. Retry step 0.1 to export again; if it fails the same way, check the instance's export in the console.`);
      }
      return {
        summary: `backup run ${backupRunId} taken; ${ctx.target.cloudSql.database} exported to ${uri} (${verdict.bytes} bytes): ${verdict.detail}`,
        actions,
        facts: { exportUri: uri, exportBytes: verdict.bytes, backupRunId, exportRows: verdict.rows, exportedAt: new Date().toISOString() },
      };
    },
  });

  // Gates phase-0 and phase-2: the export is re-read (not taken from 0.1's word), and the way back 3.2 relies on is checked.
  const checkExportVerified = defineCheck(async (ctx) => {
    const uri = exportUriFor(ctx);
    const rows = await dumpRows(uri);
    const verified = (ctx.facts['0.1'] as { exportRows?: RowCounts } | undefined)?.exportRows;
    let exportCheck: CheckResult;
    if (typeof rows === 'string') exportCheck = { name: 'SQL export verified', ok: false, detail: `${rows}: run step 0.1 again` };
    else {
      // Against the counts 0.1 proved against the database at export time; MLflow may have written since.
      const verdict = compareRows(rows, verified ?? (await storeRowCounts(deps.databases, ctx)));
      exportCheck = { name: 'SQL export verified', ok: verdict.ok, detail: verdict.ok ? `${uri}: ${verdict.detail}${verified ? ' at export time' : ''}` : `${uri} does not hold the MLflow database: ${verdict.detail}. Run step 0.1 again.` };
    }
    return [exportCheck, await wayBackCheck(ctx)];
  });

  /** What undoing 3.2 will restore from, and whether it is possible now. */
  async function wayBackCheck(ctx: StepContext): Promise<CheckResult> {
    const name = 'Cloud SQL way back';
    const instance = await getInstance(ctx);
    if (!instance) return { name, ok: false, detail: `${resource(ctx)} was not found: check cloudSql.instance` };
    if (instance.state !== 'RUNNABLE') return { name, ok: false, detail: `${resource(ctx)} is ${instance.state}, not RUNNABLE: 3.2 takes its final backup from a running instance. Start it, then retry.` };
    if (restoreFrom(ctx) === 'export') {
      return { name, ok: true, detail: `3.2 exports ${ctx.target.cloudSql.database} again after 3.1 stopped MLflow, checks it row for row like the 0.1 export, and keeps a final backup too; undo recreates the instance (settings, users) and imports that export` };
    }
    return {
      name,
      ok: true,
      detail: `3.2 deletes ${instanceId(ctx)} with a final backup kept ${FINAL_BACKUP_TTL_DAYS} days (databases, users and data up to the delete); undo restores it into a new instance with its IP configuration, zone and maintenance window (instances.restoreBackup). The verified 0.1 export is the second line.`,
    };
  }

  const protectionOn = (i: Instance | undefined) => {
    const v = i?.settings?.deletionProtectionEnabled;
    return v === true || v?.value === true;
  };

  /** The final backup 3.2 took of this instance, found by its description (the Backups API lists final backups). */
  const findFinalBackup = async (ctx: StepContext): Promise<Backup | undefined> => {
    const [backups] = await gcpCall(`listing final backups of ${resource(ctx)}`, ROLE, () =>
      sqlBackups.listBackups({ parent: `projects/${project(ctx)}`, filter: `instance:${instanceId(ctx)} AND type:FINAL` }),
    );
    return (plain<Backup[]>(backups) ?? []).filter((b) => b.description === finalBackupDescription(ctx) && (!b.state || b.state === 'SUCCESSFUL')).at(-1);
  };

  // 3.2
  const deleteMlflowDatabase = defineStep({
    requiresGate: 'phase-2',
    async plan(ctx) {
      const instance = await getInstance(ctx);
      if (!instance || instance.state === 'PENDING_DELETE') return [];
      return [
        { call: 'storage.objects.insert', resource: snapshotOf(ctx), description: `save the settings and users of ${instanceId(ctx)} for rollback` },
        ...(restoreFrom(ctx) === 'export' ? [{ call: 'sql.instances.export', resource: resource(ctx), description: `export ${ctx.target.cloudSql.database} to ${finalExportUriFor(ctx)} now that MLflow is stopped, and check it row for row` }] : []),
        ...(protectionOn(instance) ? [{ call: 'sql.instances.patch', resource: resource(ctx), description: 'turn deletion protection off (undo turns it back on)', destructive: true }] : []),
        { call: 'sql.instances.delete', resource: resource(ctx), description: `delete the instance with a final backup kept ${FINAL_BACKUP_TTL_DAYS} days (deleting an instance deletes its other backups)`, destructive: true },
      ];
    },
    async run(ctx) {
      const instance = await getInstance(ctx);
      // "After you delete an instance, it might continue to appear … with a 'Being deleted' status" (delete-instance).
      if (!instance || instance.state === 'PENDING_DELETE') {
        const backup = await findFinalBackup(ctx);
        return {
          summary: `${resource(ctx)} is already ${instance ? 'being deleted' : 'gone'}${backup ? `; final backup ${backup.name}` : ''}`,
          actions: [],
          facts: { snapshot: snapshotOf(ctx), ...(backup ? { finalBackup: backup.name } : {}) },
        };
      }
      // The verified 0.1 export must still be there, row for row, before anything is deleted.
      const uri = exportUriFor(ctx);
      const rows = await dumpRows(uri);
      const verified = (ctx.facts['0.1'] as { exportRows?: RowCounts } | undefined)?.exportRows;
      const verdict = typeof rows === 'string' ? { ok: false, detail: rows } : compareRows(rows, verified ?? (await storeRowCounts(deps.databases, ctx)));
      if (!verdict.ok) fail(ErrorType.PreconditionFailed, `export ${uri} is missing or does not hold the MLflow database (${verdict.detail}), so ${resource(ctx)} is not deleted: run step 0.1 again or approve skip.`);
      assertLabels(`Cloud SQL instance ${resource(ctx)}`, instance.settings?.userLabels, ctx);

      // The first snapshot wins: a retry after protection was turned off must not record it as off.
      const snapshot = snapshotOf(ctx);
      if (!(await deps.objects.stat(snapshot))) {
        const [users] = await gcpCall(`listing users of ${resource(ctx)}`, ROLE, () => sqlUsers.list({ project: project(ctx), instance: instanceId(ctx) }));
        await saveSnapshot(deps.objects, usersSnapshotOf(ctx), (plain<{ items?: SqlUser[] }>(users).items ?? []).map((u) => ({ name: u.name, type: u.type ?? 'BUILT_IN' })));
        await saveSnapshot(deps.objects, snapshot, instance);
      }
      const saved = await readSnapshot<Instance>(deps.objects, snapshot, `Cloud SQL instance ${resource(ctx)}`);
      const actions: PlannedAction[] = [];
      const facts: Record<string, unknown> = { snapshot, exportUri: uri };

      if (restoreFrom(ctx) === 'export') {
        const finalUri = finalExportUriFor(ctx);
        const verdict = await exportAndVerify(ctx, '3.2-export', finalUri);
        if (!verdict.ok) fail(ErrorType.VerificationFailed, `the export ${finalUri} taken before deleting does not hold the MLflow database (${verdict.detail}), so ${resource(ctx)} is not deleted. Retry 3.2.`);
        actions.push({ call: 'sql.instances.export', resource: resource(ctx), description: `exported to ${finalUri}: ${verdict.detail}` });
        Object.assign(facts, { finalExportUri: finalUri, finalExportRows: verdict.rows });
      }

      const wasProtected = protectionOn(saved);
      if (protectionOn(instance)) {
        await runOperation(
          ctx,
          { key: '3.2-protection-off', what: `turning deletion protection off on ${resource(ctx)}`, type: 'UPDATE' },
          () => sqlInstances.patch({ project: project(ctx), instance: instanceId(ctx), body: { settings: { deletionProtectionEnabled: { value: false } } } } as never),
          (m) => fail(ErrorType.PreconditionFailed, `could not turn deletion protection off on ${resource(ctx)} (${m}): turn it off in the console, then retry.`),
        );
        actions.push({ call: 'sql.instances.patch', resource: resource(ctx), description: 'turned deletion protection off', destructive: true });
      }
      await runOperation(
        ctx,
        { key: '3.2-delete', what: `deleting ${resource(ctx)}`, type: 'DELETE' },
        () =>
          sqlInstances.delete({
            project: project(ctx),
            instance: instanceId(ctx),
            enableFinalBackup: true,
            finalBackupTtlDays: FINAL_BACKUP_TTL_DAYS,
            finalBackupDescription: finalBackupDescription(ctx),
          } as never),
        (m) => fail(ErrorType.PreconditionFailed, `deleting ${resource(ctx)} failed (${m}): check the instance in the console, then retry.`),
      );
      const backup = await findFinalBackup(ctx);
      actions.push({ call: 'sql.instances.delete', resource: resource(ctx), description: `deleted; final backup ${backup?.name ?? '(not found yet)'} kept ${FINAL_BACKUP_TTL_DAYS} days`, destructive: true });
      return {
        summary: `deleted ${resource(ctx)}${wasProtected ? ' (deletion protection turned off first; undo turns it back on)' : ''}; final backup ${backup?.name ?? 'not listed yet'} kept ${FINAL_BACKUP_TTL_DAYS} days; settings and users saved at ${snapshot}`,
        actions,
        facts: { ...facts, deletedAt: new Date().toISOString(), deletionProtectionDisabled: wasProtected, finalBackupTtlDays: FINAL_BACKUP_TTL_DAYS, ...(backup ? { finalBackup: backup.name } : {}) },
      };
    },
  });

  /** The settings a recreated instance carries over from the snapshot. */
  const carried = (saved: Instance) => Object.fromEntries(CARRIED_SETTINGS.filter((k) => saved.settings?.[k] !== undefined).map((k) => [k, saved.settings[k]]));

  /** Says how old the 0.1 export is: restoring it loses every write made after it. */
  const exportAge = async (ctx: StepContext): Promise<string> => {
    const info = await deps.objects.stat(exportUriFor(ctx));
    if (!info?.updated) return `there is no 0.1 export at ${exportUriFor(ctx)} either`;
    const hours = (Date.now() - Date.parse(info.updated)) / 3_600_000;
    return `the 0.1 export ${info.uri} was taken ${info.updated} (${hours < 48 ? `${hours.toFixed(1)} hours` : `${(hours / 24).toFixed(1)} days`} ago, before 3.1): restoring it would lose every MLflow write made after that`;
  };

  // Undo of 3.2.
  const restoreMlflowDatabase = defineStep({
    async plan(ctx) {
      const instance = await getInstance(ctx);
      if (instance && instance.state !== 'PENDING_DELETE') return [];
      return restoreFrom(ctx) === 'export'
        ? [
            { call: 'sql.instances.insert', resource: resource(ctx), description: `recreate ${instanceId(ctx)} with the settings in ${snapshotOf(ctx)}` },
            { call: 'storage.buckets.setIamPolicy', resource: `gs://${ctx.target.buckets.backup}`, description: "let the new instance's service account read the export" },
            { call: 'sql.users.insert', resource: resource(ctx), description: `recreate the users listed in ${usersSnapshotOf(ctx)}` },
            { call: 'sql.instances.import', resource: resource(ctx), description: `import ${finalExportUriFor(ctx)}` },
          ]
        : [{ call: 'sql.instances.restoreBackup', resource: resource(ctx), description: `restore the final backup 3.2 took into a new ${instanceId(ctx)}, with the settings in ${snapshotOf(ctx)}` }];
    },
    async run(ctx) {
      const raw = await deps.objects.read(snapshotOf(ctx));
      // 3.2 saves the snapshot before it changes anything: without one, nothing was changed.
      if (!raw) return { summary: `3.2 saved no snapshot of ${resource(ctx)}, so it changed nothing; nothing to restore`, actions: [] };
      const saved = JSON.parse(raw.toString('utf8')) as Instance;
      const actions: PlannedAction[] = [];
      let instance = await getInstance(ctx);
      if (instance?.state === 'PENDING_DELETE') {
        // Still being deleted: its name is not free yet. Wait until it is gone.
        await pollUntil(`deletion of ${resource(ctx)}`, async () => ((await getInstance(ctx)) ? undefined : true), { intervalMs: opts.pollIntervalMs ?? 10_000 });
        instance = undefined;
      }
      if (instance && JSON.stringify(instance.createTime) === JSON.stringify(saved.createTime)) {
        // The original instance: 3.2 stopped before deleting. Only deletion protection may need putting back.
        const put = await restoreProtection(ctx, saved, instance);
        return { summary: `${resource(ctx)} was never deleted: nothing imported into it${put ? '; deletion protection turned back on' : ''}`, actions: put ? [put] : [] };
      }
      let source: string;
      if (restoreFrom(ctx) === 'export') source = await recreateAndImport(ctx, saved, instance, actions);
      else source = await restoreFinalBackup(ctx, saved, instance, actions);
      instance = await pollUntil(`${resource(ctx)} becoming RUNNABLE`, async () => {
        const i = await getInstance(ctx);
        return i?.state === 'RUNNABLE' ? i : undefined;
      }, { intervalMs: opts.pollIntervalMs ?? 5_000 });
      const put = await restoreProtection(ctx, saved, instance);
      if (put) actions.push(put);
      const granted = await carryBucketAccess(ctx, saved, instance);
      if (granted) actions.push(granted);
      return {
        summary: `restored ${resource(ctx)} from ${source}, with the deleted instance's tier, IP configuration, zone ${instance.gceZone ?? saved.gceZone ?? ''} and maintenance window${protectionOn(saved) ? ', deletion protection on' : ''}`,
        actions,
        facts: { restoredFrom: source, serviceAccount: instance.serviceAccountEmailAddress },
      };
    },
  });

  /**
   * Gives the recreated instance's new service account what the deleted instance's had on the backup
   * bucket (0.1 asked for objectAdmin there, for exports), plus `required`: access is restored, not only the instance.
   */
  async function carryBucketAccess(ctx: StepContext, saved: Instance, created: Instance, required: string[] = []): Promise<PlannedAction | undefined> {
    const bucketName = ctx.target.buckets.backup;
    const member = `serviceAccount:${created.serviceAccountEmailAddress}`;
    const before = saved.serviceAccountEmailAddress ? `serviceAccount:${saved.serviceAccountEmailAddress}` : undefined;
    const iam = storage.bucket(bucketName).iam;
    const [policy] = await gcpCall(`reading the IAM policy of gs://${bucketName}`, 'roles/storage.admin', () => iam.getPolicy());
    const bindings = (policy.bindings ?? []).map((b) => ({ ...b, members: [...(b.members ?? [])] }));
    const roles = new Set([...required, ...bindings.filter((b) => before && b.members.includes(before) && !b.condition).map((b) => b.role)]);
    const added: string[] = [];
    for (const role of roles) {
      let binding = bindings.find((b) => b.role === role && !b.condition);
      if (!binding) bindings.push((binding = { role, members: [] }));
      if (!binding.members.includes(member)) {
        binding.members.push(member);
        added.push(role);
      }
    }
    if (!added.length) return undefined;
    await gcpCall(`granting ${member} ${added.join(', ')} on gs://${bucketName}`, 'roles/storage.admin', () => iam.setPolicy({ ...policy, bindings }));
    return { call: 'storage.buckets.setIamPolicy', resource: `gs://${bucketName}`, description: `granted the new instance's service account ${added.join(', ')}, as the deleted instance's had` };
  }

  /** An instance of that name that neither 3.2's original nor this rollback made: its data is not ours to overwrite. */
  function notOurs(ctx: StepContext, instance: Instance): never {
    fail(
      ErrorType.CannotRestore,
      `an instance ${resource(ctx)} exists (created ${instance.createTime}) that this rollback did not create, so nothing is restored into it. ` +
        `If it should hold MLflow's data, restore the final backup into it by hand (gcloud sql backups restore), then skip this compensation.`,
    );
  }

  /** Puts deletion protection back when the deleted (or never-deleted) instance had it. */
  async function restoreProtection(ctx: StepContext, saved: Instance, instance: Instance): Promise<PlannedAction | undefined> {
    if (!protectionOn(saved) || protectionOn(instance)) return undefined;
    await runOperation(
      ctx,
      { key: `undo-3.2-protection-on-${String(instance.createTime ?? '').replace(/[^0-9A-Za-z]/g, '')}`, what: `turning deletion protection back on on ${resource(ctx)}`, type: 'UPDATE' },
      () => sqlInstances.patch({ project: project(ctx), instance: instanceId(ctx), body: { settings: { deletionProtectionEnabled: { value: true } } } } as never),
      (m) => fail(ErrorType.CannotRestore, `could not turn deletion protection back on on ${resource(ctx)} (${m}): turn it on in the console, then skip this compensation.`),
    );
    return { call: 'sql.instances.patch', resource: resource(ctx), description: 'turned deletion protection back on' };
  }

  /** instances.restoreBackup into a new instance: the final backup brings databases, users and data up to the delete. */
  async function restoreFinalBackup(ctx: StepContext, saved: Instance, instance: Instance | undefined, actions: PlannedAction[]): Promise<string> {
    const key = 'undo-3.2-restore-backup';
    if (instance && !(await deps.objects.stat(operationMarker(ctx, key)))) notOurs(ctx, instance);
    const backup = await findFinalBackup(ctx);
    if (!backup) {
      fail(
        ErrorType.CannotRestore,
        `no final backup of ${resource(ctx)} described "${finalBackupDescription(ctx)}" is left (expired, or deleted by hand). ${await exportAge(ctx)}. ` +
          `If that loss is acceptable, recreate the instance and import it by hand (gcloud sql instances create …; gcloud sql import sql ${instanceId(ctx)} ${exportUriFor(ctx)} --database=${ctx.target.cloudSql.database}), then skip this compensation.`,
      );
    }
    // "Restore a final backup to a new instance" needs cloudsql.backupRuns.get, cloudsql.instances.restoreBackup
    // and cloudsql.instances.create (https://cloud.google.com/sql/docs/postgres/iam-permissions).
    await runOperation(
      ctx,
      { key, what: `restoring ${backup.name} into ${resource(ctx)}`, type: 'RESTORE_VOLUME' },
      () =>
        sqlInstances.restoreBackup({
          project: project(ctx),
          instance: instanceId(ctx),
          // restore_instance_settings: "Cloud SQL overrides any instance settings stored in the backup … to restore new instances only".
          body: { backup: backup.name, restoreInstanceSettings: { region: saved.region, databaseVersion: saved.databaseVersion, settings: carried(saved) } },
        } as never),
      (m) => fail(ErrorType.CannotRestore, `restoring ${backup.name} into ${resource(ctx)} failed (${m}): restore it in the console (Backups → Restore to a new instance), then skip this compensation.`),
    );
    const upTo = isoTime(backup.backupInterval?.endTime) ?? 'the delete';
    actions.push({ call: 'sql.instances.restoreBackup', resource: resource(ctx), description: `restored final backup ${backup.name} (data up to ${upTo})` });
    return `final backup ${backup.name} (data up to ${upTo})`;
  }

  /** instances.insert with the saved settings, then the database, the users and the export taken at delete. */
  async function recreateAndImport(ctx: StepContext, saved: Instance, instance: Instance | undefined, actions: PlannedAction[]): Promise<string> {
    const uri = finalExportUriFor(ctx);
    if (!(await deps.objects.stat(uri))) {
      fail(ErrorType.CannotRestore, `cannot import into ${resource(ctx)}: the export 3.2 takes before deleting (${uri}) is missing. ${await exportAge(ctx)}. Restore the final backup in the console instead, then skip this compensation.`);
    }
    if (instance && !(await deps.objects.stat(operationMarker(ctx, 'undo-3.2-recreate')))) notOurs(ctx, instance);
    if (!instance) {
      await runOperation(
        ctx,
        { key: 'undo-3.2-recreate', what: `recreating ${resource(ctx)}`, type: 'CREATE' },
        () => sqlInstances.insert({ project: project(ctx), body: { name: instanceId(ctx), region: saved.region, databaseVersion: saved.databaseVersion, settings: carried(saved) } } as never),
        (m) => fail(ErrorType.CannotRestore, `could not recreate ${resource(ctx)} (${m}): create it by hand from ${snapshotOf(ctx)}, then retry the compensation.`),
      );
      actions.push({ call: 'sql.instances.insert', resource: resource(ctx), description: 'recreated the instance with its saved settings' });
    }
    const created = await pollUntil(`${resource(ctx)} becoming RUNNABLE`, async () => {
      const i = await getInstance(ctx);
      return i?.state === 'RUNNABLE' ? i : undefined;
    }, { intervalMs: opts.pollIntervalMs ?? 5_000 });

    // A new instance has a new service account, which may not read the bucket until granted
    // (https://cloud.google.com/sql/docs/postgres/import-export/import-export-sql: roles/storage.objectViewer for imports).
    const granted = await carryBucketAccess(ctx, saved, created, ['roles/storage.objectViewer']);
    if (granted) actions.push(granted);

    // A PostgreSQL SQL import needs its database to exist; a recreated instance has only `postgres`.
    const database = ctx.target.cloudSql.database;
    const dbExists = await gcpGet(`reading database ${database} on ${resource(ctx)}`, ROLE, () => sqlDatabases.get({ project: project(ctx), instance: instanceId(ctx), database }));
    if (!dbExists) {
      await runOperation(
        ctx,
        { key: 'undo-3.2-create-database', what: `creating database ${database} on ${resource(ctx)}`, type: 'CREATE_DATABASE' },
        () => sqlDatabases.insert({ project: project(ctx), instance: instanceId(ctx), body: { name: database, instance: instanceId(ctx), project: project(ctx) } } as never),
        (m) => fail(ErrorType.CannotRestore, `could not create database ${database} on ${resource(ctx)} (${m}): create it by hand, then retry the compensation.`),
      );
      actions.push({ call: 'sql.databases.insert', resource: `${resource(ctx)}/databases/${database}`, description: 'created the database to import into' });
    }
    // The users own the dump's objects, so they come before the import; passwords are not in any
    // snapshot, so built-in users come back without one.
    const wantedUsers = JSON.parse((await deps.objects.read(usersSnapshotOf(ctx)))?.toString('utf8') ?? '[]') as SqlUser[];
    const [current] = await gcpCall(`listing users of ${resource(ctx)}`, ROLE, () => sqlUsers.list({ project: project(ctx), instance: instanceId(ctx) }));
    const have = new Set((plain<{ items?: SqlUser[] }>(current).items ?? []).map((u) => u.name));
    const recreated: string[] = [];
    for (const u of wantedUsers.filter((x) => !have.has(x.name))) {
      await runOperation(
        ctx,
        { key: `undo-3.2-user-${u.name.replace(/[^A-Za-z0-9_.@-]/g, '_')}`, what: `recreating user ${u.name} on ${resource(ctx)}`, type: 'CREATE_USER' },
        () => sqlUsers.insert({ project: project(ctx), instance: instanceId(ctx), body: { name: u.name, type: u.type, instance: instanceId(ctx), project: project(ctx) } } as never),
        (m) => fail(ErrorType.CannotRestore, `could not recreate user ${u.name} on ${resource(ctx)} (${m}): create it by hand, then retry the compensation.`),
      );
      recreated.push(u.name);
    }
    if (recreated.length) actions.push({ call: 'sql.users.insert', resource: resource(ctx), description: `recreated user(s) ${recreated.join(', ')} without passwords: set them (gcloud sql users set-password) before MLflow connects` });
    await runOperation(
      ctx,
      { key: 'undo-3.2-import', what: `importing ${uri} into ${resource(ctx)}`, type: 'IMPORT', matches: (o) => o.importContext?.uri === uri },
      () =>
        sqlInstances.import({
          project: project(ctx),
          instance: instanceId(ctx),
          body: { importContext: { kind: 'sql#importContext', fileType: 'SQL', uri, database } },
        } as never),
      (m) => fail(ErrorType.CannotRestore, `importing ${uri} into ${resource(ctx)} failed (${m}): import it by hand (gcloud sql import sql), then skip this compensation.`),
    );
    actions.push({ call: 'sql.instances.import', resource: resource(ctx), description: `imported ${uri}` });
    return `the export taken at delete ${uri}${recreated.length ? ` (users ${recreated.join(', ')} recreated without passwords: set them before MLflow connects)` : ''}`;
  }

  async function preflight(ctx: StepContext): Promise<CheckResult[]> {
    const checks: CheckResult[] = [];
    const name = `cloud-sql: instance ${resource(ctx)}`;
    try {
      const instance = await getInstance(ctx);
      if (!instance) checks.push({ name, ok: false, detail: 'not found: check cloudSql.instance in the config' });
      else if (!hasLabels(instance.settings?.userLabels, ctx)) checks.push({ name, ok: false, detail: `readable but missing the labels ${JSON.stringify(ctx.target.labels)}: add them as user labels or fix the name` });
      else
        checks.push({
          name,
          ok: true,
          detail: `readable and labelled${protectionOn(instance) ? ' (deletion protection on: 3.2 turns it off, undo turns it back on)' : ''}; undo restores it from ${restoreFrom(ctx) === 'export' ? 'an export 3.2 takes after 3.1 stopped MLflow' : 'the final backup 3.2 takes'}`,
        });
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
      // An instance being deleted still appears for a while ("Being deleted"), and is no longer billed as running.
      .filter((i) => i.state !== 'PENDING_DELETE')
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
