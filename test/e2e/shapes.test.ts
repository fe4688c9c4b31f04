// The two Postgres shapes end to end: the worker users run (every real activity) on a real
// Temporal dev server, over a store a real MLflow tracking server wrote. One MLflow server serves
// every case: it writes the self-hosted database, which the shared-database cases copy (CREATE
// DATABASE … TEMPLATE) before the app's tables join MLflow's. What the migration and the undo
// did is checked by reading the databases directly, not through the tool's own identification.
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { Worker } from '@temporalio/worker';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { APP_ALEMBIC_REVISION, SEED_000_APP_TABLES, createSelfHostedDeployment, createSharedDatabaseDeployment, type ShapeDeployment } from '../../dev/shape-deployment';
import { freePort } from '../../dev/postgres';
import { createActivities } from '../../src/activities';
import { createGcpClients } from '../../src/adapters/gcp/clients';
import { createGcsObjectStore } from '../../src/adapters/gcp/gcs-object-store';
import { createLocalObjectStore } from '../../src/adapters/local-object-store';
import { objectStoreByScheme } from '../../src/adapters/object-stores';
import { createDatabases } from '../../src/adapters/postgres';
import { configFileSchema, type Target } from '../../src/config/schema';
import { commands, migrationResult, startMigration } from '../../src/temporal/client';
import type { StepContext } from '../../src/types';
import { mlflowUnavailable, startMlflowServer, writeRunsThroughMlflow, type MlflowServer } from '../support/mlflow-server';
import { useTestServer, waitForStatus, workflowBundle } from '../support/temporal';

if (mlflowUnavailable) console.warn(`shapes.test.ts skipped: python3 cannot import mlflow and psycopg2 (${mlflowUnavailable}); ./run setup installs them`);

const CONNECTION_STRING_WITH_PASSWORD = /[a-z]+:\/\/[^\s"/:@]+:[^\s"/@]+@/i;

async function query<T = any>(url: string, sql: string, params: unknown[] = []): Promise<T[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query(sql, params)).rows;
  } finally {
    await c.end();
  }
}

/** Every table in public with its row count and a digest of its rows: what "unchanged" means here. */
async function tableContents(url: string, only?: (t: string) => boolean): Promise<Record<string, string>> {
  const tables = (await query<{ t: string }>(url, `SELECT tablename AS t FROM pg_tables WHERE schemaname = 'public' ORDER BY 1`)).map((r) => r.t).filter((t) => !only || only(t));
  const out: Record<string, string> = {};
  for (const t of tables) {
    const [r] = await query(url, `SELECT count(*)::int AS n, md5(coalesce(string_agg(x::text, E'\\n' ORDER BY x::text), '')) AS d FROM public."${t}" x`);
    out[t] = `${r.n} rows ${r.d}`;
  }
  return out;
}

function filesOf(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out[relative(dir, p)] = createHash('sha256').update(readFileSync(p)).digest('hex');
    }
  };
  if (existsSync(dir)) walk(dir);
  return out;
}

const APP_SIDE = new Set([...SEED_000_APP_TABLES, 'ml_platform_quicktest']);

/** MLflow 3.x's trigger function on `secrets`, and its trigger: objects beside the tables. */
const secretsGuard = (url: string) =>
  query(url, `SELECT p.proname, t.tgrelid::regclass::text AS on_table FROM pg_proc p LEFT JOIN pg_trigger t ON t.tgfoid = p.oid WHERE p.proname = 'prevent_secrets_aad_mutation'`);

