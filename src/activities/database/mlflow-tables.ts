// Which of a database's objects are MLflow's, and what stands in the way of dropping them: the
// schema of the revision in alembic_version (from MLflow's own migrations) names the tables, and a
// table counts as MLflow's only with MLflow's columns. In a shared database (seed 000) everything
// else is the app's; alembic_version may be either's, or both's.
import type { ObjectStore } from '../../ports';
import { readStoreRevision } from '../data/mlflow-schema';
import { SCHEMA } from './catalog';
import { MLFLOW_REVISIONS, mlflowObjectsAt } from './mlflow-objects';

export interface Queryable {
  query(sql: string, params?: unknown[]): Promise<{ rows: any[] }>;
}

export const ALEMBIC = 'alembic_version';

export interface AlembicPlan {
  /** Every revision in the table. */
  rows: string[];
  mlflow: string;
  /**
   * drop-table: it holds MLflow's revision alone, so it is MLflow's and goes with the rest.
   * delete-row: it holds the app's revision(s) too: the table stays, only MLflow's row is deleted
   * (an Alembic that finds a revision it cannot locate refuses to run, so the row must not stay
   * behind MLflow's tables), and the undo puts the row back.
   */
  decision: 'drop-table' | 'delete-row';
}

export interface Refusal {
  /** not-mlflow: a table with MLflow's name and other columns; the others: an app object that depends on MLflow's. */
  case: 'not-mlflow' | 'app-foreign-key' | 'app-view' | 'app-type' | 'app-trigger';
  message: string;
}

export interface Identified {
  /** The revision whose schema names the objects (the newest known for a newer, accepted one). */
  revision: string;
  alembic: AlembicPlan;
  /** MLflow's tables present, alembic_version not among them. */
  tables: string[];
  /** Rows per MLflow table, for the plan. */
  rows: Map<string, number>;
  /** Sequences owned by, or read by a default of, MLflow's tables. */
  sequences: string[];
  /** Enum types MLflow's columns use. */
  types: string[];
  /** MLflow's functions present, as name(arguments); its triggers go with their tables. */
  functions: string[];
  indexes: Array<{ name: string; table: string }>;
  /** Tables left as they are: the app's (or anyone's but MLflow's). */
  otherTables: Array<{ name: string; columns: string[] }>;
  /** Reasons not to drop, each saying which case it is and what to do. Empty when 3.1 may act. */
  refusals: Refusal[];
  /** Worth knowing, not in the way (e.g. a newer revision accepted by the operator). */
  notes: string[];
}

interface LiveTable {
  oid: number;
  name: string;
  columns: Array<[string, string]>;
}

async function liveTables(db: Queryable): Promise<LiveTable[]> {
  const { rows } = await db.query(
    `SELECT c.oid::int AS oid, c.relname AS name,
            json_agg(json_build_array(a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod)) ORDER BY a.attnum) AS columns
       FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
       JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
      WHERE n.nspname = $1 AND c.relkind IN ('r', 'p')
      GROUP BY c.oid, c.relname ORDER BY c.relname COLLATE "C"`,
    [SCHEMA],
  );
  return rows;
}

const columnSet = (cols: Array<[string, string]>) => cols.map(([n, t]) => `${n} ${t}`).sort();

/**
 * Reads the database as it is now. `accepted` are revisions the operator accepted
 * (data.acceptMlflowRevisions); a newer one is read with the newest schema this tool knows.
 */
