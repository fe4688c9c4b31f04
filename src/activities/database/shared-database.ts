// Seed 000: MLflow's tables sit in the app's own database. 3.1 drops exactly MLflow's objects in
// one transaction, after refusing every case where that would touch the app (a table with
// MLflow's name and other columns, an app foreign key or view onto MLflow's tables, an app column
// of MLflow's type); alembic_version goes only when it holds MLflow's revision alone. The undo
// recreates them from the dump of 0.1 and checks the row counts.
import type { Databases } from '../../adapters/postgres';
import type { Target } from '../../config/schema';
import { withSession } from '../../adapters/postgres-session';
import { ErrorType, fail } from '../../errors';
import type { ObjectStore } from '../../ports';
import { backupUri } from '../../shapes';
import type { CheckResult, PlannedAction } from '../../types';
import { mlflowPool, mlflowResource } from '../data/app-table';
import { defineShapeCheck, defineShapeStep } from '../step';
import { dumpBase, identifyOrFail, requireDump, type Ctx } from './backup';
import { qualified, qualifiedFunction } from './catalog';
import { readManifest, restoreDump } from './dump';
import { ALEMBIC, readJson, saveOnce, type AlembicPlan, type Identified } from './mlflow-tables';

/** What 3.1 found and dropped, saved before it acts: the undo and 5.1 read it. */
export interface DroppedObjects {
  takenAt: string;
  revision: string;
  alembic: AlembicPlan;
  tables: string[];
  rows: Record<string, number>;
  sequences: string[];
  types: string[];
  functions: string[];
  indexes: Array<{ name: string; table: string }>;
  /** The app's tables (names and columns) as they were: 5.1 finds them unchanged. */
  otherTables: Array<{ name: string; columns: string[] }>;
  dump: string;
}

export const droppedSnapshotUri = (ctx: Ctx) => backupUri(ctx, 'snapshots/shared-database/mlflow-objects.json');

/** The plan's and the gate's list: every object 3.1 drops, and what it leaves. */
export function describeDrop(ctx: Ctx, found: Identified): PlannedAction[] {
  const r = (name: string) => mlflowResource(ctx.target, name);
  const indexesOf = (t: string) => found.indexes.filter((i) => i.table === t).map((i) => i.name);
  return [
    { call: 'objects.write', resource: droppedSnapshotUri(ctx), description: "save the list of MLflow's objects and the app's tables for the undo and 5.1" },
    ...found.tables.map((t) => ({
      call: 'postgres.drop_table',
      resource: r(t),
      description: `drop MLflow's table ${t} (${found.rows.get(t)} rows${indexesOf(t).length ? `; with it its indexes ${indexesOf(t).join(', ')}` : ''})`,
      destructive: true,
    })),
    ...found.sequences.map((s) => ({ call: 'postgres.drop_sequence', resource: r(s), description: `sequence ${s} (goes with its table)`, destructive: true })),
    ...found.types.map((t) => ({ call: 'postgres.drop_type', resource: r(t), description: `drop MLflow's enum type ${t}`, destructive: true })),
    ...found.functions.map((f) => ({ call: 'postgres.drop_function', resource: r(f), description: `drop MLflow's function ${f} (its trigger goes with its table)`, destructive: true })),
    found.alembic.decision === 'drop-table'
      ? { call: 'postgres.drop_table', resource: r(ALEMBIC), description: `drop ${ALEMBIC}: it holds MLflow's revision ${found.alembic.mlflow} alone`, destructive: true }
      : {
          call: 'postgres.delete',
          resource: r(ALEMBIC),
          description: `keep ${ALEMBIC} (it holds the app's ${found.alembic.rows.filter((x) => x !== found.alembic.mlflow).join(', ')}); delete only MLflow's row ${found.alembic.mlflow}`,
          destructive: true,
        },
    ...found.refusals.map((why) => ({ call: 'refuse', resource: r(''), description: `REFUSED, nothing will be dropped: ${why.message}` })),
    { call: 'keep', resource: r(''), description: `left as they are: ${found.otherTables.length} other table(s): ${found.otherTables.map((t) => t.name).join(', ') || 'none'}` },
  ];
}

