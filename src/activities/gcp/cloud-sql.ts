// Cloud SQL: 0.1 takes an on-demand backup run and a gzip SQL export to the backup bucket, and
// proves the export holds every row of every MLflow table. 3.2 deletes the instance with a final
// backup (cloudSql.restoreFrom "final-backup", the default), or first exports it again after 3.1
// stopped MLflow ("export"). Its undo restores the final backup into a new instance
// (instances.restoreBackup), or recreates the instance and imports that export.
//
// One file per concern: cloud-sql-instance.ts (shared helpers), cloud-sql-operations.ts (operations
// that happen once however often a step is retried), cloud-sql-backup.ts (0.1 and its check),
// cloud-sql-delete.ts (3.2), cloud-sql-restore.ts (its undo).
import type { CheckResult, StepContext } from '../../types';
import { hasLabels, type CloudKind } from './common';
import { describe, gcpCall, plain, rethrowTransient } from '../../adapters/gcp/calls';
import { createBackupSteps } from './cloud-sql-backup';
import { createDeleteStep } from './cloud-sql-delete';
import { createCloudSqlInstance, restoreFrom, ROLE, type CloudSqlDeps, type CloudSqlOptions, type Instance } from './cloud-sql-instance';
import { createRestoreStep } from './cloud-sql-restore';

export type { CloudSqlDeps, CloudSqlOptions } from './cloud-sql-instance';

export function createCloudSqlActivities(deps: CloudSqlDeps, opts: CloudSqlOptions = {}) {
  const sql = createCloudSqlInstance(deps, opts);
  const { sqlInstances } = deps.gcp;
  const { project, instanceId, resource, getInstance, protectionOn } = sql;
  const { backupDatabase, checkExportVerified } = createBackupSteps(deps, sql);
  const { deleteMlflowDatabase } = createDeleteStep(deps, sql);
  const { restoreMlflowDatabase } = createRestoreStep(deps, sql, opts);

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