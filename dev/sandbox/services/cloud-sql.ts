// Cloud SQL Admin API v1, as @google-cloud/sql's SqlInstancesServiceClient,
// SqlOperationsServiceClient and SqlBackupRunsServiceClient send it over REST. Mutations return a
// Cloud SQL Operation (not a google.longrunning one): PENDING, then RUNNING, then DONE after
// core.operationDelayMs, polled with GET /v1/projects/{p}/operations/{op}. As in Cloud SQL, one
// instance runs one operation at a time; a second is refused with 409.
import { gzipSync, gunzipSync } from 'node:zlib';
import { ApiError, badRequest, conflict, failedPrecondition, isDue, notFound, readBlob, type Route, type SandboxCore, type ServiceModule } from '../server';
import { withEnumNames } from './enum-names';
import { seedBucket } from './storage';

const SQL = '@google-cloud/sql';
const bodyOf = <T = Record<string, any>>(req: { json(): unknown }, type: string): T => withEnumNames(SQL, `google.cloud.sql.v1.${type}`, req.json());

interface SqlOperation {
  json: Record<string, any>;
  project: string;
  instance: string;
  startedAt: string;
  /** Applied once when the operation becomes due; returns an error message to fail the operation. */
  effect: string;
  args?: Record<string, any>;
}

interface SqlState {
  instances: Record<string, Record<string, any>>;
  /** Databases per instance ("project/instance"), kept beside the instance so its JSON stays the API's. */
  databases: Record<string, string[]>;
  backupRuns: Record<string, Array<Record<string, any>>>;
  /** Final backups taken on delete: they outlive the instance. */
  finalBackups: Array<Record<string, any>>;
  operations: Record<string, SqlOperation>;
  seq: number;
}

function sqlState(core: SandboxCore): SqlState {
  core.state.cloudSql ??= { instances: {}, databases: {}, backupRuns: {}, finalBackups: [], operations: {}, seq: 0 };
  return core.state.cloudSql as SqlState;
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
}

/** A running instance with its databases, as if created long ago. */
export function seedSqlInstance(core: SandboxCore, s: SeedSqlInstance): Record<string, any> {
  const st = sqlState(core);
  const instance = newInstance(core, s.project, {
    name: s.name,
    region: s.region,
    databaseVersion: s.databaseVersion ?? 'POSTGRES_15',
    settings: { tier: s.tier ?? 'db-custom-1-3840', userLabels: s.labels ?? {}, deletionProtectionEnabled: s.deletionProtection ?? false },
  });
  instance.state = 'RUNNABLE';
  st.instances[key(s.project, s.name)] = instance;
  st.databases[key(s.project, s.name)] = ['postgres', ...(s.databases ?? [])];
  core.save();
  return instance;
}

function newInstance(core: SandboxCore, project: string, body: Record<string, any>): Record<string, any> {
  const settings = body.settings ?? {};
  const region = body.region ?? 'us-central1';
  return {
    kind: 'sql#instance',
    name: body.name,
    project,
    region,
    gceZone: `${region}-a`,
    databaseVersion: body.databaseVersion ?? 'POSTGRES_15',
    state: 'PENDING_CREATE',
    backendType: 'SECOND_GEN',
    instanceType: 'CLOUD_SQL_INSTANCE',
    connectionName: `${project}:${region}:${body.name}`,
    selfLink: `${core.url}/v1/projects/${project}/instances/${body.name}`,
    serviceAccountEmailAddress: `p123-abcd@gcp-sa-cloud-sql.iam.gserviceaccount.com`,
    createTime: new Date().toISOString(),
    settings: {
      kind: 'sql#settings',
      tier: settings.tier ?? 'db-custom-1-3840',
      userLabels: settings.userLabels ?? {},
      deletionProtectionEnabled: settings.deletionProtectionEnabled ?? false,
      activationPolicy: settings.activationPolicy ?? 'ALWAYS',
      availabilityType: settings.availabilityType ?? 'ZONAL',
      dataDiskSizeGb: settings.dataDiskSizeGb ?? '10',
      dataDiskType: settings.dataDiskType ?? 'PD_SSD',
      backupConfiguration: settings.backupConfiguration ?? { enabled: true, startTime: '03:00', kind: 'sql#backupConfiguration' },
      settingsVersion: '1',
    },
  };
}

/** The dump an export writes: real enough to be a gzip SQL file naming its database. */
function dumpFor(database: string, instance: string): Buffer {
  const sql = [
    '--',
    `-- PostgreSQL database dump of "${database}" from Cloud SQL instance ${instance} (sandbox)`,
    '--',
    'SET statement_timeout = 0;',
    `CREATE TABLE public.experiments (experiment_id integer NOT NULL, name character varying(256) NOT NULL);`,
    `COPY public.experiments (experiment_id, name) FROM stdin;`,
    '0\tDefault',
    '\\.',
    '',
  ].join('\n');
  return gzipSync(Buffer.from(sql));
}

