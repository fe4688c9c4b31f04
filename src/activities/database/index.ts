// The activities of the shapes without a cloud (seed 000: shared-database, seed 002: self-hosted):
// the dump (0.1) and its check, Phase 3 per shape, the removal checks and 5.2's word on billing,
// and their half of preflight (0.0).
import { access } from 'node:fs/promises';
import { checkWritableLocation } from '../../adapters/local-object-store';
import type { Databases } from '../../adapters/postgres';
import { probe } from '../../adapters/postgres-streams';
import type { SelfHostedTarget, Target } from '../../config/schema';
import type { ObjectStore } from '../../ports';
import { backupRoot, shapeOf } from '../../shapes';
import type { CheckResult, StepContext } from '../../types';
import { mlflowPool } from '../data/app-table';
import { createBackupActivities } from './backup';
import { identifyMlflowObjects } from './mlflow-tables';
import { createRemovalChecks } from './removal-check';
import { createSelfHostedActivities } from './self-hosted';
import { createSharedDatabaseActivities } from './shared-database';

export interface DatabaseDeps {
  databases: Databases;
  objects: ObjectStore;
}

export function createDatabaseActivities(deps: DatabaseDeps) {
  const { databases, objects } = deps;
  const selfHosted = createSelfHostedActivities(databases, objects);

  /** 0.0 for these shapes: the backup location, which objects are MLflow's, the server side of seed 002. */
  async function preflight(ctx: StepContext<Target>): Promise<CheckResult[]> {
    const shape = shapeOf(ctx.target);
    if (shape === 'cloud') return [];
    const checks: CheckResult[] = [await backupLocation(ctx)];
    if (shape === 'shared-database') checks.push(await mlflowObjects(ctx));
    else checks.push(...(await selfHostedServer(ctx as StepContext<SelfHostedTarget>)));
    return checks;
  }

  async function backupLocation(ctx: StepContext<Target>): Promise<CheckResult> {
    const root = backupRoot(ctx.target);
    const name = `backup location ${root}`;
    if (root.startsWith('file://')) {
      const ok = await checkWritableLocation(root);
      return { name, ok: ok === true, detail: ok === true ? 'a directory the worker can write (the dump, the raw export and snapshots go there)' : `${ok}: create it or fix "backup"` };
    }
    try {
      await objects.list(`${root}/`);
      return { name, ok: true, detail: 'the bucket answers the worker' };
    } catch (err) {
      return { name, ok: false, detail: `cannot list it (${(err as Error).message.split('\n')[0]}): create the bucket or grant the worker roles/storage.objectAdmin on it` };
    }
  }

  async function mlflowObjects(ctx: StepContext<Target>): Promise<CheckResult> {
    const name = "mlflow's objects";
    try {
      const found = await identifyMlflowObjects(mlflowPool(databases, ctx.target), ctx.target.data.acceptMlflowRevisions);
      const blocking = found.refusals.filter((r) => r.case === 'not-mlflow');
      const later = found.refusals.filter((r) => r.case !== 'not-mlflow');
      return {
        name,
        ok: blocking.length === 0,
        detail: blocking.length
          ? blocking.map((r) => r.message).join(' | ')
          : `${found.tables.length} MLflow tables at ${found.revision} beside ${found.otherTables.length} other table(s)` +
            (later.length ? `; to fix before Phase 3, which refuses until then: ${later.map((r) => r.message).join(' | ')}` : '') +
            (found.notes.length ? `; ${found.notes.join('; ')}` : ''),
      };
    } catch (err) {
      return { name, ok: false, detail: (err as Error).message };
    }
  }

  async function selfHostedServer(ctx: StepContext<SelfHostedTarget>): Promise<CheckResult[]> {
    const { server, mlflow } = { server: ctx.target.databases.server.urlEnv, mlflow: ctx.target.mlflow };
    let reachable: true | string;
    try {
      reachable = await probe(databases.pool(server));
    } catch (err) {
      reachable = (err as Error).message;
    }
    const checks: CheckResult[] = [
      { name: `server connection (${server})`, ok: reachable === true, detail: reachable === true ? 'reachable' : `cannot connect (${String(reachable).replace(/postgres(ql)?:\/\/\S+/gi, '<connection string>')}): check env var ${server}` },
    ];
    if (reachable !== true) return checks;
    // Both connections on one server and one database: the same postmaster start time and database oid.
    const { rows: a } = await databases.pool(server).query(`SELECT pg_postmaster_start_time()::text AS started, (SELECT oid::int FROM pg_database WHERE datname = $1) AS oid`, [mlflow.database]);
    const { rows: b } = await mlflowPool(databases, ctx.target).query(`SELECT pg_postmaster_start_time()::text AS started, (SELECT oid::int FROM pg_database WHERE datname = current_database()) AS oid, current_database() AS db`).catch(() => ({ rows: [] as any[] }));
    const same = b[0] && a[0].oid !== null && a[0].started === b[0].started && a[0].oid === b[0].oid;
    checks.push({
      name: `mlflow database ${mlflow.database}`,
      ok: !!same,
      detail: same
        ? 'on the server databases.server connects to, and the one databases.mlflow reads'
        : a[0].oid === null
          ? `the server has no database ${mlflow.database}: fix mlflow.database`
          : `databases.mlflow reads ${b[0]?.db ?? '(unreachable)'}${b[0] && a[0].started !== b[0].started ? ' on another server' : ''}: point both at the same server and database`,
    });
    const role = await selfHosted.roleRow(ctx);
    checks.push({ name: `mlflow role ${mlflow.role}`, ok: !!role, detail: role ? 'exists' : `no role ${mlflow.role} on the server: fix mlflow.role` });
    if (mlflow.artifactsDirectory) {
      const ok = await access(mlflow.artifactsDirectory).then(() => true, (e: NodeJS.ErrnoException) => e.code);
      checks.push({ name: `artifacts directory ${mlflow.artifactsDirectory}`, ok: ok === true, detail: ok === true ? 'the worker can read it' : `${ok}: mount the volume on the worker or fix mlflow.artifactsDirectory` });
    }
    return checks;
  }

  return {
    activities: {
      ...createBackupActivities(databases, objects),
      ...createSharedDatabaseActivities(databases, objects),
      ...selfHosted.activities,
      ...createRemovalChecks(databases, objects, selfHosted),
    },
    preflight,
  };
}
