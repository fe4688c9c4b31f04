// The opt-in acceptance run's resources (dev/e2e-gcp.ts), in the spirit of Terraform providers'
// TF_ACC tests: throwaway MLflow-shaped resources in a real project, each carrying a label unique to
// the run, what an operator would compare before and after, and a cleanup that tries every delete
// whatever failed before it. The same code runs against the local sandbox in CI
// (test/dev/gcp-acceptance.test.ts), so it is exercised even where no project is at hand.
import { randomBytes } from 'node:crypto';
import type { GcpClients } from '../src/adapters/gcp/clients';
import { isNotFound } from '../src/adapters/gcp/clients';
import type { TargetInput } from './demo-data';

export const ACCEPTANCE_LABEL = 'mlflow-decommission-acc';
/** A public sample image (https://cloud.google.com/run/docs/quickstarts/deploy-container). */
const HELLO_IMAGE = 'us-docker.pkg.dev/cloudrun/container/hello';

export interface AcceptanceNames {
  runId: string;
  project: string;
  region: string;
  labels: Record<string, string>;
  backupBucket: string;
  artifactsBucket: string;
  instance: string;
  database: string;
  dbUser: string;
  secret: string;
  serviceAccountId: string;
  serviceAccount: string;
  mlflowService: string;
  appService: string;
  trigger: string;
}

export function acceptanceNames(project: string, region: string, runId = `mda-${randomBytes(3).toString('hex')}`): AcceptanceNames {
  return {
    runId,
    project,
    region,
    labels: { [ACCEPTANCE_LABEL]: runId },
    backupBucket: `${project}-${runId}-backups`.slice(0, 63),
    artifactsBucket: `${project}-${runId}-artifacts`.slice(0, 63),
    instance: `${runId}-db`,
    database: 'mlflow',
    dbUser: 'mlflow',
    secret: `${runId}-db-password`,
    serviceAccountId: `${runId}-sa`,
    serviceAccount: `${runId}-sa@${project}.iam.gserviceaccount.com`,
    mlflowService: `${runId}-mlflow`,
    appService: `${runId}-app`,
    trigger: `${runId}-trigger`,
  };
}

/** The worker's target for the run: everything named above, the run's label as the MLflow label. */
export function acceptanceTarget(n: AcceptanceNames): TargetInput {
  return {
    gcp: { project: n.project, region: n.region },
    labels: n.labels,
    cloudRun: { mlflowService: n.mlflowService, appService: n.appService, trackingUriEnvVar: 'MLFLOW_TRACKING_URI' },
    cloudSql: { instance: n.instance, database: n.database, restoreFrom: 'final-backup' },
    buckets: { backup: n.backupBucket, artifacts: n.artifactsBucket, deleteArtifacts: true },
    buildTrigger: n.trigger,
    serviceAccount: n.serviceAccount,
    secrets: [n.secret],
    databases: { mlflow: { urlEnv: 'ACC_MLFLOW_DATABASE_URL' }, app: { urlEnv: 'ACC_APP_DATABASE_URL' } },
    data: { cutoverDate: new Date().toISOString(), minPostCutoverExperiments: 0 },
    bakePeriod: '1 minute',
  };
}

type Log = (line: string) => void;

/** Polls a Cloud SQL operation to DONE; a failed one throws. */
async function sqlOperation(gcp: GcpClients, project: string, started: Promise<unknown>, pollMs: number): Promise<void> {
  const [op] = (await started) as [{ name?: string }];
  for (;;) {
    const [now] = await gcp.sqlOperations.get({ project, operation: op.name! });
    if (String(now.status) === 'DONE' || now.status === 3) {
      const errors = now.error?.errors ?? [];
      if (errors.length) throw new Error(`Cloud SQL operation ${op.name} failed: ${errors.map((e) => e.message).join('; ')}`);
      return;
    }
    await new Promise((r) => setTimeout(r, pollMs));
  }
}

/**
 * Creates the run's resources, as an MLflow deployment has them: a bucket for backups, a versioned
 * artifacts bucket with a noncurrent version, a tiny PostgreSQL instance with a database, a user and
 * deletion protection, a secret holding the user's password, a service account, the MLflow service
 * (public image, the secret as env, a plain env value, invoker binding) and an app service pointing
 * at it, and a build trigger. Returns the database password (kept out of every log).
 */
