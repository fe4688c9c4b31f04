// Which MLflow tracking-store schemas the data steps understand: the Alembic revisions MLflow has
// shipped since metrics gained `is_nan` (MLflow 1.x) through the MLflow that generated
// database/mlflow-revisions.json (from its own migrations), in order.
import type { Databases } from '../../adapters/postgres';
import type { CheckResult } from '../../types';
import { MLFLOW_REVISIONS, MLFLOW_VERSION } from '../database/mlflow-objects';

/** 181f10493468 added metrics.is_nan, which the backfill reads. */
export const KNOWN_MLFLOW_REVISIONS: readonly string[] = MLFLOW_REVISIONS.slice(MLFLOW_REVISIONS.indexOf('181f10493468'));

export interface StoreRevision {
  /** MLflow's revision in alembic_version, or undefined when none is one MLflow shipped or the target accepted. */
  mlflow?: string;
  /** Every revision the table holds: an app that shares the database (seed 000) may keep its own there. */
  all: string[];
}

/** What reading the revision needs: a pool, or the one connection a drop or restore runs on. */
export interface RevisionReader {
  query(sql: string): Promise<{ rows: Array<{ version_num: string }> }>;
}

/** alembic_version's rows, and which of them is MLflow's. Throws when the table does not exist. */
export async function readStoreRevision(db: RevisionReader, accepted: readonly string[]): Promise<StoreRevision> {
  const { rows } = await db.query('SELECT version_num FROM alembic_version ORDER BY version_num');
  const all = rows.map((r) => r.version_num);
  return { mlflow: all.find((r) => MLFLOW_REVISIONS.includes(r)) ?? all.find((r) => accepted.includes(r)), all };
}

/** 0.0: the store's Alembic revision is one we know, or one the operator accepted in data.acceptMlflowRevisions. */
export async function checkMlflowRevision(pool: ReturnType<Databases['pool']>, accepted: string[]): Promise<CheckResult> {
  const name = 'mlflow schema revision';
  let store: StoreRevision;
  try {
    store = await readStoreRevision(pool, accepted);
  } catch {
    return { name, ok: false, detail: 'no alembic_version table: this is not an MLflow tracking store, or it was never migrated. Check that databases.mlflow.urlEnv names the MLflow database.' };
  }
  if (!store.all.length) return { name, ok: false, detail: 'alembic_version is empty: the store was never migrated (run `mlflow db upgrade`), or this is not MLflow’s database' };
  const revision = store.mlflow;
  const others = store.all.filter((r) => r !== revision);
  const beside = others.length ? ` (alembic_version also holds ${others.join(', ')}, not MLflow's)` : '';
  if (revision && KNOWN_MLFLOW_REVISIONS.includes(revision)) {
    return { name, ok: true, detail: `revision ${revision}, one of the ${KNOWN_MLFLOW_REVISIONS.length} MLflow schemas (1.x to ${MLFLOW_VERSION}) this tool reads${beside}` };
  }
  if (revision && accepted.includes(revision)) return { name, ok: true, detail: `revision ${revision}, accepted in data.acceptMlflowRevisions${beside}` };
  const found = revision ?? store.all.join(', ');
  return {
    name,
    ok: false,
    detail:
      `revision ${found} is not an MLflow schema this tool knows (it reads MLflow 1.x to ${MLFLOW_VERSION}, latest ${KNOWN_MLFLOW_REVISIONS.at(-1)}). ` +
      `If the column check passes and a dry run's plan looks right, add "${store.all[0]}" to data.acceptMlflowRevisions in the target, then retry.`,
  };
}
