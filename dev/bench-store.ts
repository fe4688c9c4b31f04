// The bench's MLflow store on MLflow's own schema: `mlflow db upgrade` (the installed MLflow,
// its newest revision, every index it creates) on a fresh database, then the seeded runs. The
// metrics table's indexes and constraints are dropped while seeding and recreated as MLflow
// defined them, so seeding 7M rows takes a minute, not ten.
import { spawnSync } from 'node:child_process';
import type pg from 'pg';
import { createMlflowSchema, seedMlflowRuns } from './mlflow-store';

type Queryable = Pick<pg.Pool, 'query'>;

/** Runs per seeding statement, so one INSERT … SELECT never holds the whole table. */
const SEED_CHUNK = 100;

/** MLflow's schema at its newest revision, created by MLflow itself; returns the revision. */
export async function createRealMlflowSchema(db: Queryable, url: string): Promise<string> {
  const sqlalchemyUrl = url.replace(/^postgres(ql)?:/, 'postgresql+psycopg2:');
  const run = spawnSync('mlflow', ['db', 'upgrade', sqlalchemyUrl], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  if (run.error || run.status !== 0) {
    throw new Error(`mlflow db upgrade failed (${run.error?.message ?? `exit ${run.status}`}): ${run.stderr?.slice(-2000)}\nInstall MLflow (./run setup) or pass --schema legacy.`);
  }
  // What SqlAlchemyStore does on first start: the Default experiment, which the seeded runs use.
  await db.query(
    `INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage, creation_time, last_update_time)
     VALUES (0, 'Default', 'mlflow-artifacts:/0', 'active', 1700000000000, 1700000000000) ON CONFLICT DO NOTHING`,
  );
  return (await db.query('SELECT version_num FROM alembic_version')).rows[0].version_num;
}

/** Seeds `runs` runs; with schema 'mlflow' on MLflow's real schema, else on the hand-written 2.x DDL. */
export async function seedBenchStore(
  db: Queryable,
  url: string,
  opts: { schema: 'mlflow' | 'legacy'; runs: number; metrics: number; epochs: number },
): Promise<{ runIds: string[]; revision: string; indexes: string[] }> {
  const revision = opts.schema === 'mlflow' ? await createRealMlflowSchema(db, url) : (await createMlflowSchema(db), '867495a8f9d4 (hand-written 2.x DDL)');
  // metrics' constraints and indexes as MLflow made them, to put back after the bulk load.
  const { rows: cons } = await db.query(
    `SELECT conname, pg_get_constraintdef(oid) AS def FROM pg_constraint WHERE conrelid = 'public.metrics'::regclass ORDER BY contype DESC`,
  );
  const { rows: idx } = await db.query(
    `SELECT indexrelid::regclass::text AS name, pg_get_indexdef(indexrelid) AS def FROM pg_index
      WHERE indrelid = 'public.metrics'::regclass AND indexrelid NOT IN (SELECT conindid FROM pg_constraint WHERE conrelid = 'public.metrics'::regclass)`,
  );
  for (const c of cons) await db.query(`ALTER TABLE metrics DROP CONSTRAINT "${c.conname}"`);
  for (const i of idx) await db.query(`DROP INDEX ${i.name}`);
  const runIds: string[] = [];
  for (let offset = 0; offset < opts.runs; offset += SEED_CHUNK) {
    runIds.push(...(await seedMlflowRuns(db, { runs: Math.min(SEED_CHUNK, opts.runs - offset), epochs: opts.epochs, metrics: opts.metrics, seed: 42, offset })));
  }
  // Primary key first (the foreign key sorts last by contype), then the plain indexes.
  for (const c of cons) await db.query(`ALTER TABLE metrics ADD CONSTRAINT "${c.conname}" ${c.def}`);
  for (const i of idx) await db.query(i.def);
  await db.query('VACUUM ANALYZE');
  const { rows } = await db.query(`SELECT indexdef FROM pg_indexes WHERE tablename = 'metrics' ORDER BY indexname`);
  return { runIds, revision, indexes: rows.map((r) => r.indexdef.replace(/^CREATE (UNIQUE )?INDEX /, '').replace(' USING btree', '')) };
}
