// Cloud SQL 0.1: an on-demand backup run and a gzip SQL export to the backup bucket, proven to hold
// every row of every MLflow table; and its gate check, which reads the export again and says what
// undoing 3.2 will restore from.
import { ErrorType, fail } from '../../errors';
import type { CheckResult, PlannedAction, StepContext } from '../../types';
import { migrationUri } from './common';
import { gcpCall, plain } from '../../adapters/gcp/calls';
import { defineCheck, defineStep } from '../step';
import { exportUriFor, FINAL_BACKUP_TTL_DAYS, restoreFrom, ROLE, type CloudSqlDeps, type CloudSqlInstance, type Instance } from './cloud-sql-instance';
import { compareRows, storeRowCounts, type ExportVerdict, type RowCounts } from './sql-export';

export function createBackupSteps(deps: CloudSqlDeps, sql: CloudSqlInstance) {
  const { sqlBackupRuns } = deps.gcp;
  const { project, instanceId, resource, getInstance, runOperation, dumpRows, exportAndVerify } = sql;

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

  return { backupDatabase, checkExportVerified };
}