export async function createAcceptanceResources(gcp: GcpClients, n: AcceptanceNames, opts: { clientCidr?: string; log?: Log; pollMs?: number } = {}): Promise<{ dbPassword: string }> {
  const log = opts.log ?? (() => {});
  const pollMs = opts.pollMs ?? 5_000;
  const { project, region } = n;
  const parent = `projects/${project}/locations/${region}`;
  const dbPassword = randomBytes(18).toString('base64url');

  log(`buckets gs://${n.backupBucket} and gs://${n.artifactsBucket} (versioned, soft delete 7 days)`);
  await gcp.storage.createBucket(n.backupBucket, { location: region.toUpperCase(), labels: n.labels });
  await gcp.storage.createBucket(n.artifactsBucket, { location: region.toUpperCase(), labels: n.labels, versioning: { enabled: true }, softDeletePolicy: { retentionDurationSeconds: 7 * 86_400 } });
  const artifacts = gcp.storage.bucket(n.artifactsBucket);
  await artifacts.file('1/run-a/artifacts/model/MLmodel').save('artifact_path: model\n');
  await artifacts.file('1/run-a/artifacts/model/MLmodel').save('artifact_path: model\nflavors: {}\n');
  await artifacts.file('1/run-a/artifacts/loss.png').save(Buffer.alloc(1024, 7));
  await artifacts.file('1/run-b/deleted-long-ago.txt').save('noncurrent only');
  await artifacts.file('1/run-b/deleted-long-ago.txt').delete();

  log(`Cloud SQL instance ${n.instance} (db-f1-micro, PostgreSQL 15): takes several minutes`);
  await sqlOperation(
    gcp,
    project,
    gcp.sqlInstances.insert({
      project,
      body: {
        name: n.instance,
        region,
        databaseVersion: 'POSTGRES_15',
        settings: {
          tier: 'db-f1-micro',
          edition: 'ENTERPRISE',
          userLabels: n.labels,
          // Wrapper types (Int64Value, BoolValue, …) are objects in requests (cloud_sql_resources.proto).
          dataDiskSizeGb: { value: 10 },
          deletionProtectionEnabled: { value: true },
          backupConfiguration: { enabled: { value: false } },
          maintenanceWindow: { day: { value: 7 }, hour: { value: 3 } },
          ipConfiguration: { ipv4Enabled: { value: true }, authorizedNetworks: opts.clientCidr ? [{ name: 'acceptance-runner', value: opts.clientCidr }] : [] },
        },
      },
    }),
    pollMs,
  );
  await sqlOperation(gcp, project, gcp.sqlDatabases.insert({ project, instance: n.instance, body: { name: n.database, instance: n.instance, project } }), pollMs);
  await sqlOperation(gcp, project, gcp.sqlUsers.insert({ project, instance: n.instance, body: { name: n.dbUser, password: dbPassword, instance: n.instance, project } }), pollMs);
  // 0.1 exports into the backup bucket as the instance's own service account.
  const [instance] = await gcp.sqlInstances.get({ project, instance: n.instance });
  await grant(gcp.storage.bucket(n.backupBucket).iam, `serviceAccount:${instance.serviceAccountEmailAddress}`, 'roles/storage.objectAdmin');

  log(`service account ${n.serviceAccount} and secret ${n.secret}`);
  await gcp.iam.projects.serviceAccounts.create({ name: `projects/${project}`, requestBody: { accountId: n.serviceAccountId, serviceAccount: { displayName: `MLflow acceptance ${n.runId}` } } });
  const secretName = `projects/${project}/secrets/${n.secret}`;
  await gcp.secrets.createSecret({ parent: `projects/${project}`, secretId: n.secret, secret: { replication: { automatic: {} }, labels: n.labels } });
  await gcp.secrets.addSecretVersion({ parent: secretName, payload: { data: Buffer.from(dbPassword) } });
  // The service reads the secret as its service account.
  await gcp.secrets.setIamPolicy({ resource: secretName, policy: { bindings: [{ role: 'roles/secretmanager.secretAccessor', members: [`serviceAccount:${n.serviceAccount}`] }] } });

  log(`Cloud Run services ${n.mlflowService} and ${n.appService} (${HELLO_IMAGE})`);
  const [mlflowOp] = await gcp.run.createService({
    parent,
    serviceId: n.mlflowService,
    service: {
      labels: n.labels,
      template: {
        serviceAccount: n.serviceAccount,
        containers: [
          {
            image: HELLO_IMAGE,
            env: [
              { name: 'MLFLOW_ARTIFACTS_DESTINATION', value: `gs://${n.artifactsBucket}` },
              { name: 'MLFLOW_DB_PASSWORD', valueSource: { secretKeyRef: { secret: n.secret, version: 'latest' } } },
            ],
          },
        ],
      },
    },
  });
  const [mlflow] = await mlflowOp.promise();
  await gcp.run.setIamPolicy({ resource: `${parent}/services/${n.mlflowService}`, policy: { bindings: [{ role: 'roles/run.invoker', members: [`serviceAccount:${n.serviceAccount}`] }] } });
  const [appOp] = await gcp.run.createService({
    parent,
    serviceId: n.appService,
    service: { labels: { [ACCEPTANCE_LABEL]: `${n.runId}-app` }, template: { containers: [{ image: HELLO_IMAGE, env: [{ name: 'MLFLOW_TRACKING_URI', value: (mlflow as { uri?: string }).uri ?? 'https://mlflow.invalid' }] }] } },
  });
  await appOp.promise();

  log(`build trigger ${n.trigger}`);
  try {
    await gcp.build.createBuildTrigger({
      projectId: project,
      trigger: {
        name: n.trigger,
        description: `MLflow acceptance ${n.runId}`,
        sourceToBuild: { uri: 'https://github.com/GoogleCloudPlatform/cloud-run-hello', ref: 'refs/heads/main', repoType: 'GITHUB' },
        build: { steps: [{ name: 'gcr.io/cloud-builders/gcloud', args: ['version'] }] },
      },
    });
  } catch (err) {
    // A manual trigger on a GitHub repository needs the Cloud Build GitHub app connected in some projects.
    log(`  the trigger could not be created (${(err as Error).message.split('\n')[0]}): 3.3 will find nothing to delete`);
  }
  return { dbPassword };
}