describe.skipIf(mlflowUnavailable)('the Postgres shapes, on a store a real MLflow server wrote', () => {
  const temporal = useTestServer();
  let server: MlflowServer | undefined;
  let selfHosted: Awaited<ReturnType<typeof createSelfHostedDeployment>>;
  const admin = () => inject('pgAdminUrl');
  const stops: Array<() => Promise<unknown>> = [];

  beforeAll(async () => {
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), 'shapes-'));
    selfHosted = await createSelfHostedDeployment({
      adminUrl: admin(),
      name: `sh${process.pid}`,
      dir,
      trackingUrl: `http://127.0.0.1:${port}`,
      // MLflow connects as the role, so its tables are the role's (seed 002).
      writeStore: async (url) => {
        server = await startMlflowServer(url, port, dir);
        await writeRunsThroughMlflow(server.url, dir);
      },
    });
  }, 300_000);

  afterAll(async () => {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
    await server?.stop();
  });

  /** The real worker over a deployment's config and environment. */
  async function worker(d: ShapeDeployment) {
    const config = configFileSchema.parse(JSON.parse(readFileSync(d.configPath, 'utf8')));
    // No GCP in these shapes: the clients exist (the worker builds them) and are never called.
    const gcp = createGcpClients({ apiEndpoint: 'http://127.0.0.1:9', project: 'unused-project' });
    const databases = createDatabases(d.workerEnv);
    const objects = objectStoreByScheme({ gs: createGcsObjectStore(gcp.storage), file: createLocalObjectStore() });
    const taskQueue = `shapes-${d.name}`;
    const activities = createActivities({ config, databases, gcp, objects });
    const w = await Worker.create({ connection: temporal.env.nativeConnection, taskQueue, workflowBundle: await workflowBundle(), activities });
    const running = w.run();
    const close = async () => {
      w.shutdown();
      await running;
      await Promise.all([gcp.close(), databases.close()]);
    };
    stops.push(close);
    return { activities, start: (input: object) => startMigration(temporal.env.client, { target: d.name, ...input }, { taskQueue }) };
  }

  const stepIds = (s: { steps: Array<{ id: string }> }) => s.steps.map((x) => x.id);

  for (const alembic of ['shared with the app', "MLflow's alone"] as const) {
    it(`shared-database, alembic_version ${alembic}: drops exactly MLflow's objects, and the undo brings them back`, async () => {
      const shared = alembic === 'shared with the app';
      const d = await createSharedDatabaseDeployment({
        adminUrl: admin(),
        name: `sd${process.pid}${shared ? 'a' : 'b'}`,
        dir: mkdtempSync(join(tmpdir(), 'shared-')),
        mlflowTemplate: selfHosted.database,
        appRevision: shared ? APP_ALEMBIC_REVISION : undefined,
      });
      const url = d.urls.shared;
      const before = await tableContents(url);
      const mlflowTables = Object.keys(before).filter((t) => !APP_SIDE.has(t) && t !== 'alembic_version');
      expect(mlflowTables).toEqual(expect.arrayContaining(['experiments', 'runs', 'metrics', 'params', 'tags', 'latest_metrics']));
      const alembicBefore = (await query(url, 'SELECT version_num FROM alembic_version ORDER BY 1')).map((r) => r.version_num);
      expect(await secretsGuard(url)).toEqual([{ proname: 'prevent_secrets_aad_mutation', on_table: 'secrets' }]);
      expect(alembicBefore).toHaveLength(shared ? 2 : 1);
      const w = await worker(d);

      // The dry run lists exactly what 3.1 would drop, and the steps are the shape's own.
      const plan = await (await w.start({ dryRun: true })).result();
      expect(plan.outcome).toBe('planned');
      expect(stepIds(plan.status)).toEqual(['0.0', '0.1', '0.2', '0.3', '0.4', '0.5', '0.6', '0.7', '1.1', '2.1', '3.1', '5.1', '5.2', '5.6']);
      const drops = plan.status.plan['3.1'].filter((a) => a.call === 'postgres.drop_table').map((a) => a.resource.split('/').at(-1));
      expect(drops.sort()).toEqual([...mlflowTables, ...(shared ? [] : ['alembic_version'])].sort());
      expect(plan.status.plan['3.1'].some((a) => a.call === 'refuse')).toBe(false);
      expect(await tableContents(url)).toEqual(before);

      const h = await w.start({ approvals: { 'phase-0': false, 'phase-2': false, 'phase-4': true, closure: true }, bakePeriod: '1s' });
      const at4 = await waitForStatus(h, (s) => s.waitingFor?.gate === 'phase-4' || s.state === 'blocked', 180_000);
      expect(at4.waitingFor?.gate, JSON.stringify(at4.waitingFor)).toBe('phase-4');
      const after = await tableContents(url);
      expect(Object.keys(after).sort()).toEqual([...APP_SIDE, ...(shared ? ['alembic_version'] : [])].sort());
      for (const t of APP_SIDE) if (t !== 'ml_platform_quicktest') expect(after[t], t).toBe(before[t]);
      if (shared) expect((await query(url, 'SELECT version_num FROM alembic_version')).map((r) => r.version_num)).toEqual([APP_ALEMBIC_REVISION]);
      expect(await secretsGuard(url)).toEqual([]);
      // The app's foreign key among its own tables survived.
      expect((await query(url, `SELECT conname FROM pg_constraint WHERE conrelid = 'gpu_metrics'::regclass AND contype = 'f'`)).length).toBe(1);
      expect(at4.gates.find((g) => g.id === 'phase-3')!.checks.every((c) => c.ok)).toBe(true);
      // The gate before deleting named what 3.1 drops, table by table.
      const willDrop = at4.gates.find((g) => g.id === 'phase-2')!.checks.find((c) => c.name === '3.1 will delete')!;
      for (const t of mlflowTables) expect(willDrop.detail).toMatch(new RegExp(`[/ ]${t}\\b`));

      await commands.approve(h, { gate: 'phase-4', by: 'alice' });
      const atClosure = await waitForStatus(h, (s) => s.waitingFor?.gate === 'closure', 60_000);
      expect(atClosure.steps.find((s) => s.id === '5.1')!.state).toBe('done');
      expect(atClosure.steps.find((s) => s.id === '5.2')!.summary).toMatch(/no cloud bill/);

      await commands.rollback(h, { by: 'alice', reason: 'e2e' });
      const result = await migrationResult(h);
      expect(result.outcome).toBe('rolled-back');
      expect(result.status.compensations.map((c) => [c.step, c.state])).toEqual([['3.1', 'done']]);
      const restored = await tableContents(url);
      // The histories cached into the QuickTest table stay (Phase 0 is not undone); everything else is as it was, row for row.
      for (const t of Object.keys(before)) if (t !== 'ml_platform_quicktest') expect(restored[t], t).toBe(before[t]);
      expect(Object.keys(restored).sort()).toEqual(Object.keys(before).sort());
      expect((await query(url, 'SELECT version_num FROM alembic_version ORDER BY 1')).map((r) => r.version_num)).toEqual(alembicBefore);
      expect(await secretsGuard(url)).toEqual([{ proname: 'prevent_secrets_aad_mutation', on_table: 'secrets' }]);
      const history = JSON.stringify(await h.fetchHistory());
      expect(history).not.toMatch(CONNECTION_STRING_WITH_PASSWORD);
    }, 300_000);
  }

  it("self-hosted: waits for /health to stop answering, drops MLflow's database and role, archives the artifacts; the other database is untouched, and the undo restores all", async () => {
    const d = selfHosted;
    const otherBefore = await tableContents(d.urls.other);
    const dbs = async () => (await query(admin(), `SELECT datname, oid::int FROM pg_database WHERE datname <> $1 ORDER BY 1`, [d.database])).map((r) => `${r.datname}:${r.oid}`);
    const otherDbsBefore = await dbs();
    const mlflowBefore = await tableContents(d.urls.mlflow);
    const artifactsBefore = filesOf(d.artifactsDir);
    expect(Object.keys(artifactsBefore).length).toBeGreaterThan(0);
    const w = await worker(d);

    const plan = await (await w.start({ dryRun: true })).result();
    expect(stepIds(plan.status)).toEqual(['0.0', '0.1', '0.2', '0.3', '0.4', '0.5', '0.6', '0.7', '1.1', '2.1', '3.1', '3.2', '3.3', '5.1', '5.2', '5.6']);
    expect(plan.status.plan['3.2'].filter((a) => a.destructive).map((a) => a.call)).toEqual(['postgres.terminate', 'postgres.drop_database']);
    expect(plan.status.plan['3.3'][0].description).toMatch(new RegExp(`drop role ${d.role}`));

    const h = await w.start({ approvals: { 'phase-0': false, 'phase-2': false, 'phase-4': true, closure: true } });
    // MLflow still answers /health: the gate holds, and says stopping it is the operator's part.
    const held = await waitForStatus(h, (s) => s.gates.find((g) => g.id === 'phase-2')?.state === 'failed', 180_000);
    const health = held.gates.find((g) => g.id === 'phase-2')!.checks.find((c) => c.name === 'tracking server stopped')!;
    expect(health.ok).toBe(false);
    expect(health.detail).toMatch(/still answers.*stop the MLflow container/);
    expect(await dbs()).toContain(otherDbsBefore[0]);
    expect((await query(admin(), 'SELECT 1 FROM pg_database WHERE datname = $1', [d.database])).length).toBe(1);
    await server!.stop();
    await commands.retry(h, { step: 'phase-2' });

    const at4 = await waitForStatus(h, (s) => s.waitingFor?.gate === 'phase-4' || s.state === 'blocked', 180_000);
    expect(at4.waitingFor?.gate, JSON.stringify(at4.waitingFor)).toBe('phase-4');
    expect((await query(admin(), 'SELECT 1 FROM pg_database WHERE datname = $1', [d.database])).length).toBe(0);
    expect((await query(admin(), 'SELECT 1 FROM pg_roles WHERE rolname = $1', [d.role])).length).toBe(0);
    expect(await dbs()).toEqual(otherDbsBefore);
    expect(await tableContents(d.urls.other)).toEqual(otherBefore);
    expect(filesOf(d.artifactsDir)).toEqual({});
    expect(statSync(d.artifactsDir).isDirectory()).toBe(true);
    // The gate before deleting named the directory, the database and the role by full name.
    const named = at4.gates.find((g) => g.id === 'phase-2')!.checks.map((c) => `${c.name}: ${c.detail}`).join('\n');
    expect(named).toContain(`3.1 will delete: empty ${d.artifactsDir}`);
    expect(named).toMatch(new RegExp(`3\\.2 will delete: .*drop database ${d.database}`));
    expect(named).toMatch(new RegExp(`3\\.3 will delete: .*${d.role}`));

    await commands.approve(h, { gate: 'phase-4', by: 'alice' });
    const atClosure = await waitForStatus(h, (s) => s.waitingFor?.gate === 'closure', 60_000);
    expect(atClosure.steps.find((s) => s.id === '5.1')!.summary).toMatch(/other database\(s\) as they were/);

    await commands.rollback(h, { by: 'alice', reason: 'e2e' });
    const result = await migrationResult(h);
    expect(result.outcome).toBe('rolled-back');
    expect(result.status.compensations.map((c) => [c.step, c.state])).toEqual([['3.1', 'done'], ['3.2', 'done'], ['3.3', 'done']]);
    expect(result.status.compensations.find((c) => c.step === '3.3')!.summary).toMatch(/NOLOGIN: its password was not kept/);
    const [role] = await query(admin(), 'SELECT rolcanlogin FROM pg_roles WHERE rolname = $1', [d.role]);
    expect(role).toEqual({ rolcanlogin: false });
    // Read as the server's admin: the role cannot log in until someone sets its password.
    const restoredUrl = new URL(admin());
    restoredUrl.pathname = `/${d.database}`;
    expect(await tableContents(restoredUrl.toString())).toEqual(mlflowBefore);
    expect(await secretsGuard(restoredUrl.toString())).toEqual([{ proname: 'prevent_secrets_aad_mutation', on_table: 'secrets' }]);
    expect((await query(restoredUrl.toString(), `SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'`)).map((r) => r.tableowner)).toEqual([d.role]);
    expect((await dbs()).filter((x) => otherDbsBefore.includes(x))).toEqual(otherDbsBefore);
    expect(await tableContents(d.urls.other)).toEqual(otherBefore);
    expect(filesOf(d.artifactsDir)).toEqual(artifactsBefore);
    expect(JSON.stringify(await h.fetchHistory())).not.toMatch(CONNECTION_STRING_WITH_PASSWORD);
  }, 300_000);

  it('self-hosted: a role that owns something else on the server is kept, and says why', async () => {
    const name = `keep${process.pid}`;
    const other = new URL(selfHosted.urls.other);
    await query(admin(), `DROP ROLE IF EXISTS ${name}`);
    await query(admin(), `CREATE ROLE ${name} NOLOGIN`);
    await query(other.toString(), `CREATE TABLE ${name}_owned (id int); ALTER TABLE ${name}_owned OWNER TO ${name}`);
    const target = configFileSchema.parse({
      targets: {
        k: {
          shape: 'self-hosted',
          databases: { mlflow: { urlEnv: 'SERVER_DATABASE_URL' }, app: { urlEnv: 'SERVER_DATABASE_URL' }, server: { urlEnv: 'SERVER_DATABASE_URL' } },
          mlflow: { trackingUrl: 'http://127.0.0.1:9', database: `${name}_gone`, role: name },
          backup: `file://${mkdtempSync(join(tmpdir(), 'keep-'))}`,
        },
      },
    });
    const gcp = createGcpClients({ apiEndpoint: 'http://127.0.0.1:9', project: 'unused-project' });
    const databases = createDatabases({ SERVER_DATABASE_URL: admin() });
    try {
      const a = createActivities({ config: target, databases, gcp, objects: createLocalObjectStore() });
      const k = target.targets.k;
      if (!k) throw new Error('target k did not parse');
      const ctx: StepContext<Target> = { migrationId: 'keep', targetName: 'k', target: k, dryRun: false, gatesPassed: ['phase-0', 'phase-1', 'phase-2'], force: false, facts: {} };
      const res = await a.dropTrackingRole(ctx);
      expect(res.summary).toMatch(new RegExp(`kept role ${name}: it owns 1 object\\(s\\) in ${selfHosted.otherDatabase}`));
      expect((await query(admin(), 'SELECT 1 FROM pg_roles WHERE rolname = $1', [name])).length).toBe(1);
      expect((await a.recreateTrackingRole(ctx)).summary).toMatch(/saved no snapshot/);
    } finally {
      await query(other.toString(), `DROP TABLE ${name}_owned`);
      await query(admin(), `DROP ROLE ${name}`);
      await databases.close();
      await gcp.close();
    }
  });
});
