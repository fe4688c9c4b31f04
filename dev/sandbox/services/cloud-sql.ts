// Cloud SQL Admin API v1, as @google-cloud/sql's clients send it over REST. Mutations return a
// Cloud SQL Operation (not a google.longrunning one): PENDING, then RUNNING, then DONE once
// core.operationDelayMs has passed and its effect has finished, polled with
// GET /v1/projects/{p}/operations/{op} (google/cloud/sql/v1/cloud_sql_operations.proto).
//
// A database may be backed by a real Postgres database (seedSqlInstance's `backing`): then an export
// is a real plain-SQL dump of it, deleting the instance really drops its data (after taking the final
// backup as a dump), and restoreBackup and import really load a dump. Unbacked databases are empty.
import { randomBytes } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import { ApiError, badRequest, conflict, failedPrecondition, isDue, notFound, readBlob, writeBlob, type Route, type SandboxCore, type ServiceModule } from '../server';
import { withEnumNames } from './enum-names';
import { dropData, dumpToBuffer, loadDump } from './postgres-dump';
import { bucketAllows, liveObjectBody, putObjectFor } from './storage';
import { checkLabels, dict, own } from '../names';

const SQL = '@google-cloud/sql';
const bodyOf = <T = Record<string, any>>(req: { json(): unknown }, type: string): T => withEnumNames(SQL, `google.cloud.sql.v1.${type}`, req.json());

interface SqlOperation {
  json: Record<string, any>;
  project: string;
  instance: string;
  startedAt: string;
  effect: string;
  args?: Record<string, any>;
}

interface Backup extends Record<string, any> {
  name: string;
  /** Blob id of each backed database's dump, by database name (sandbox bookkeeping, not API fields). */
  dumps?: Record<string, string>;
  databases?: string[];
  users?: Array<Record<string, any>>;
}

interface SqlState {
  instances: Record<string, Record<string, any>>;
  /** Databases per instance ("project/instance"), kept beside the instance so its JSON stays the API's. */
  databases: Record<string, string[]>;
  users: Record<string, Array<Record<string, any>>>;
  backupRuns: Record<string, Array<Record<string, any>>>;
  /** Backups API resources (final backups): they outlive the instance. */
  backups: Backup[];
  operations: Record<string, SqlOperation>;
  /** "project/instance/database" → the Postgres database that holds its data. */
  backing: Record<string, string>;
  seq: number;
}

function sqlState(core: SandboxCore): SqlState {
  core.state.cloudSql ??= {};
  const st = core.state.cloudSql as SqlState;
  st.instances ??= {};
  st.databases ??= {};
  st.users ??= {};
  st.backupRuns ??= {};
  st.backups ??= [];
  st.operations ??= {};
  st.backing ??= {};
  st.seq ??= 0;
  return st;
}

const key = (project: string, instance: string) => `${project}/${instance}`;

export interface SeedSqlInstance {
  project: string;
  name: string;
  region: string;
  labels?: Record<string, string>;
  databases?: string[];
  deletionProtection?: boolean;
  tier?: string;
  databaseVersion?: string;
  /** Postgres connection strings holding the data of some of `databases`, by database name. */
  backing?: Record<string, string>;
  /** Database users besides `postgres` (Cloud SQL creates that one with every PostgreSQL instance). */
  users?: string[];
  /** Settings an operator set up: IP configuration, zone, maintenance window, backups, flags. */
  settings?: Record<string, any>;
}

/** A running instance with its databases, as if created long ago. */
export function seedSqlInstance(core: SandboxCore, s: SeedSqlInstance): Record<string, any> {
  const st = sqlState(core);
  const instance = newInstance(core, s.project, {
    name: s.name,
    region: s.region,
    databaseVersion: s.databaseVersion ?? 'POSTGRES_15',
    settings: { tier: s.tier ?? 'db-custom-1-3840', userLabels: s.labels ?? {}, deletionProtectionEnabled: s.deletionProtection ?? false, ...s.settings },
  });
  instance.state = 'RUNNABLE';
  const k = key(s.project, s.name);
  st.instances[k] = instance;
  st.databases[k] = ['postgres', ...(s.databases ?? [])];
  st.users[k] = [user(s.project, s.name, 'postgres'), ...(s.users ?? []).map((u) => user(s.project, s.name, u))];
  for (const b of Object.keys(st.backing)) if (b.startsWith(`${k}/`)) delete st.backing[b];
  for (const [db, url] of Object.entries(s.backing ?? {})) st.backing[`${k}/${db}`] = url;
  core.save();
  return instance;
}

