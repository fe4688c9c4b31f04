// Gate phase-3 and 5.1 for the shapes without a cloud: what Phase 3 removed is gone, and nothing
// else changed. The "before" comes from the snapshots Phase 3 saved before it acted; the "after"
// is read from the database server now.
import type { Databases } from '../../adapters/postgres';
import type { SelfHostedTarget, SharedDatabaseTarget, Target } from '../../config/schema';
import { ErrorType, fail } from '../../errors';
import type { ObjectStore } from '../../ports';
import { backupUri, shapeOf } from '../../shapes';
import type { CheckResult, StepContext } from '../../types';
import { listFiles } from '../../adapters/directory-archive';
import { mlflowPool } from '../data/app-table';
import { defineShapeCheck, defineShapeStep } from '../step';
import { SCHEMA } from './catalog';
import { ALEMBIC, readJson } from './mlflow-tables';
import type { ArtifactsManifest, DatabaseSnapshot, RoleSnapshot } from './self-hosted-server';
import { droppedSnapshotUri, type DroppedObjects } from './shared-database';

type Ctx = StepContext<Target>;

export function createRemovalChecks(databases: Databases, objects: ObjectStore, selfHosted: { otherDatabases(ctx: StepContext<SelfHostedTarget>): Promise<DatabaseSnapshot['otherDatabases']>; databaseRow(ctx: StepContext<SelfHostedTarget>): Promise<unknown>; roleRow(ctx: StepContext<SelfHostedTarget>): Promise<unknown> }) {
  async function sharedDatabase(ctx: StepContext<SharedDatabaseTarget>): Promise<CheckResult[]> {
    const snap = await readJson<DroppedObjects>(objects, droppedSnapshotUri(ctx));
    if (!snap) return [{ name: 'mlflow objects gone', ok: false, detail: `3.1 left no snapshot at ${droppedSnapshotUri(ctx)}: it dropped nothing` }];
    const pool = mlflowPool(databases, ctx.target);
    const { rows } = await pool.query(
      `SELECT c.relname AS name, c.relkind AS kind,
              (SELECT array_agg(a.attname || ' ' || pg_catalog.format_type(a.atttypid, a.atttypmod) ORDER BY 1) FROM pg_catalog.pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) AS columns
         FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'S')`,
      [SCHEMA],
    );
    const { rows: types } = await pool.query(`SELECT t.typname FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace WHERE n.nspname = $1 AND t.typname = ANY($2::text[])`, [SCHEMA, snap.types]);
    const { rows: fns } = await pool.query(
      `SELECT p.proname || '(' || pg_catalog.pg_get_function_identity_arguments(p.oid) || ')' AS f FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = $1`,
      [SCHEMA],
    );
    const now = new Map<string, string[]>(rows.map((r) => [r.name, r.columns ?? []]));
    const left = [...snap.tables, ...snap.sequences]
      .filter((t) => now.has(t))
      .concat(types.map((t) => t.typname))
      .concat(fns.map((f) => f.f).filter((f) => (snap.functions ?? []).includes(f)));
    let alembic: string;
    if (snap.alembic.decision === 'drop-table') alembic = now.has(ALEMBIC) ? `${ALEMBIC} is still there` : '';
    else {
      const { rows: av } = now.has(ALEMBIC) ? await pool.query(`SELECT version_num FROM public.${ALEMBIC} ORDER BY 1`) : { rows: [] };
      const have = av.map((r) => r.version_num);
      const appRows = snap.alembic.rows.filter((r) => r !== snap.alembic.mlflow);
      alembic = have.includes(snap.alembic.mlflow) ? `MLflow's row ${snap.alembic.mlflow} is still in ${ALEMBIC}` : appRows.every((r) => have.includes(r)) ? '' : `the app's ${ALEMBIC} rows ${appRows.join(', ')} are not all there (now: ${have.join(', ') || 'none'})`;
    }
    const changed = snap.otherTables.filter((t) => (now.get(t.name) ?? []).slice().sort().join('\n') !== t.columns.slice().sort().join('\n')).map((t) => (now.has(t.name) ? `${t.name} (columns changed)` : `${t.name} (gone)`));
    const known = new Set([...snap.otherTables.map((t) => t.name), ...snap.sequences, ALEMBIC]);
    const added = rows.filter((r) => r.kind !== 'S' && !known.has(r.name)).map((r) => r.name);
    return [
      { name: 'mlflow objects gone', ok: !left.length && !alembic, detail: left.length || alembic ? `still there: ${[...left, alembic].filter(Boolean).join('; ')}` : `${snap.tables.length} tables, ${snap.sequences.length} sequences, ${snap.types.length} types gone; ${ALEMBIC} ${snap.alembic.decision === 'drop-table' ? 'gone' : "kept with the app's rows only"}` },
      {
        name: 'app tables unchanged',
        ok: !changed.length,
        detail: changed.length
          ? `${changed.join(', ')} differ from before 3.1: find out who changed them (3.1 only drops MLflow's)`
          : `${snap.otherTables.length} app table(s) as they were, column for column${added.length ? `; added since, not by this migration: ${added.join(', ')}` : ''}`,
      },
    ];
  }

  async function selfHostedRemoval(ctx: StepContext<SelfHostedTarget>): Promise<CheckResult[]> {
    const snap = await readJson<DatabaseSnapshot>(objects, backupUri(ctx, 'snapshots/self-hosted/database.json'));
    const role = await readJson<RoleSnapshot>(objects, backupUri(ctx, 'snapshots/self-hosted/role.json'));
    const artifacts = await readJson<ArtifactsManifest>(objects, backupUri(ctx, 'artifacts/manifest.json'));
    const checks: CheckResult[] = [];
    const dbLeft = !!(await selfHosted.databaseRow(ctx));
    checks.push({ name: 'mlflow database gone', ok: !!snap && !dbLeft, detail: !snap ? '3.2 left no snapshot: it dropped nothing' : dbLeft ? `${ctx.target.mlflow.database} still exists` : `${ctx.target.mlflow.database} is gone` });
    const roleLeft = !!(await selfHosted.roleRow(ctx));
    checks.push({
      name: 'mlflow role',
      ok: !role || !roleLeft,
      detail: role ? (roleLeft ? `${ctx.target.mlflow.role} still exists after 3.3 dropped it` : `${ctx.target.mlflow.role} is gone`) : `${ctx.target.mlflow.role} ${roleLeft ? 'kept (3.3 found it owns something else)' : 'does not exist'}`,
    });
    if (snap) {
      const now = await selfHosted.otherDatabases(ctx);
      const key = (d: { name: string; oid: number; owner: string }) => `${d.name} (oid ${d.oid}, owner ${d.owner})`;
      const gone = snap.otherDatabases.filter((d) => !now.some((n) => key(n) === key(d))).map(key);
      const added = now.filter((d) => !snap.otherDatabases.some((n) => n.name === d.name)).map((d) => d.name);
      checks.push({
        name: 'other databases unchanged',
        ok: !gone.length,
        detail: gone.length ? `changed or gone since 3.2: ${gone.join(', ')}` : `${snap.otherDatabases.length} other database(s) as they were${added.length ? `; added since, not by this migration: ${added.join(', ')}` : ''}`,
      });
    }
    if (artifacts) {
      const left = await listFiles(artifacts.directory).catch(() => []);
      checks.push({ name: 'artifacts directory emptied', ok: !left.length, detail: left.length ? `${left.length} file(s) in ${artifacts.directory}` : `${artifacts.directory} is empty; ${artifacts.files.length} files are in ${artifacts.archive}` });
    }
    return checks;
  }

  const removalChecks = (ctx: Ctx) =>
    shapeOf(ctx.target) === 'self-hosted' ? selfHostedRemoval(ctx as StepContext<SelfHostedTarget>) : sharedDatabase(ctx as StepContext<SharedDatabaseTarget>);

  return {
    checkRemovalContained: defineShapeCheck<Target>((ctx: Ctx) => removalChecks(ctx)),

    verifyRemovalContained: defineShapeStep<Target>({
      async plan(ctx: Ctx) {
        return [{ call: 'postgres.catalog', resource: `postgres:${ctx.target.databases.mlflow.urlEnv}`, description: 'check what Phase 3 removed is gone and every other table (or database) is as Phase 3 found it' }];
      },
      async run(ctx: Ctx) {
        const checks = await removalChecks(ctx);
        const bad = checks.filter((c) => !c.ok);
        if (bad.length) fail(ErrorType.VerificationFailed, `5.1: ${bad.map((c) => `${c.name}: ${c.detail}`).join('; ')}`, { checks });
        return { summary: checks.map((c) => c.detail).join('; '), actions: [], facts: { checked: checks.map((c) => c.name) } };
      },
    }),

    explainNoCloudBill: defineShapeStep<Target>({
      async plan(ctx: Ctx) {
        return [{ call: 'none', resource: ctx.targetName, description: `skipped: no cloud bill (${shapeOf(ctx.target)} shape)` }];
      },
      async run(ctx: Ctx) {
        const where = shapeOf(ctx.target) === 'self-hosted' ? 'its own database on your Postgres server' : "tables in the app's database";
        return {
          summary: `skipped: there is no cloud bill to check — MLflow ran as ${where}. The record keeps the estimate of $${ctx.target.billing.estimatedMonthlySavingsUsd}/month.`,
          actions: [],
        };
      },
    }),
  };
}
