// What every Cloud SQL step shares: the instance's names and snapshot places, reading it, its
// final backup, and the SQL export streamed back and counted row for row (sql-export.ts).
import type { Databases } from '../../adapters/postgres';
import type { GcpClients } from '../../adapters/gcp/clients';
import { ErrorType, fail } from '../../errors';
import type { StepContext } from '../../types';
import { migrationUri, snapshotUri, type CloudDeps } from './common';
import { describe, gcpCall, gcpGet, plain, rethrowTransient } from '../../adapters/gcp/calls';
import { createOperationRunner, ROLE } from './cloud-sql-operations';
import { compareRows, countDumpRows, storeRowCounts, type ExportVerdict, type RowCounts } from './sql-export';

export { ROLE };
/** How long the final backup taken on delete is kept (instances.delete finalBackupTtlDays: 1–365). */
export const FINAL_BACKUP_TTL_DAYS = 30;

export type Instance = Record<string, any>;
/** Users.insert's user type (BUILT_IN, CLOUD_IAM_USER, …), as the client declares it. */
export type SqlUserType = NonNullable<NonNullable<Parameters<GcpClients['sqlUsers']['insert']>[0]>['body']>['type'];
export interface SqlUser {
  name: string;
  type?: SqlUserType;
}
export interface Backup {
  name: string;
  description?: string;
  instance?: string;
  state?: string;
  expiryTime?: string;
  backupInterval?: { startTime?: Timestamp; endTime?: Timestamp };
}
/** A google.protobuf.Timestamp as the REST clients decode it, or its RFC 3339 string. */
type Timestamp = string | { seconds?: string | number; nanos?: number };

export function isoTime(t: Timestamp | undefined): string | undefined {
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


export function exportUriFor(ctx: StepContext): string {
  const fromFacts = (ctx.facts['0.1'] as { exportUri?: string } | undefined)?.exportUri;
  return fromFacts ?? migrationUri(ctx, `sql/${ctx.target.cloudSql.database}.sql.gz`);
}

/** The export 3.2 takes after 3.1 stopped MLflow, when the config restores from an export. */
export function finalExportUriFor(ctx: StepContext): string {
  return migrationUri(ctx, `sql/${ctx.target.cloudSql.database}.at-delete.sql.gz`);
}

/**
 * What undoing 3.2 restores from. The config's default fills it in; a target loaded by a workflow
 * started before the field existed (kept in its history) has none, and means the same default.
 */
export const restoreFrom = (ctx: StepContext) => ctx.target.cloudSql.restoreFrom ?? 'final-backup';

export function createCloudSqlInstance(deps: CloudSqlDeps, opts: CloudSqlOptions = {}) {
  const { sqlInstances, sqlBackups } = deps.gcp;
  const project = (ctx: StepContext) => ctx.target.gcp.project;
  const instanceId = (ctx: StepContext) => ctx.target.cloudSql.instance;
  const resource = (ctx: StepContext) => `projects/${project(ctx)}/instances/${instanceId(ctx)}`;
  const snapshotOf = (ctx: StepContext) => snapshotUri(ctx, 'cloud-sql', instanceId(ctx));
  const usersSnapshotOf = (ctx: StepContext) => snapshotUri(ctx, 'cloud-sql-users', instanceId(ctx));
  const operationMarker = (ctx: StepContext, key: string) => migrationUri(ctx, `operations/cloud-sql/${key}.json`);
  const finalBackupDescription = (ctx: StepContext) => `mlflow-decommission ${ctx.migrationId}: final backup`;

  const getInstance = (ctx: StepContext): Promise<Instance | undefined> =>
    gcpGet(`reading Cloud SQL instance ${resource(ctx)}`, ROLE, async () => plain((await sqlInstances.get({ project: project(ctx), instance: instanceId(ctx) }))[0]));


  const runOperation = createOperationRunner(deps, opts, { project, instanceId, resource, operationMarker });

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
        }),
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

  /** The settings a recreated instance carries over from the snapshot. */
  const carried = (saved: Instance) => Object.fromEntries(CARRIED_SETTINGS.filter((k) => saved.settings?.[k] !== undefined).map((k) => [k, saved.settings[k]]));

  return { project, instanceId, resource, snapshotOf, usersSnapshotOf, operationMarker, finalBackupDescription, getInstance, runOperation, dumpRows, exportAndVerify, protectionOn, findFinalBackup, carried };
}

/** The helpers the Cloud SQL steps share, over one set of clients. */
export type CloudSqlInstance = ReturnType<typeof createCloudSqlInstance>;