function user(project: string, instance: string, name: string, type = 'BUILT_IN'): Record<string, any> {
  return { kind: 'sql#user', name, host: '', instance, project, type };
}

function newInstance(core: SandboxCore, project: string, body: Record<string, any>): Record<string, any> {
  const settings = body.settings ?? {};
  const region = body.region ?? 'us-central1';
  return {
    kind: 'sql#instance',
    name: body.name,
    project,
    region,
    gceZone: settings.locationPreference?.zone ?? `${region}-a`,
    databaseVersion: body.databaseVersion ?? 'POSTGRES_15',
    state: 'PENDING_CREATE',
    backendType: 'SECOND_GEN',
    instanceType: 'CLOUD_SQL_INSTANCE',
    connectionName: `${project}:${region}:${body.name}`,
    selfLink: `${core.url}/v1/projects/${project}/instances/${body.name}`,
    // Each instance gets its own service account, so a recreated instance has a new one that the
    // backup bucket does not know (https://cloud.google.com/sql/docs/postgres/import-export/import-export-sql).
    serviceAccountEmailAddress: `p${projectNumber(project)}-${randomBytes(3).toString('hex')}@gcp-sa-cloud-sql.iam.gserviceaccount.com`,
    createTime: new Date().toISOString(),
    settings: {
      kind: 'sql#settings',
      tier: settings.tier ?? 'db-custom-1-3840',
      userLabels: settings.userLabels ?? {},
      deletionProtectionEnabled: settings.deletionProtectionEnabled ?? false,
      activationPolicy: settings.activationPolicy ?? 'ALWAYS',
      availabilityType: settings.availabilityType ?? 'ZONAL',
      dataDiskType: settings.dataDiskType ?? 'PD_SSD',
      dataDiskSizeGb: settings.dataDiskSizeGb ?? '10',
      ipConfiguration: settings.ipConfiguration ?? { ipv4Enabled: true },
      locationPreference: settings.locationPreference ?? { zone: `${region}-a` },
      ...(settings.maintenanceWindow ? { maintenanceWindow: settings.maintenanceWindow } : {}),
      backupConfiguration: settings.backupConfiguration ?? { enabled: false },
      ...(settings.databaseFlags ? { databaseFlags: settings.databaseFlags } : {}),
      ...(settings.edition ? { edition: settings.edition } : {}),
      settingsVersion: '1',
    },
  };
}

function projectNumber(project: string): string {
  let h = 0;
  for (const c of project) h = (h * 31 + c.charCodeAt(0)) % 1_000_000_000;
  return String(100_000_000_000 + h);
}

function parseGs(uri: string): { bucket: string; name: string } | undefined {
  const m = /^gs:\/\/([^/]+)\/(.+)$/.exec(uri ?? '');
  return m ? { bucket: m[1], name: m[2] } : undefined;
}