export function createSharedDatabaseActivities(databases: Databases, objects: ObjectStore) {
  const pool = (ctx: Ctx) => mlflowPool(databases, ctx.target);
  const resource = (ctx: Ctx) => `postgres:${ctx.target.databases.mlflow.urlEnv}`;

  /** Tables of a snapshot that still exist, and whether MLflow's alembic row or table does. */
  async function remaining(ctx: Ctx, snap: DroppedObjects): Promise<{ tables: string[]; alembic: boolean }> {
    const { rows } = await pool(ctx).query(`SELECT relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND relname = ANY($1::text[])`, [
      [...snap.tables, ALEMBIC],
    ]);
    const present = new Set<string>(rows.map((r) => r.relname));
    let alembic = present.has(ALEMBIC);
    if (alembic && snap.alembic.decision === 'delete-row') {
      const { rows: n } = await pool(ctx).query(`SELECT count(*)::int AS n FROM public.${ALEMBIC} WHERE version_num = $1`, [snap.alembic.mlflow]);
      alembic = n[0].n > 0;
    }
    return { tables: snap.tables.filter((t) => present.has(t)), alembic };
  }

  const dropMlflowTables = defineShapeStep<Target>({
    requiresGate: 'phase-2',
    async plan(ctx: Ctx) {
      const snap = await readJson<DroppedObjects>(objects, droppedSnapshotUri(ctx));
      if (snap) {
        const left = await remaining(ctx, snap);
        if (!left.tables.length && !left.alembic) return [];
      }
      return describeDrop(ctx, await identifyOrFail(pool(ctx), ctx));
    },
    async run(ctx: Ctx) {
      const snapUri = droppedSnapshotUri(ctx);
      const earlier = await readJson<DroppedObjects>(objects, snapUri);
      if (earlier) {
        const left = await remaining(ctx, earlier);
        if (!left.tables.length && !left.alembic) {
          return { summary: `MLflow's ${earlier.tables.length} tables were already dropped (snapshot ${snapUri})`, actions: [], facts: { snapshot: snapUri, tables: earlier.tables.length } };
        }
      }
      const manifest = await requireDump(objects, ctx, "dropping MLflow's tables");
      const dropped = await withSession(
        pool(ctx),
        async (s) => {
          // Waits for MLflow's last readers, not for ever: a lock still held after this is a live MLflow.
          await s.query(`SET LOCAL lock_timeout = '30s'`);
          const found = await identifyOrFail(s, ctx);
          if (found.refusals.length) {
            fail(ErrorType.ResourceMismatch, `nothing was dropped: ${found.refusals.map((x) => x.message).join(' | ')}`, { refusals: found.refusals });
          }
          const dropTables = [...found.tables, ...(found.alembic.decision === 'drop-table' ? [ALEMBIC] : [])];
          await s.query(`LOCK TABLE ${dropTables.map(qualified).join(', ')} IN ACCESS EXCLUSIVE MODE`);
          // Under the lock: the dump must hold every row there is, or it is no way back.
          const dumped = new Map(manifest.tables.map((t) => [t.table, t]));
          const problems: string[] = [];
          for (const t of [...found.tables, ALEMBIC]) {
            const d = dumped.get(t);
            if (!d) {
              problems.push(`${t} is not in the dump`);
              continue;
            }
            const { n } = await s.one(`SELECT count(*)::bigint AS n FROM ${qualified(t)}${d.where ? ` WHERE ${d.where}` : ''}`);
            if (Number(n) !== d.rows) problems.push(`${t}: ${d.rows} rows in the dump, ${n} now`);
          }
          if (problems.length) {
            fail(
              ErrorType.PreconditionFailed,
              `nothing was dropped: MLflow's tables changed since the dump of step 0.1 (${problems.slice(0, 10).join('; ')}). Stop every writer to MLflow, then roll back and start again for a fresh dump.`,
            );
          }
          const snap: DroppedObjects = {
            takenAt: new Date().toISOString(),
            revision: found.revision,
            alembic: found.alembic,
            tables: found.tables,
            rows: Object.fromEntries(found.rows),
            sequences: found.sequences,
            types: found.types,
            functions: found.functions,
            indexes: found.indexes,
            otherTables: found.otherTables,
            dump: `${dumpBase(ctx)}/manifest.json`,
          };
          await saveOnce(objects, snapUri, snap);
          // One statement for the tables: Postgres orders their foreign keys itself; no CASCADE, so an
          // app object that still depends on them makes the whole transaction fail instead.
          await s.query(`DROP TABLE ${dropTables.map(qualified).join(', ')}`);
          for (const q of found.sequences) await s.query(`DROP SEQUENCE IF EXISTS ${qualified(q)}`);
          for (const t of found.types) await s.query(`DROP TYPE ${qualified(t)}`);
          for (const f of found.functions) await s.query(`DROP FUNCTION ${qualifiedFunction(f)}`);
          if (found.alembic.decision === 'delete-row') await s.query(`DELETE FROM ${qualified(ALEMBIC)} WHERE version_num = $1`, [found.alembic.mlflow]);
          return snap;
        },
        { begin: 'BEGIN' },
      );
      const rows = Object.values(dropped.rows).reduce((n, x) => n + x, 0);
      return {
        summary:
          `dropped MLflow's ${dropped.tables.length} tables (${rows} rows), ${dropped.sequences.length} sequence(s), ${dropped.types.length} type(s), ${dropped.functions.length} function(s) in one transaction; ` +
          `${ALEMBIC}: ${dropped.alembic.decision === 'drop-table' ? 'dropped (MLflow’s alone)' : `kept for the app, MLflow’s row ${dropped.alembic.mlflow} deleted`}; ` +
          `${dropped.otherTables.length} app table(s) untouched; snapshot at ${snapUri}, data in the dump ${dumpBase(ctx)}`,
        actions: [],
        facts: { snapshot: snapUri, tables: dropped.tables.length, rows, alembic: dropped.alembic.decision, deletedAt: new Date().toISOString() },
      };
    },
  });

  const restoreMlflowTables = defineShapeStep<Target>({
    async plan(ctx: Ctx) {
      return [{ call: 'postgres.restore', resource: resource(ctx), description: `recreate MLflow's objects from ${dumpBase(ctx)} and check every table's row count` }];
    },
    async run(ctx: Ctx) {
      const snap = await readJson<DroppedObjects>(objects, droppedSnapshotUri(ctx));
      if (!snap) return { summary: '3.1 saved no snapshot, so it dropped nothing; nothing to restore', actions: [] };
      const manifest = await readManifest(objects, dumpBase(ctx));
      if (!manifest) fail(ErrorType.CannotRestore, `the dump ${dumpBase(ctx)}/manifest.json is missing: MLflow's tables cannot be recreated by the tool. Restore them from another backup, then skip this compensation.`);
      const left = await remaining(ctx, snap);
      const merge = new Set(snap.alembic.decision === 'delete-row' ? [ALEMBIC] : []);
      if (left.tables.length === snap.tables.length && left.alembic) {
        return { summary: `MLflow's ${snap.tables.length} tables are in place (never dropped, or already restored); nothing restored`, actions: [] };
      }
      if (left.tables.length) {
        fail(
          ErrorType.CannotRestore,
          `some of MLflow's tables exist and some do not (present: ${left.tables.join(', ')}), which 3.1's single transaction cannot leave: someone changed the schema since. Drop the present ones or restore by hand from ${dumpBase(ctx)}, then retry or skip.`,
        );
      }
      const restored = await withSession(pool(ctx), (s) => restoreDump(s, objects, manifest, merge), { begin: 'BEGIN' });
      return {
        summary: `recreated MLflow's ${snap.tables.length} tables${merge.size ? ` and its ${ALEMBIC} row` : ` and ${ALEMBIC}`} from ${dumpBase(ctx)}: ${restored.rows} rows, every table's count equal to the dump`,
        actions: [],
        facts: { restoredRows: restored.rows, tables: restored.tables },
      };
    },
  });

  // Gate phase-2: exactly what 3.1 will drop, and every reason it would refuse.
  const checkMlflowTablesDroppable = defineShapeCheck<Target>(async (ctx: Ctx): Promise<CheckResult[]> => {
    const found = await identifyOrFail(pool(ctx), ctx);
    const rows = [...found.rows.values()].reduce((n, x) => n + x, 0);
    return [
      {
        name: 'mlflow objects',
        ok: found.tables.length > 0,
        detail: `MLflow ${found.revision}: tables ${found.tables.join(', ')} (${rows} rows); sequences ${found.sequences.join(', ') || 'none'}; types ${found.types.join(', ') || 'none'}; functions ${found.functions.join(', ') || 'none'}; ${found.indexes.length} indexes`,
      },
      {
        name: ALEMBIC,
        ok: true,
        detail: found.alembic.decision === 'drop-table' ? `holds MLflow's ${found.alembic.mlflow} alone: dropped with MLflow's tables` : `shared with the app: kept, MLflow's row ${found.alembic.mlflow} deleted`,
      },
      { name: 'app tables kept', ok: true, detail: found.otherTables.map((t) => t.name).join(', ') || 'none' },
      { name: 'refusals', ok: found.refusals.length === 0, detail: found.refusals.length ? found.refusals.map((x) => x.message).join(' | ') : 'none: no app object depends on MLflow’s' },
    ];
  });

  return { dropMlflowTables, restoreMlflowTables, checkMlflowTablesDroppable };
}