export async function identifyMlflowObjects(db: Queryable, accepted: readonly string[]): Promise<Identified> {
  const tables = await liveTables(db);
  const alembicTable = tables.find((t) => t.name === ALEMBIC);
  if (!alembicTable) throw new NotAnMlflowStore(`no ${ALEMBIC} table in schema ${SCHEMA}: MLflow's revision cannot be read, so its tables cannot be told from the app's. Check databases.mlflow.urlEnv.`);
  const store = await readStoreRevision(db, accepted);
  if (!store.mlflow) {
    throw new NotAnMlflowStore(
      `${ALEMBIC} holds ${store.all.length ? store.all.join(', ') : 'no revision'}, none of them MLflow's (up to ${MLFLOW_REVISIONS.at(-1)}): which tables are MLflow's cannot be told. ` +
        `If MLflow's row was removed, put it back (INSERT INTO ${ALEMBIC} VALUES ('<revision>')); if it is newer than this tool, add it to data.acceptMlflowRevisions.`,
    );
  }
  const notes: string[] = [];
  let objects = mlflowObjectsAt(store.mlflow);
  if (!objects) {
    objects = mlflowObjectsAt(MLFLOW_REVISIONS.at(-1)!)!;
    notes.push(`revision ${store.mlflow} is newer than the schemas this tool knows: MLflow's objects are taken from ${objects.revision}; a table a newer MLflow added is left in place (it shows among the other tables)`);
  }
  const others = store.all.filter((r) => r !== store.mlflow);
  const alembic: AlembicPlan = { rows: store.all, mlflow: store.mlflow, decision: others.length ? 'delete-row' : 'drop-table' };
  if (others.length) notes.push(`${ALEMBIC} also holds ${others.join(', ')} (the app's): the table stays; only MLflow's row ${store.mlflow} is deleted, and put back on rollback`);

  const refusals: Refusal[] = [];
  const mine: LiveTable[] = [];
  const otherTables: Identified['otherTables'] = [];
  for (const t of tables) {
    if (t.name === ALEMBIC) continue;
    const expected = objects.tables.get(t.name);
    if (!expected) {
      otherTables.push({ name: t.name, columns: columnSet(t.columns) });
      continue;
    }
    const have = columnSet(t.columns);
    const want = columnSet(expected);
    if (have.join('\n') === want.join('\n')) {
      mine.push(t);
      continue;
    }
    otherTables.push({ name: t.name, columns: have });
    const extra = have.filter((c) => !want.includes(c));
    const lacking = want.filter((c) => !have.includes(c));
    refusals.push({
      case: 'not-mlflow',
      message: `not MLflow's table: "${t.name}" has MLflow's name but not the columns MLflow ${objects.revision} gives it (${[...extra.map((c) => `+${c}`), ...lacking.map((c) => `-${c}`)].join(', ')}), so it may be the app's. ` +
        `Nothing is dropped while it is in doubt: rename the app's table, or restore MLflow's columns if someone altered them, then retry.`,
    });
  }
  const myOids = mine.map((t) => t.oid);
  if (alembic.decision === 'drop-table') myOids.push(alembicTable.oid);

  const { rows: fks } = await db.query(
    `SELECT c.conname AS name, f.relname AS from_table, t.relname AS to_table
       FROM pg_catalog.pg_constraint c JOIN pg_catalog.pg_class f ON f.oid = c.conrelid JOIN pg_catalog.pg_class t ON t.oid = c.confrelid
      WHERE c.contype = 'f' AND c.confrelid = ANY($1::oid[]) AND NOT c.conrelid = ANY($1::oid[]) ORDER BY 1`,
    [myOids],
  );
  for (const fk of fks) {
    refusals.push({
      case: 'app-foreign-key',
      message: `an app table references MLflow's: foreign key "${fk.name}" on "${fk.from_table}" references "${fk.to_table}", so dropping it would break the app's table. ` +
        `Drop that constraint (ALTER TABLE ${fk.from_table} DROP CONSTRAINT ${fk.name}) once the app no longer needs MLflow's rows, then retry.`,
    });
  }
  const { rows: views } = await db.query(
    `SELECT DISTINCT v.relname AS view, t.relname AS table
       FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_rewrite r ON r.oid = d.objid JOIN pg_catalog.pg_class v ON v.oid = r.ev_class
       JOIN pg_catalog.pg_class t ON t.oid = d.refobjid
      WHERE d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass AND d.refobjid = ANY($1::oid[]) AND NOT v.oid = ANY($1::oid[]) ORDER BY 1, 2`,
    [myOids],
  );
  for (const v of views) refusals.push({ case: 'app-view', message: `an app view reads MLflow's table: "${v.view}" selects from "${v.table}". Drop or rewrite the view, then retry.` });

  const { rows: seqs } = await db.query(
    `SELECT DISTINCT s.relname AS name FROM pg_catalog.pg_class s JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = s.oid
      WHERE s.relkind = 'S' AND d.refobjid = ANY($1::oid[]) AND d.deptype IN ('a', 'i')
     UNION
     SELECT s.relname FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_attrdef ad ON d.classid = 'pg_catalog.pg_attrdef'::pg_catalog.regclass AND d.objid = ad.oid
       JOIN pg_catalog.pg_class s ON s.oid = d.refobjid AND s.relkind = 'S'
      WHERE ad.adrelid = ANY($1::oid[])
     ORDER BY 1`,
    [myOids],
  );
  const { rows: types } = await db.query(
    `SELECT DISTINCT t.typname AS name, bool_or(NOT a.attrelid = ANY($1::oid[])) AS shared
       FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
       JOIN pg_catalog.pg_attribute a ON a.atttypid = t.oid AND a.attnum > 0 AND NOT a.attisdropped
       JOIN pg_catalog.pg_class c ON c.oid = a.attrelid AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
      WHERE n.nspname = $2 AND t.typtype = 'e'
      GROUP BY t.typname HAVING bool_or(a.attrelid = ANY($1::oid[])) ORDER BY 1`,
    [myOids, SCHEMA],
  );
  for (const t of types.filter((x) => x.shared)) {
    refusals.push({ case: 'app-type', message: `an app table uses MLflow's type: enum "${t.name}" is also a column type outside MLflow's tables. Change that column's type, then retry.` });
  }
  const { rows: indexes } = await db.query(
    `SELECT i.relname AS name, t.relname AS table FROM pg_catalog.pg_index x JOIN pg_catalog.pg_class i ON i.oid = x.indexrelid JOIN pg_catalog.pg_class t ON t.oid = x.indrelid
      WHERE x.indrelid = ANY($1::oid[]) ORDER BY 1`,
    [myOids],
  );
  const { rows: fns } = await db.query(
    `SELECT p.oid::int AS oid, p.proname || '(' || pg_catalog.pg_get_function_identity_arguments(p.oid) || ')' AS signature
       FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = $1 ORDER BY 2`,
    [SCHEMA],
  );
  const functions = fns.filter((f) => objects.functions.has(f.signature));
  const { rows: appTriggers } = await db.query(
    `SELECT t.tgname AS name, c.relname AS table, p.proname AS fn FROM pg_catalog.pg_trigger t JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid JOIN pg_catalog.pg_proc p ON p.oid = t.tgfoid
      WHERE NOT t.tgisinternal AND t.tgfoid = ANY($1::oid[]) AND NOT t.tgrelid = ANY($2::oid[]) ORDER BY 1`,
    [functions.map((f) => f.oid), myOids],
  );
  for (const t of appTriggers) {
    refusals.push({ case: 'app-trigger', message: `an app trigger calls MLflow's function: trigger "${t.name}" on "${t.table}" runs ${t.fn}(). Drop the trigger or give the app its own function, then retry.` });
  }
  const rows = new Map<string, number>();
  for (const t of mine) {
    const { rows: n } = await db.query(`SELECT count(*)::bigint AS n FROM "${SCHEMA}"."${t.name.replace(/"/g, '""')}"`);
    rows.set(t.name, Number(n[0].n));
  }
  return {
    revision: objects.revision,
    alembic,
    tables: mine.map((t) => t.name),
    rows,
    sequences: seqs.map((s) => s.name),
    types: types.map((t) => t.name),
    functions: functions.map((f) => f.signature),
    indexes,
    otherTables,
    refusals,
    notes,
  };
}

/** The database is not one whose MLflow objects can be told apart: nothing may be dumped or dropped by name. */
export class NotAnMlflowStore extends Error {
  override name = 'NotAnMlflowStore';
}

/** What 0.1 dumps: MLflow's tables and functions, and alembic_version (only MLflow's row of it when the app shares it). */
export function dumpSelection(found: Identified): { tables: string[]; functions: string[]; where: Map<string, string> } {
  const where = new Map<string, string>();
  if (found.alembic.decision === 'delete-row') where.set(ALEMBIC, `version_num = '${found.alembic.mlflow.replace(/'/g, "''")}'`);
  return { tables: [...found.tables, ALEMBIC].sort(), functions: found.functions, where };
}

/** Saves JSON beside the dump; the first snapshot wins, so a retry keeps what was there before the drop. */
export async function saveOnce(objects: ObjectStore, uri: string, body: unknown): Promise<void> {
  if (!(await objects.stat(uri))) await objects.write(uri, JSON.stringify(body, null, 2), 'application/json');
}

export async function readJson<T>(objects: ObjectStore, uri: string): Promise<T | undefined> {
  const body = await objects.read(uri);
  return body ? (JSON.parse(body.toString('utf8')) as T) : undefined;
}