async function grant(iam: { getPolicy(): Promise<[any, ...unknown[]]>; setPolicy(p: any): Promise<unknown> }, member: string, role: string): Promise<void> {
  const [policy] = await iam.getPolicy();
  const bindings = [...(policy.bindings ?? [])];
  const b = bindings.find((x: { role: string }) => x.role === role);
  if (b) b.members = [...new Set([...(b.members ?? []), member])];
  else bindings.push({ role, members: [member] });
  await iam.setPolicy({ ...policy, bindings });
}

/** What an operator compares before the run and after its rollback: ids and timestamps GCP assigns anew are left out. */
export async function acceptanceInventory(gcp: GcpClients, n: AcceptanceNames): Promise<Record<string, unknown>> {
  const { project, region } = n;
  const absent = async <T>(read: () => Promise<T>): Promise<T | 'absent'> => read().catch((err) => (isNotFound(err) ? 'absent' : Promise.reject(err)));
  const service = (id: string) =>
    absent(async () => {
      const name = `projects/${project}/locations/${region}/services/${id}`;
      const [s] = await gcp.run.getService({ name });
      const [policy] = await gcp.run.getIamPolicy({ resource: name });
      return {
        labels: s.labels,
        containers: s.template?.containers?.map((c) => ({ image: c.image, env: c.env })),
        serviceAccount: s.template?.serviceAccount,
        invokers: (policy.bindings ?? []).map((b) => [b.role, [...(b.members ?? [])].sort()]),
      };
    });
  return {
    mlflowService: await service(n.mlflowService),
    appService: await service(n.appService),
    instance: await absent(async () => {
      const [i] = await gcp.sqlInstances.get({ project, instance: n.instance });
      if (String(i.state) === 'PENDING_DELETE') return 'absent';
      const [users] = await gcp.sqlUsers.list({ project, instance: n.instance });
      const [db] = await gcp.sqlDatabases.get({ project, instance: n.instance, database: n.database });
      const s = i.settings;
      return {
        region: i.region,
        version: i.databaseVersion,
        tier: s?.tier,
        labels: s?.userLabels,
        database: db.name,
        users: (users.items ?? []).map((u) => u.name).sort(),
        ipConfiguration: s?.ipConfiguration,
        maintenanceWindow: s?.maintenanceWindow,
        deletionProtection: s?.deletionProtectionEnabled,
      };
    }),
    trigger: (await gcp.build.listBuildTriggers({ projectId: project }))[0].filter((t) => t.name === n.trigger).map((t) => ({ name: t.name, description: t.description })).at(0) ?? 'absent',
    artifacts: await absent(async () => {
      const bucket = gcp.storage.bucket(n.artifactsBucket);
      const [meta] = await bucket.getMetadata();
      const [files] = await bucket.getFiles({ versions: true });
      return {
        labels: meta.labels,
        versioning: meta.versioning?.enabled,
        softDeleteSeconds: String(meta.softDeletePolicy?.retentionDurationSeconds),
        versions: files.map((f) => [f.name, f.metadata.crc32c, f.metadata.timeDeleted ? 'noncurrent' : 'live']).sort((a, b) => (String(a) < String(b) ? -1 : 1)),
      };
    }),
    serviceAccount: await absent(async () => {
      const { data } = await gcp.iam.projects.serviceAccounts.get({ name: `projects/${project}/serviceAccounts/${n.serviceAccount}` });
      return { email: data.email, uniqueId: data.uniqueId, disabled: !!data.disabled };
    }),
    secret: await absent(async () => {
      const [versions] = await gcp.secrets.listSecretVersions({ parent: `projects/${project}/secrets/${n.secret}` });
      return versions.map((v) => [v.name, String(v.state)]).sort();
    }),
  };
}

