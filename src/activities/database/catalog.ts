// The schema of exactly the tables a dump holds, read from Postgres's catalog (ddl.ts writes the
// DDL that recreates them). Postgres deparses every expression itself (format_type, pg_get_expr,
// pg_get_constraintdef, pg_get_indexdef), with search_path empty so every name comes out
// schema-qualified, as pg_dump does. @pgkit/schemainspect was the library candidate; it drops
// sequence parameters, wants its own client (pg-promise on an older pg) and inspects whole
// schemas, so this small reader is used instead.
import type { Session } from '../../adapters/postgres-session';

export const SCHEMA = 'public';

export interface CatalogColumn {
  name: string;
  /** format_type(), e.g. "character varying(32)" or "public.source_kind". */
  type: string;
  notNull: boolean;
  default?: string;
  collation?: string;
  /** GENERATED ALWAYS ('a') or BY DEFAULT ('d') AS IDENTITY. */
  identity?: 'a' | 'd';
  /** GENERATED ALWAYS AS (expression): not copied, Postgres computes it. */
  generated?: { expression: string; kind: 's' | 'v' };
}

export interface CatalogConstraint {
  name: string;
  /** p primary key, u unique, c check, f foreign key, x exclusion. */
  kind: 'p' | 'u' | 'c' | 'f' | 'x';
  definition: string;
}

export interface CatalogGrant {
  /** A role name, or PUBLIC. */
  grantee: string;
  privilege: string;
  grantable: boolean;
}

export interface CatalogTable {
  name: string;
  owner: string;
  columns: CatalogColumn[];
  constraints: CatalogConstraint[];
  /** Indexes that back no constraint, as pg_get_indexdef() prints them. */
  indexes: Array<{ name: string; definition: string }>;
  /** Triggers (not Postgres's own for foreign keys), as pg_get_triggerdef() prints them. */
  triggers: Array<{ name: string; definition: string }>;
  grants: CatalogGrant[];
}

export interface CatalogFunction {
  /** name(identity arguments) */
  signature: string;
  owner: string;
  /** pg_get_functiondef(): a whole CREATE OR REPLACE FUNCTION statement. */
  definition: string;
}

export interface CatalogSequence {
  name: string;
  owner: string;
  dataType: string;
  start: string;
  increment: string;
  min: string;
  max: string;
  cache: string;
  cycle: boolean;
  /** The column whose sequence this is (SERIAL or identity): dropped and recreated with its table. */
  ownedBy?: { table: string; column: string };
  /** An identity column's own sequence: the column creates it. */
  identity: boolean;
  lastValue: string;
  isCalled: boolean;
  grants: CatalogGrant[];
}

export interface CatalogType {
  name: string;
  owner: string;
  labels: string[];
}

export interface Catalog {
  schema: typeof SCHEMA;
  types: CatalogType[];
  /** Functions the tables' triggers call (MLflow 3.x: prevent_secrets_aad_mutation). */
  functions: CatalogFunction[];
  sequences: CatalogSequence[];
  tables: CatalogTable[];
}

export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

export function qualified(name: string): string {
  return `${quoteIdent(SCHEMA)}.${quoteIdent(name)}`;
}

/** public."name"(arguments), from a name(arguments) signature. */
export function qualifiedFunction(signature: string): string {
  const open = signature.indexOf('(');
  return `${qualified(signature.slice(0, open))}${signature.slice(open)}`;
}

/**
 * Reads the catalog of `tables` (in `public`), their sequences (owned by them or named in their
 * defaults) and the enum types their columns use. Run it inside the dump's snapshot; it sets
 * search_path empty for the rest of that transaction.
 */