function liveObject(core: SandboxCore, bucket: string, name: string): Buffer | undefined {
  const b = core.state.storage?.buckets?.[bucket];
  const o = (b?.objects as Array<{ meta: Record<string, any>; blob: string }> | undefined)?.find((x) => x.meta.name === name && !x.meta.timeDeleted && !x.meta.softDeleteTime);
  return o ? readBlob(core, o.blob) : undefined;
}

function parseGs(uri: string): { bucket: string; name: string } | undefined {
  const m = /^gs:\/\/([^/]+)\/(.+)$/.exec(uri ?? '');
  return m ? { bucket: m[1], name: m[2] } : undefined;
}

export const cloudSqlService: ServiceModule = (core) => {
  const st = () => sqlState(core);
  const now = () => new Date().toISOString();

  const instanceOf = (project: string, name: string) => {
    const i = st().instances[key(project, name)];
    if (!i) throw notFound(`The Cloud SQL instance ${name} does not exist.`);
    return i;
  };

  const startOperation = (project: string, instance: string, operationType: string, effect: string, extra: Record<string, any> = {}, args?: Record<string, any>) => {
    const busy = Object.values(st().operations).find((o) => o.project === project && o.instance === instance && o.json.status !== 'DONE');
    if (busy) throw new ApiError(409, 'ABORTED', `Operation failed because another operation (${busy.json.name}) was already in progress on ${instance}. Try again later.`);
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

  /** Applies due operations, in the order they started. */
  const settleDue = () => {
    for (const op of Object.values(st().operations)) {
      if (op.json.status === 'DONE') continue;
      if (!isDue(op.startedAt, core.operationDelayMs)) {
        if (op.json.status === 'PENDING') Object.assign(op.json, { status: 'RUNNING', startTime: now() });
        continue;
      }
      let error: string | undefined;
      try {
        error = apply(op);
      } catch (err) {
        error = (err as Error).message;
      }
      Object.assign(op.json, { status: 'DONE', startTime: op.json.startTime ?? op.startedAt, endTime: now() });
      if (error) op.json.error = { kind: 'sql#operationErrors', errors: [{ kind: 'sql#operationError', code: 'ERROR_RDBMS', message: error }] };
      core.save();
    }
  };

  const apply = (op: SqlOperation): string | undefined => {
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
        for (const f of ['databaseVersion', 'region', 'name', 'project', 'kind', 'state', 'selfLink', 'connectionName', 'createTime'] as const) delete rest[f];
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
        if (op.args?.finalBackup) {
          st().finalBackups.push({
            name: `projects/${op.project}/backups/${core.nextId('final')}`,
            instance: op.instance,
            type: 'FINAL',
            state: 'SUCCESSFUL',
            description: op.args.finalBackupDescription ?? '',
            ttlDays: op.args.finalBackupTtlDays,
            createTime: now(),
          });
        }
        // Deleting an instance deletes its backup runs; only a final backup outlives it.
        delete st().instances[k];
        delete st().databases[k];
        delete st().backupRuns[k];
        return;
      }
      case 'createDatabase': {
        const dbs = (st().databases[k] ??= ['postgres']);
        if (!dbs.includes(op.args!.database)) dbs.push(op.args!.database);
        return;
      }
      case 'backup': {
        const run = (st().backupRuns[k] ?? []).find((r) => r.id === op.args!.id);
        if (run) Object.assign(run, { status: 'SUCCESSFUL', startTime: op.startedAt, endTime: now() });
        return;
      }
      case 'export': {
        const { uri, databases } = op.args as { uri: string; databases: string[] };
        const target = parseGs(uri)!;
        if (!core.state.storage?.buckets?.[target.bucket]) return `The bucket ${target.bucket} does not exist or the instance's service account has no access to it.`;
        const missing = databases.filter((d) => !(st().databases[k] ?? []).includes(d));
        if (missing.length) return `database "${missing[0]}" does not exist`;
        seedBucket(core, { name: target.bucket, objects: { [target.name]: dumpFor(databases.join(','), op.instance) } });
        return;
      }
      case 'import': {
        const { uri, database } = op.args as { uri: string; database: string };
        const source = parseGs(uri)!;
        const body = liveObject(core, source.bucket, source.name);
        if (!body) return `The import file ${uri} was not found or the instance's service account has no access to it.`;
        try {
          if (uri.endsWith('.gz')) gunzipSync(body);
        } catch {
          return `The import file ${uri} is not a valid gzip file.`;
        }
        // As on Cloud SQL for PostgreSQL: a SQL import goes into a database that must already exist.
        if (!(st().databases[k] ?? []).includes(database)) return `database "${database}" does not exist on ${op.instance}: create it before importing`;
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
        return { json: instanceOf(req.params[0], req.params[1]) };
      },
    },
    {
      method: 'GET',
      path: INSTANCES,
      handle: (req) => {
        settleDue();
        const items = Object.values(st().instances).filter((i) => i.project === req.params[0]);
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
        if (st().instances[key(project, body.name)]) throw conflict(`The Cloud SQL instance ${body.name}`);
        st().instances[key(project, body.name)] = newInstance(core, project, body);
        st().databases[key(project, body.name)] = ['postgres'];
        return { json: startOperation(project, body.name, 'CREATE', 'create') };
      },
    },
    {
      method: 'PATCH',
      path: INSTANCE,
      handle: (req) => {
        settleDue();
        const [project, name] = req.params;
        instanceOf(project, name);
        return { json: startOperation(project, name, 'UPDATE', 'patch', {}, { body: bodyOf(req, 'DatabaseInstance') }) };
      },
    },
    {
      method: 'DELETE',
      path: INSTANCE,
      handle: (req) => {
        settleDue();
        const [project, name] = req.params;
        const instance = instanceOf(project, name);
        if (instance.settings?.deletionProtectionEnabled) {
          throw failedPrecondition(`The instance ${name} is protected from deletion: set settings.deletionProtectionEnabled to false first.`);
        }
        const q = (n: string) => req.query.get(n) ?? req.query.get(n.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`));
        const finalBackup = q('enableFinalBackup') === 'true';
        const ttl = q('finalBackupTtlDays');
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
        instanceOf(project, name);
        const ctx = bodyOf<{ exportContext?: Record<string, any> }>(req, 'InstancesExportRequest').exportContext;
        if (!ctx?.uri || !parseGs(ctx.uri)) throw badRequest('exportContext.uri must be a gs://bucket/object URI');
        const fileType = ctx.fileType ?? 'SQL';
        if (fileType !== 'SQL') throw badRequest(`the sandbox exports SQL only, not ${fileType}`);
        const databases: string[] = ctx.databases ?? [];
        if (!databases.length) throw badRequest('exportContext.databases must name the database to export (PostgreSQL)');
        return { json: startOperation(project, name, 'EXPORT', 'export', { exportContext: { kind: 'sql#exportContext', ...ctx, fileType } }, { uri: ctx.uri, databases }) };
      },
    },
    {
      method: 'GET',
      path: /^\/v1\/projects\/([^/]+)\/instances\/([^/]+)\/databases\/([^/]+)$/,
      handle: (req) => {
        settleDue();
        const [project, name, database] = req.params;
        instanceOf(project, name);
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
        instanceOf(project, name);
        const database = req.json<{ name?: string }>().name;
        if (!database) throw badRequest('Database.name is required');
        if ((st().databases[key(project, name)] ?? []).includes(database)) throw conflict(`database ${database} on ${name}`);
        return { json: startOperation(project, name, 'CREATE_DATABASE', 'createDatabase', {}, { database }) };
      },
    },
    {
      method: 'POST',
      path: /^\/v1\/projects\/([^/]+)\/instances\/([^/]+)\/import$/,
      handle: (req) => {
        settleDue();
        const [project, name] = req.params;
        instanceOf(project, name);
        const ctx = bodyOf<{ importContext?: Record<string, any> }>(req, 'InstancesImportRequest').importContext;
        if (!ctx?.uri || !parseGs(ctx.uri)) throw badRequest('importContext.uri must be a gs://bucket/object URI');
        if (!ctx.database) throw badRequest('importContext.database is required for a SQL import into PostgreSQL');
        return { json: startOperation(project, name, 'IMPORT', 'import', { importContext: { kind: 'sql#importContext', ...ctx, fileType: ctx.fileType ?? 'SQL' } }, { uri: ctx.uri, database: ctx.database }) };
      },
    },
    {
      method: 'POST',
      path: /^\/v1\/projects\/([^/]+)\/instances\/([^/]+)\/backupRuns$/,
      handle: (req) => {
        settleDue();
        const [project, name] = req.params;
        const instance = instanceOf(project, name);
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
      path: /^\/v1\/projects\/([^/]+)\/instances\/([^/]+)\/backupRuns\/([^/]+)$/,
      handle: (req) => {
        settleDue();
        const [project, name, id] = req.params;
        instanceOf(project, name);
        const run = (st().backupRuns[key(project, name)] ?? []).find((r) => r.id === id);
        if (!run) throw notFound(`backup run ${id}`);
        return { json: run };
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