export const cloudSqlService: ServiceModule = (core) => {
  const st = () => sqlState(core);
  const now = () => new Date().toISOString();
  // "After you delete an instance, it might continue to appear in your project … with a 'Being
  // deleted' status … and disappears completely after a brief period" (https://cloud.google.com/sql/docs/postgres/delete-instance).
  const pendingDeleteMs = () => core.pendingDeleteMs;
  /** Effects of due operations that are still running (an export takes as long as its dump). */
  const inflight = new Map<string, Promise<void>>();

  const instanceOf = (project: string, name: string) => {
    const i = st().instances[key(project, name)];
    if (!i) throw notFound(`The Cloud SQL instance ${name} does not exist.`);
    return i;
  };
  const runnable = (project: string, name: string) => {
    const i = instanceOf(project, name);
    if (i.state === 'PENDING_DELETE') throw failedPrecondition(`The Cloud SQL instance ${name} is being deleted.`);
    return i;
  };

  const startOperation = (project: string, instance: string, operationType: string, effect: string, extra: Record<string, any> = {}, args?: Record<string, any>) => {
    // One operation per instance at a time; a second is refused with 409 operationInProgress
    // (https://cloud.google.com/sql/docs/postgres/admin-api-error-messages).
    const busy = Object.values(st().operations).find((o) => o.project === project && o.instance === instance && o.json.status !== 'DONE');
    if (busy) throw new ApiError(409, 'ABORTED', 'Operation failed because another operation was already in progress. Try your request after the current operation is complete.', 'operationInProgress');
    const id = core.nextId('op').replace(/[^a-z0-9-]/g, '');
    const json = {
      kind: 'sql#operation',
      name: id,
      status: 'PENDING',
      operationType,
      user: 'worker@sandbox.iam.gserviceaccount.com',
      insertTime: now(),
      targetId: instance,
      targetProject: project,
      targetLink: `${core.url}/v1/projects/${project}/instances/${instance}`,
      selfLink: `${core.url}/v1/projects/${project}/operations/${id}`,
      ...extra,
    };
    st().operations[key(project, id)] = { json, project, instance, startedAt: now(), effect, args };
    return json;
  };

  /** Starts the effect of every due operation (each once) and ends PENDING_DELETE periods that are over. */
  const settleDue = () => {
    for (const [k, op] of Object.entries(st().operations)) {
      if (op.json.status === 'DONE' || inflight.has(k)) continue;
      if (op.json.status === 'PENDING') Object.assign(op.json, { status: 'RUNNING', startTime: now() });
      if (!isDue(op.startedAt, core.operationDelayMs)) continue;
      inflight.set(
        k,
        apply(op).then(
          (error) => finish(k, op, error),
          (err: Error) => finish(k, op, err.message),
        ),
      );
    }
    for (const [k, i] of Object.entries(st().instances)) {
      if (i.state === 'PENDING_DELETE' && Date.parse(i.pendingDeleteUntil) <= Date.now()) {
        delete st().instances[k];
        delete st().databases[k];
        delete st().users[k];
        core.save();
      }
    }
  };

  const finish = (k: string, op: SqlOperation, error: string | undefined) => {
    Object.assign(op.json, { status: 'DONE', endTime: now() });
    if (error) op.json.error = { kind: 'sql#operationErrors', errors: [{ kind: 'sql#operationError', code: 'ERROR_RDBMS', message: error }] };
    inflight.delete(k);
    core.save();
  };

  const backingOf = (project: string, instance: string, db: string): string | undefined => st().backing[`${key(project, instance)}/${db}`];

  /** Whether the instance's own service account may do `permission` on the bucket (exports write, imports read). */
  const serviceAccountMay = (instance: Record<string, any>, bucket: string, permission: string) => bucketAllows(core, bucket, `serviceAccount:${instance.serviceAccountEmailAddress}`, permission);

  const apply = async (op: SqlOperation): Promise<string | undefined> => {
    const k = key(op.project, op.instance);
    const instance = st().instances[k];
    switch (op.effect) {
      case 'create':
        if (instance) instance.state = 'RUNNABLE';
        return;
      case 'patch': {
        if (!instance) return `instance ${op.instance} no longer exists`;
        const body = op.args!.body as Record<string, any>;
        const { settings, ...rest } = body;
        for (const f of ['databaseVersion', 'region', 'name', 'project', 'kind', 'state', 'selfLink', 'connectionName', 'createTime', 'serviceAccountEmailAddress'] as const) delete rest[f];
        Object.assign(instance, rest);
        if (settings) {
          const merged = { ...instance.settings, ...settings };
          if (settings.userLabels) merged.userLabels = { ...instance.settings.userLabels, ...settings.userLabels };
          merged.settingsVersion = String(Number(instance.settings.settingsVersion ?? 1) + 1);
          instance.settings = merged;
        }
        return;
      }
      case 'delete': {
        if (!instance) return;
        const databases = st().databases[k] ?? [];
        if (op.args?.finalBackup) {
          // The final backup holds every database and user, and outlives the instance
          // (https://cloud.google.com/sql/docs/postgres/backup-recovery/final-backup).
          const id = core.nextId('final').replace(/[^a-z0-9-]/g, '');
          // Database names are the user's ("__proto__" is a valid PostgreSQL name): a dictionary without a prototype.
          const dumps = dict<string>();
          for (const db of databases) {
            const url = backingOf(op.project, op.instance, db);
            if (!url) continue;
            dumps[db] = `cloudsql-backup-${id}-${db}`;
            writeBlob(core, dumps[db], await dumpToBuffer(url, { gzip: true, label: `final backup of ${op.instance}/${db}` }));
          }
          const ttl = Number(op.args.finalBackupTtlDays ?? 30);
          const { state: _s, pendingDeleteUntil: _p, ...settingsSource } = instance;
          st().backups.push({
            kind: 'sql#backup',
            name: `projects/${op.project}/backups/${id}`,
            selfLink: `${core.url}/v1/projects/${op.project}/backups/${id}`,
            type: 'FINAL',
            state: 'SUCCESSFUL',
            description: op.args.finalBackupDescription ?? '',
            instance: op.instance,
            location: instance.region,
            databaseVersion: instance.databaseVersion,
            backupInterval: { startTime: op.startedAt, endTime: now() },
            expiryTime: new Date(Date.now() + ttl * 86_400_000).toISOString(),
            instanceDeletionTime: now(),
            instanceSettings: structuredClone(settingsSource),
            dumps,
            databases: [...databases],
            users: structuredClone(st().users[k] ?? []),
          });
        }
        // Deleting an instance deletes its data and its backup runs; only a final backup outlives it.
        for (const db of databases) {
          const url = backingOf(op.project, op.instance, db);
          if (url) await dropData(url);
        }
        delete st().backupRuns[k];
        Object.assign(instance, { state: 'PENDING_DELETE', pendingDeleteUntil: new Date(Date.now() + pendingDeleteMs()).toISOString() });
        return;
      }
      case 'createDatabase': {
        const dbs = (st().databases[k] ??= ['postgres']);
        if (!dbs.includes(op.args!.database)) dbs.push(op.args!.database);
        return;
      }
      case 'createUser': {
        const users = (st().users[k] ??= []);
        if (!users.some((u) => u.name === op.args!.name)) users.push(user(op.project, op.instance, op.args!.name, op.args!.type ?? 'BUILT_IN'));
        return;
      }
      case 'backup': {
        const run = (st().backupRuns[k] ?? []).find((r) => r.id === op.args!.id);
        if (run) Object.assign(run, { status: 'SUCCESSFUL', startTime: op.startedAt, endTime: now() });
        return;
      }
      case 'export': {
        if (!instance) return `instance ${op.instance} no longer exists`;
        const { uri, database } = op.args as { uri: string; database: string };
        const target = parseGs(uri)!;
        if (!core.state.storage?.buckets?.[target.bucket]) return `The bucket ${target.bucket} does not exist.`;
        if (!serviceAccountMay(instance, target.bucket, 'storage.objects.create')) {
          return `The service account ${instance.serviceAccountEmailAddress} does not have the required permissions for the bucket ${target.bucket}: grant it roles/storage.objectAdmin.`;
        }
        if (!(st().databases[k] ?? []).includes(database)) return `database "${database}" does not exist`;
        // Cloud SQL compresses the export when the object name ends in .gz.
        const gzip = uri.endsWith('.gz');
        const url = backingOf(op.project, op.instance, database);
        const body = url ? await dumpToBuffer(url, { gzip, label: `Cloud SQL export of ${op.instance}/${database}` }) : await emptyDump(gzip);
        putObjectFor(core, target.bucket, target.name, body, gzip ? 'application/gzip' : 'application/sql');
        return;
      }
      case 'import': {
        if (!instance) return `instance ${op.instance} no longer exists`;
        const { uri, database } = op.args as { uri: string; database: string };
        const source = parseGs(uri)!;
        if (!serviceAccountMay(instance, source.bucket, 'storage.objects.get')) {
          return `The service account ${instance.serviceAccountEmailAddress} does not have the required permissions for the bucket ${source.bucket}: grant it roles/storage.objectViewer.`;
        }
        const body = liveObjectBody(core, source.bucket, source.name);
        if (!body) return `The import file ${uri} was not found.`;
        const gzip = uri.endsWith('.gz');
        try {
          if (gzip) gunzipSync(body);
        } catch {
          return `The import file ${uri} is not a valid gzip file.`;
        }
        // As on Cloud SQL for PostgreSQL: a SQL import goes into a database that must already exist.
        if (!(st().databases[k] ?? []).includes(database)) return `database "${database}" does not exist on ${op.instance}: create it before importing`;
        const url = backingOf(op.project, op.instance, database);
        if (url) await loadDump(url, body, { gzip });
        return;
      }
      case 'restoreBackup': {
        if (!instance) return `instance ${op.instance} no longer exists`;
        const backup = st().backups.find((b) => b.name === op.args!.backup);
        if (!backup) return `backup ${op.args!.backup} no longer exists`;
        // "The restore operation overwrites all data on the target instance" and brings its
        // databases and users (https://cloud.google.com/sql/docs/postgres/backup-recovery/restore).
        st().databases[k] = [...(backup.databases ?? ['postgres'])];
        st().users[k] = (backup.users ?? []).map((u) => ({ ...u, instance: op.instance }));
        for (const db of backup.databases ?? []) {
          const url = backingOf(op.project, op.instance, db) ?? backingOf(op.project, backup.instance, db);
          if (!url) continue;
          st().backing[`${k}/${db}`] = url;
          await dropData(url);
          const blob = own(backup.dumps, db);
          const dump = blob ? readBlob(core, blob) : undefined;
          if (dump) await loadDump(url, dump, { gzip: true });
        }
        instance.state = 'RUNNABLE';
        return;
      }
    }
    return;
  };

  const INSTANCES = /^\/v1\/projects\/([^/]+)\/instances$/;
  const INSTANCE = /^\/v1\/projects\/([^/]+)\/instances\/([^/]+)$/;
  const routes: Route[] = [
    {
      method: 'GET',
      path: INSTANCE,
      handle: (req) => {
        settleDue();
        const { pendingDeleteUntil: _p, ...json } = instanceOf(req.params[0], req.params[1]);
        return { json };
      },
    },
    {
      method: 'GET',
      path: INSTANCES,
      handle: (req) => {
        settleDue();
        const items = Object.values(st().instances)
          .filter((i) => i.project === req.params[0])
          .map(({ pendingDeleteUntil: _p, ...i }) => i);
        return { json: { kind: 'sql#instancesList', items } };
      },
    },
    {
      method: 'POST',
      path: INSTANCES,
      handle: (req) => {
        settleDue();
        const [project] = req.params;
        const body = bodyOf<Record<string, any>>(req, 'DatabaseInstance');
        if (!body.name) throw badRequest('instance name is required');
        checkLabels(body.settings?.userLabels, `instance ${body.name}`);
        if (st().instances[key(project, body.name)]) throw conflict(`The Cloud SQL instance ${body.name}`);
        st().instances[key(project, body.name)] = newInstance(core, project, body);
        st().databases[key(project, body.name)] = ['postgres'];
        st().users[key(project, body.name)] = [user(project, body.name, 'postgres')];
        return { json: startOperation(project, body.name, 'CREATE', 'create') };
      },
    },
    {
      method: 'PATCH',
      path: INSTANCE,
      handle: (req) => {
        settleDue();
        const [project, name] = req.params;
        runnable(project, name);
        const body = bodyOf<Record<string, any>>(req, 'DatabaseInstance');
        checkLabels(body.settings?.userLabels, `instance ${name}`);
        return { json: startOperation(project, name, 'UPDATE', 'patch', {}, { body }) };
      },
    },
    {
      method: 'DELETE',
      path: INSTANCE,
      handle: (req) => {
        settleDue();
        const [project, name] = req.params;
        const instance = runnable(project, name);
        // "If deletion protection is enabled on an instance, you must disable it before deleting" (delete-instance).
        if (instance.settings?.deletionProtectionEnabled) {
          throw failedPrecondition(`The instance ${name} is protected from deletion: set settings.deletionProtectionEnabled to false first.`);
        }
        const q = (n: string) => req.query.get(n) ?? req.query.get(n.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`));
        const finalBackup = q('enableFinalBackup') === 'true';
        const ttl = q('finalBackupTtlDays');
        // instances.delete: the final backup's retention is 1 to 365 days (gcloud sql instances delete --final-backup-retention-days).
        if (ttl && (Number(ttl) < 1 || Number(ttl) > 365)) throw badRequest('finalBackupTtlDays must be between 1 and 365');
        return {
          json: startOperation(project, name, 'DELETE', 'delete', {}, { finalBackup, finalBackupTtlDays: ttl ? Number(ttl) : undefined, finalBackupDescription: q('finalBackupDescription') ?? undefined }),
        };
      },
    },
    {
      method: 'POST',
      path: /^\/v1\/projects\/([^/]+)\/instances\/([^/]+)\/export$/,
      handle: (req) => {
        settleDue();
        const [project, name] = req.params;
        runnable(project, name);
        const ctx = bodyOf<{ exportContext?: Record<string, any> }>(req, 'InstancesExportRequest').exportContext;
        if (!ctx?.uri || !parseGs(ctx.uri)) throw badRequest('exportContext.uri must be a gs://bucket/object URI');
        const fileType = ctx.fileType ?? 'SQL';
        if (fileType !== 'SQL') throw badRequest(`the sandbox exports SQL only, not ${fileType}`);
        const databases: string[] = ctx.databases ?? [];
        // ExportContext.databases: "PostgreSQL instances: you must specify one database to be exported" (cloud_sql_resources.proto).
        if (databases.length !== 1) throw badRequest('exportContext.databases must name exactly one database (PostgreSQL)');
        return { json: startOperation(project, name, 'EXPORT', 'export', { exportContext: { kind: 'sql#exportContext', ...ctx, fileType } }, { uri: ctx.uri, database: databases[0] }) };
      },
    },
    {
      method: 'GET',
      path: /^\/v1\/projects\/([^/]+)\/instances\/([^/]+)\/databases\/([^/]+)$/,
      handle: (req) => {
        settleDue();
        const [project, name, database] = req.params;
        runnable(project, name);
        if (!(st().databases[key(project, name)] ?? []).includes(database)) throw notFound(`database ${database} on ${name}`);
        return { json: { kind: 'sql#database', name: database, instance: name, project, charset: 'UTF8', collation: 'en_US.UTF8' } };
      },
    },
    {
      method: 'POST',
      path: /^\/v1\/projects\/([^/]+)\/instances\/([^/]+)\/databases$/,
      handle: (req) => {
        settleDue();
        const [project, name] = req.params;
        runnable(project, name);
        const database = req.json<{ name?: string }>().name;
        if (!database) throw badRequest('Database.name is required');
        if ((st().databases[key(project, name)] ?? []).includes(database)) throw conflict(`database ${database} on ${name}`);
        return { json: startOperation(project, name, 'CREATE_DATABASE', 'createDatabase', {}, { database }) };
      },
    },
    {
      method: 'GET',
      path: /^\/v1\/projects\/([^/]+)\/instances\/([^/]+)\/users$/,
      handle: (req) => {
        settleDue();
        const [project, name] = req.params;
        runnable(project, name);
        return { json: { kind: 'sql#usersList', items: st().users[key(project, name)] ?? [] } };
      },
    },
    {
      method: 'POST',
      path: /^\/v1\/projects\/([^/]+)\/instances\/([^/]+)\/users$/,
      handle: (req) => {
        settleDue();
        const [project, name] = req.params;
        runnable(project, name);
        const body = bodyOf<{ name?: string; type?: string }>(req, 'User');
        if (!body.name) throw badRequest('User.name is required');
        if ((st().users[key(project, name)] ?? []).some((u) => u.name === body.name)) throw conflict(`user ${body.name} on ${name}`);
        return { json: startOperation(project, name, 'CREATE_USER', 'createUser', {}, { name: body.name, type: body.type }) };
      },
    },
    {
      method: 'POST',
      path: /^\/v1\/projects\/([^/]+)\/instances\/([^/]+)\/import$/,
      handle: (req) => {
        settleDue();
        const [project, name] = req.params;
        runnable(project, name);
        const ctx = bodyOf<{ importContext?: Record<string, any> }>(req, 'InstancesImportRequest').importContext;
        if (!ctx?.uri || !parseGs(ctx.uri)) throw badRequest('importContext.uri must be a gs://bucket/object URI');
        if (!ctx.database) throw badRequest('importContext.database is required for a SQL import into PostgreSQL');
        return { json: startOperation(project, name, 'IMPORT', 'import', { importContext: { kind: 'sql#importContext', ...ctx, fileType: ctx.fileType ?? 'SQL' } }, { uri: ctx.uri, database: ctx.database }) };
      },
    },
    {
      // instances.restoreBackup with a Backup resource name (cloud_sql_instances.proto InstancesRestoreBackupRequest).
      method: 'POST',
      path: /^\/v1\/projects\/([^/]+)\/instances\/([^/]+)\/restoreBackup$/,
      handle: (req) => {
        settleDue();
        const [project, name] = req.params;
        const body = bodyOf<{ backup?: string; restoreBackupContext?: unknown; restoreInstanceSettings?: Record<string, any> }>(req, 'InstancesRestoreBackupRequest');
        if (!body.backup) throw badRequest('the sandbox restores from a Backup resource name ("backup") only');
        const backup = st().backups.find((b) => b.name === body.backup && (!b.expiryTime || Date.parse(b.expiryTime) > Date.now()));
        if (!backup) throw notFound(`The backup ${body.backup}`);
        const existing = st().instances[key(project, name)];
        if (existing) {
          if (existing.state === 'PENDING_DELETE') throw conflict(`The Cloud SQL instance ${name}`);
          // "You can use this field to restore new instances only" (restore_instance_settings).
          if (body.restoreInstanceSettings) throw badRequest('restoreInstanceSettings applies to a restore to a new instance only');
          return { json: startOperation(project, name, 'RESTORE_VOLUME', 'restoreBackup', {}, { backup: backup.name }) };
        }
        // A restore to a new instance takes the source instance's settings, overridden by
        // restoreInstanceSettings; flags are not restored and backups return to their defaults
        // (https://cloud.google.com/sql/docs/postgres/backup-recovery/restore).
        const source = backup.instanceSettings ?? {};
        const override = body.restoreInstanceSettings ?? {};
        if (override.databaseVersion && override.databaseVersion !== backup.databaseVersion) throw badRequest("restoreInstanceSettings can't change the instance's major database version");
        const { databaseFlags: _f, backupConfiguration: _b, ...inherited } = source.settings ?? {};
        const created = newInstance(core, project, {
          name,
          region: override.region ?? source.region,
          databaseVersion: backup.databaseVersion,
          settings: { ...inherited, ...(override.settings ?? {}) },
        });
        st().instances[key(project, name)] = created;
        st().databases[key(project, name)] = ['postgres'];
        st().users[key(project, name)] = [];
        return { json: startOperation(project, name, 'RESTORE_VOLUME', 'restoreBackup', {}, { backup: backup.name }) };
      },
    },
    {
      // Backups API (cloud_sql_backups.proto ListBackups): filter terms such as "instance:abc AND type:FINAL".
      method: 'GET',
      path: /^\/v1\/projects\/([^/]+)\/backups$/,
      handle: (req) => {
        settleDue();
        const terms = [...(req.query.get('filter') ?? '').matchAll(/(\w+)\s*[:=]\s*"?([^\s"]+)"?/g)].filter(([, k]) => k !== 'AND');
        const backups = st()
          .backups.filter((b) => b.name.startsWith(`projects/${req.params[0]}/backups/`) && (!b.expiryTime || Date.parse(b.expiryTime) > Date.now()))
          .filter((b) => terms.every(([, k, v]) => String(b[k]) === v))
          .map(publicBackup);
        return { json: { backups } };
      },
    },
    {
      method: 'GET',
      path: /^\/v1\/projects\/([^/]+)\/backups\/([^/]+)$/,
      handle: (req) => {
        settleDue();
        const b = st().backups.find((x) => x.name === `projects/${req.params[0]}/backups/${req.params[1]}`);
        if (!b) throw notFound(`The backup ${req.params[1]}`);
        return { json: publicBackup(b) };
      },
    },
    {
      method: 'POST',
      path: /^\/v1\/projects\/([^/]+)\/instances\/([^/]+)\/backupRuns$/,
      handle: (req) => {
        settleDue();
        const [project, name] = req.params;
        const instance = runnable(project, name);
        const body = bodyOf<Record<string, any>>(req, 'BackupRun');
        const id = String(Date.now() * 1000 + ++st().seq);
        const op = startOperation(project, name, 'BACKUP_VOLUME', 'backup', { backupContext: { kind: 'sql#backupContext', backupId: id } }, { id });
        (st().backupRuns[key(project, name)] ??= []).unshift({
          kind: 'sql#backupRun',
          id,
          status: 'ENQUEUED',
          type: 'ON_DEMAND',
          description: body.description ?? '',
          enqueuedTime: now(),
          windowStartTime: now(),
          instance: name,
          location: instance.region,
          databaseVersion: instance.databaseVersion,
          backupKind: 'SNAPSHOT',
          selfLink: `${core.url}/v1/projects/${project}/instances/${name}/backupRuns/${id}`,
        });
        return { json: op };
      },
    },
    {
      method: 'GET',
      path: /^\/v1\/projects\/([^/]+)\/instances\/([^/]+)\/backupRuns$/,
      handle: (req) => {
        settleDue();
        const [project, name] = req.params;
        instanceOf(project, name);
        return { json: { kind: 'sql#backupRunsList', items: st().backupRuns[key(project, name)] ?? [] } };
      },
    },
    {
      method: 'GET',
      path: /^\/v1\/projects\/([^/]+)\/operations\/([^/]+)$/,
      handle: (req) => {
        settleDue();
        const op = st().operations[key(req.params[0], req.params[1])];
        if (!op) throw notFound(`The operation ${req.params[1]}`);
        return { json: op.json };
      },
    },
    {
      // operations.list: "in the reverse chronological order of the start time" (cloud_sql_operations.proto).
      method: 'GET',
      path: /^\/v1\/projects\/([^/]+)\/operations$/,
      handle: (req) => {
        settleDue();
        const instance = req.query.get('instance');
        const items = Object.values(st().operations)
          .filter((o) => o.project === req.params[0] && (!instance || o.instance === instance))
          .map((o) => o.json)
          .reverse();
        return { json: { kind: 'sql#operationsList', items } };
      },
    },
  ];
  return routes;
};

function publicBackup(b: Backup): Record<string, any> {
  const { dumps: _d, databases: _db, users: _u, ...json } = b;
  return json;
}

/** An export of a database the sandbox holds no data for: a valid, empty dump. */
async function emptyDump(gzip: boolean): Promise<Buffer> {
  const { gzipSync } = await import('node:zlib');
  const text = Buffer.from('--\n-- PostgreSQL database dump\n--\n\nSET statement_timeout = 0;\n\n--\n-- PostgreSQL database dump complete\n--\n');
  return gzip ? gzipSync(text) : text;
}

/** Final backups of an instance, as a test or the demo would look them up. */
export function finalBackupsOf(core: SandboxCore, project: string, instance: string): Backup[] {
  return sqlState(core).backups.filter((b) => b.instance === instance && b.name.startsWith(`projects/${project}/`));
}