export async function readCatalog(s: Session, tables: string[], functions: string[] = []): Promise<Catalog> {
  await s.query(`SET LOCAL search_path = ''`);
  const { rows: rels } = await s.query<{ oid: number; name: string; owner: string; acl: string | null }>(
    `SELECT c.oid::int AS oid, c.relname AS name, pg_catalog.pg_get_userbyid(c.relowner) AS owner
       FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND c.relname = ANY($2::text[])
      ORDER BY c.relname COLLATE "C"`,
    [SCHEMA, tables],
  );
  const oids = rels.map((r) => r.oid);
  const { rows: cols } = await s.query(
    `SELECT a.attrelid::int AS rel, a.attname AS name, pg_catalog.format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS not_null,
            a.attidentity AS identity, a.attgenerated AS generated, pg_catalog.pg_get_expr(d.adbin, d.adrelid) AS expr,
            CASE WHEN a.attcollation <> t.typcollation THEN pg_catalog.quote_ident(cn.nspname) || '.' || pg_catalog.quote_ident(co.collname) END AS collation
       FROM pg_catalog.pg_attribute a
       JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
       LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
       LEFT JOIN pg_catalog.pg_collation co ON co.oid = a.attcollation
       LEFT JOIN pg_catalog.pg_namespace cn ON cn.oid = co.collnamespace
      WHERE a.attrelid = ANY($1::oid[]) AND a.attnum > 0 AND NOT a.attisdropped
      ORDER BY a.attrelid, a.attnum`,
    [oids],
  );
  const { rows: cons } = await s.query(
    `SELECT c.conrelid::int AS rel, c.conname AS name, c.contype AS kind, pg_catalog.pg_get_constraintdef(c.oid) AS definition
       FROM pg_catalog.pg_constraint c
      WHERE c.conrelid = ANY($1::oid[]) AND c.contype IN ('p', 'u', 'c', 'f', 'x')
      ORDER BY c.conrelid, c.conname COLLATE "C"`,
    [oids],
  );
  const { rows: idx } = await s.query(
    `SELECT x.indrelid::int AS rel, i.relname AS name, pg_catalog.pg_get_indexdef(x.indexrelid) AS definition
       FROM pg_catalog.pg_index x JOIN pg_catalog.pg_class i ON i.oid = x.indexrelid
      WHERE x.indrelid = ANY($1::oid[])
        AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint c WHERE c.conindid = x.indexrelid AND c.conrelid = x.indrelid AND c.contype IN ('p', 'u', 'x'))
      ORDER BY i.relname COLLATE "C"`,
    [oids],
  );
  const { rows: trg } = await s.query(
    `SELECT t.tgrelid::int AS rel, t.tgname AS name, pg_catalog.pg_get_triggerdef(t.oid) AS definition
       FROM pg_catalog.pg_trigger t WHERE t.tgrelid = ANY($1::oid[]) AND NOT t.tgisinternal ORDER BY t.tgname COLLATE "C"`,
    [oids],
  );
  const { rows: fns } = await s.query(
    `SELECT p.proname || '(' || pg_catalog.pg_get_function_identity_arguments(p.oid) || ')' AS signature, pg_catalog.pg_get_userbyid(p.proowner) AS owner, pg_catalog.pg_get_functiondef(p.oid) AS definition
       FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
      WHERE n.nspname = $1 AND p.proname || '(' || pg_catalog.pg_get_function_identity_arguments(p.oid) || ')' = ANY($2::text[]) ORDER BY 1`,
    [SCHEMA, functions],
  );
  const grantsOf = async (oid: number[]) =>
    (
      await s.query(
        `SELECT c.oid::int AS rel, CASE WHEN g.grantee = 0 THEN 'PUBLIC' ELSE pg_catalog.pg_get_userbyid(g.grantee) END AS grantee, g.privilege_type AS privilege, g.is_grantable AS grantable
           FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) g
          WHERE c.oid = ANY($1::oid[]) AND g.grantee <> c.relowner
          ORDER BY 1, 2, 3`,
        [oid],
      )
    ).rows;
  const tableGrants = await grantsOf(oids);
  const byRel = <R extends Record<string, any>>(rows: R[], rel: number) => rows.filter((r) => r.rel === rel);

  const { rows: seqs } = await s.query(
    `SELECT c.oid::int AS oid, c.relname AS name, pg_catalog.pg_get_userbyid(c.relowner) AS owner, pg_catalog.format_type(q.seqtypid, NULL) AS data_type,
            q.seqstart::text AS start, q.seqincrement::text AS increment, q.seqmin::text AS min, q.seqmax::text AS max, q.seqcache::text AS cache, q.seqcycle AS cycle,
            o.relname AS owned_table, oa.attname AS owned_column, dep.deptype = 'i' AS identity
       FROM pg_catalog.pg_class c
       JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
       JOIN pg_catalog.pg_sequence q ON q.seqrelid = c.oid
       LEFT JOIN pg_catalog.pg_depend dep ON dep.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND dep.objid = c.oid
            AND dep.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND dep.deptype IN ('a', 'i')
       LEFT JOIN pg_catalog.pg_class o ON o.oid = dep.refobjid
       LEFT JOIN pg_catalog.pg_attribute oa ON oa.attrelid = dep.refobjid AND oa.attnum = dep.refobjsubid
      WHERE n.nspname = $1 AND c.relkind = 'S' AND (
            dep.refobjid = ANY($2::oid[])
         OR c.oid IN (SELECT d.refobjid FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_attrdef ad ON d.classid = 'pg_catalog.pg_attrdef'::pg_catalog.regclass AND d.objid = ad.oid
                       WHERE ad.adrelid = ANY($2::oid[]) AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass))
      ORDER BY c.relname COLLATE "C"`,
    [SCHEMA, oids],
  );
  const seqGrants = await grantsOf(seqs.map((q) => q.oid));
  const sequences: CatalogSequence[] = [];
  for (const q of seqs) {
    // A sequence is not transactional: its value is read as it stands, which is what setval restores.
    const state = await s.one(`SELECT last_value::text AS last_value, is_called FROM ${qualified(q.name)}`);
    sequences.push({
      name: q.name,
      owner: q.owner,
      dataType: q.data_type,
      start: q.start,
      increment: q.increment,
      min: q.min,
      max: q.max,
      cache: q.cache,
      cycle: q.cycle,
      ...(q.owned_table ? { ownedBy: { table: q.owned_table, column: q.owned_column } } : {}),
      identity: !!q.identity,
      lastValue: state.last_value,
      isCalled: state.is_called,
      grants: byRel(seqGrants, q.oid).map(({ grantee, privilege, grantable }) => ({ grantee, privilege, grantable })),
    });
  }

  const { rows: types } = await s.query(
    `SELECT t.typname AS name, pg_catalog.pg_get_userbyid(t.typowner) AS owner, array_agg(e.enumlabel::text ORDER BY e.enumsortorder) AS labels
       FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace JOIN pg_catalog.pg_enum e ON e.enumtypid = t.oid
      WHERE n.nspname = $1 AND t.oid IN (SELECT a.atttypid FROM pg_catalog.pg_attribute a WHERE a.attrelid = ANY($2::oid[]) AND a.attnum > 0 AND NOT a.attisdropped
                                          UNION SELECT t2.typelem FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t2 ON t2.oid = a.atttypid WHERE a.attrelid = ANY($2::oid[]))
      GROUP BY t.typname, t.typowner ORDER BY t.typname COLLATE "C"`,
    [SCHEMA, oids],
  );

  return {
    schema: SCHEMA,
    types: types.map((t) => ({ name: t.name, owner: t.owner, labels: t.labels })),
    functions: fns.map((f) => ({ signature: f.signature, owner: f.owner, definition: f.definition })),
    sequences,
    tables: rels.map((r) => ({
      name: r.name,
      owner: r.owner,
      columns: byRel(cols, r.oid).map((c) => ({
        name: c.name,
        type: c.type,
        notNull: c.not_null,
        ...(c.expr !== null && !c.generated ? { default: c.expr } : {}),
        ...(c.collation ? { collation: c.collation } : {}),
        ...(c.identity ? { identity: c.identity } : {}),
        ...(c.generated ? { generated: { expression: c.expr, kind: c.generated } } : {}),
      })),
      constraints: byRel(cons, r.oid).map(({ name, kind, definition }) => ({ name, kind, definition })),
      indexes: byRel(idx, r.oid).map(({ name, definition }) => ({ name, definition })),
      triggers: byRel(trg, r.oid).map(({ name, definition }) => ({ name, definition })),
      grants: byRel(tableGrants, r.oid).map(({ grantee, privilege, grantable }) => ({ grantee, privilege, grantable })),
    })),
  };
}