/** Deletes everything the run made (and the final backup and env secret the migration made), each delete tried whatever failed before; returns what could not be deleted. */
export async function deleteAcceptanceResources(gcp: GcpClients, n: AcceptanceNames, opts: { targetName: string; log?: Log; pollMs?: number }): Promise<string[]> {
  const log = opts.log ?? (() => {});
  const pollMs = opts.pollMs ?? 5_000;
  const { project, region } = n;
  const problems: string[] = [];
  const attempt = async (what: string, fn: () => Promise<unknown>) => {
    try {
      await fn();
      log(`deleted ${what}`);
    } catch (err) {
      if (isNotFound(err)) return;
      problems.push(`${what}: ${(err as Error).message.split('\n')[0]}`);
      log(`could not delete ${what}: ${(err as Error).message.split('\n')[0]}`);
    }
  };
  for (const id of [n.mlflowService, n.appService]) {
    await attempt(`Cloud Run service ${id}`, async () => {
      const [op] = await gcp.run.deleteService({ name: `projects/${project}/locations/${region}/services/${id}` });
      await op.promise();
    });
  }
  await attempt(`Cloud SQL instance ${n.instance}`, async () => {
    const [i] = await gcp.sqlInstances.get({ project, instance: n.instance });
    if (String(i.state) === 'PENDING_DELETE') return;
    const protectedNow = (i.settings?.deletionProtectionEnabled as { value?: boolean } | boolean | undefined) === true || (i.settings?.deletionProtectionEnabled as { value?: boolean } | undefined)?.value === true;
    if (protectedNow) await sqlOperation(gcp, project, gcp.sqlInstances.patch({ project, instance: n.instance, body: { settings: { deletionProtectionEnabled: { value: false } } } }), pollMs);
    await sqlOperation(gcp, project, gcp.sqlInstances.delete({ project, instance: n.instance }), pollMs);
  });
  await attempt(`final backups of ${n.instance}`, async () => {
    const [backups] = await gcp.sqlBackups.listBackups({ parent: `projects/${project}`, filter: `instance:${n.instance} AND type:FINAL` });
    for (const b of backups) await gcp.sqlBackups.deleteBackup({ name: b.name! });
  });
  await attempt(`build trigger ${n.trigger}`, async () => {
    const [triggers] = await gcp.build.listBuildTriggers({ projectId: project });
    for (const t of triggers.filter((x) => x.name === n.trigger)) await gcp.build.deleteBuildTrigger({ projectId: project, triggerId: t.id! });
  });
  for (const name of [n.artifactsBucket, n.backupBucket]) {
    await attempt(`bucket gs://${name}`, async () => {
      const bucket = gcp.storage.bucket(name);
      const [files] = await bucket.getFiles({ versions: true });
      for (const f of files) await bucket.file(f.name, { generation: Number(f.metadata.generation) }).delete();
      await bucket.delete();
    });
  }
  await attempt(`service account ${n.serviceAccount}`, () => gcp.iam.projects.serviceAccounts.delete({ name: `projects/${project}/serviceAccounts/${n.serviceAccount}` }));
  for (const secret of [n.secret, `mlflow-decommission-${opts.targetName}-env`]) {
    await attempt(`secret ${secret}`, () => gcp.secrets.deleteSecret({ name: `projects/${project}/secrets/${secret}` }));
  }
  return problems;
}
