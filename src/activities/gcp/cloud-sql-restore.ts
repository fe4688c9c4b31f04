// The undo of Cloud SQL 3.2: restores the final backup into a new instance (instances.restoreBackup),
// or recreates the instance and imports the export 3.2 took; then deletion protection and the new
// service account's access to the backup bucket come back as they were.
import { ErrorType, fail } from '../../errors';
import type { PlannedAction, StepContext } from '../../types';
import { pollUntil } from './common';
import { gcpCall, gcpGet, plain } from '../../adapters/gcp/calls';
import { defineStep } from '../step';
import { exportUriFor, finalExportUriFor, isoTime, restoreFrom, ROLE, type CloudSqlDeps, type CloudSqlInstance, type CloudSqlOptions, type Instance, type SqlUser } from './cloud-sql-instance';

export function createRestoreStep(deps: CloudSqlDeps, sql: CloudSqlInstance, opts: CloudSqlOptions = {}) {
  const { sqlInstances, sqlDatabases, sqlUsers, storage } = deps.gcp;
  const { project, instanceId, resource, snapshotOf, usersSnapshotOf, operationMarker, finalBackupDescription, getInstance, runOperation, protectionOn, findFinalBackup, carried } = sql;

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
      () => sqlInstances.patch({ project: project(ctx), instance: instanceId(ctx), body: { settings: { deletionProtectionEnabled: { value: true } } } }),
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
        }),
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
        () => sqlInstances.insert({ project: project(ctx), body: { name: instanceId(ctx), region: saved.region, databaseVersion: saved.databaseVersion, settings: carried(saved) } }),
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
        () => sqlDatabases.insert({ project: project(ctx), instance: instanceId(ctx), body: { name: database, instance: instanceId(ctx), project: project(ctx) } }),
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
        () => sqlUsers.insert({ project: project(ctx), instance: instanceId(ctx), body: { name: u.name, type: u.type, instance: instanceId(ctx), project: project(ctx) } }),
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
        }),
      (m) => fail(ErrorType.CannotRestore, `importing ${uri} into ${resource(ctx)} failed (${m}): import it by hand (gcloud sql import sql), then skip this compensation.`),
    );
    actions.push({ call: 'sql.instances.import', resource: resource(ctx), description: `imported ${uri}` });
    return `the export taken at delete ${uri}${recreated.length ? ` (users ${recreated.join(', ')} recreated without passwords: set them before MLflow connects)` : ''}`;
  }

  return { restoreMlflowDatabase };
}
