// Cloud SQL 3.2: deletes the instance with a final backup (cloudSql.restoreFrom "final-backup", the
// default), or first exports it again after 3.1 stopped MLflow ("export"), once the verified 0.1
// export is still there row for row. Settings and users are saved first for the undo.
import { ErrorType, fail } from '../../errors';
import type { PlannedAction } from '../../types';
import { assertLabels, readSnapshot, saveSnapshot } from './common';
import { gcpCall, plain } from '../../adapters/gcp/calls';
import { defineStep } from '../step';
import { exportUriFor, FINAL_BACKUP_TTL_DAYS, finalExportUriFor, restoreFrom, ROLE, type CloudSqlDeps, type CloudSqlInstance, type Instance, type SqlUser } from './cloud-sql-instance';
import { compareRows, storeRowCounts, type RowCounts } from './sql-export';

export function createDeleteStep(deps: CloudSqlDeps, sql: CloudSqlInstance) {
  const { sqlInstances, sqlUsers } = deps.gcp;
  const { project, instanceId, resource, snapshotOf, usersSnapshotOf, finalBackupDescription, getInstance, runOperation, dumpRows, exportAndVerify, protectionOn, findFinalBackup } = sql;

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
          () => sqlInstances.patch({ project: project(ctx), instance: instanceId(ctx), body: { settings: { deletionProtectionEnabled: { value: false } } } }),
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
          }),
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


  return { deleteMlflowDatabase };
}
