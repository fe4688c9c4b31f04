// The DDL that recreates a dump's catalog (catalog.ts reads it): before the data, the types,
// functions, sequences and tables; after it, keys, indexes, triggers, owners and grants, in the
// order pg_dump restores them.
import { qualified, qualifiedFunction, quoteIdent, type Catalog, type CatalogColumn, type CatalogConstraint, type CatalogGrant, type CatalogSequence, type CatalogTable } from './catalog';

function quoteLiteral(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

/** The columns a dump copies: a generated column is computed again on restore. */
export function copiedColumns(t: CatalogTable): string[] {
  return t.columns.filter((c) => !c.generated).map((c) => c.name);
}

function columnDdl(c: CatalogColumn, sequence?: CatalogSequence): string {
  const parts = [quoteIdent(c.name), c.type];
  if (c.collation) parts.push(`COLLATE ${c.collation}`);
  if (c.generated) parts.push(`GENERATED ALWAYS AS (${c.generated.expression}) ${c.generated.kind === 'v' ? 'VIRTUAL' : 'STORED'}`);
  if (c.identity) {
    const opts = sequence ? ` (${sequenceOptions(sequence)})` : '';
    parts.push(`GENERATED ${c.identity === 'a' ? 'ALWAYS' : 'BY DEFAULT'} AS IDENTITY${opts}`);
  }
  if (c.default !== undefined) parts.push(`DEFAULT ${c.default}`);
  if (c.notNull) parts.push('NOT NULL');
  return parts.join(' ');
}

/** An identity column's sequence options (its type is the column's: no AS). */
function sequenceOptions(q: CatalogSequence): string {
  return `SEQUENCE NAME ${qualified(q.name)} START WITH ${q.start} INCREMENT BY ${q.increment} MINVALUE ${q.min} MAXVALUE ${q.max} CACHE ${q.cache}${q.cycle ? ' CYCLE' : ' NO CYCLE'}`;
}

function grantDdl(what: string, g: CatalogGrant): string {
  return `GRANT ${g.privilege} ON ${what} TO ${g.grantee === 'PUBLIC' ? 'PUBLIC' : quoteIdent(g.grantee)}${g.grantable ? ' WITH GRANT OPTION' : ''}`;
}

/** Before the data: types, functions, free-standing sequences, tables with their columns. */
export function preDataDdl(c: Catalog, skip: ReadonlySet<string> = new Set()): string[] {
  const identitySeq = (t: string, col: string) => c.sequences.find((q) => q.identity && q.ownedBy?.table === t && q.ownedBy.column === col);
  return [
    ...c.types.map((t) => `CREATE TYPE ${qualified(t.name)} AS ENUM (${t.labels.map(quoteLiteral).join(', ')})`),
    ...(c.functions ?? []).map((f) => f.definition),
    ...c.sequences
      .filter((q) => !q.identity)
      .map((q) => `CREATE SEQUENCE ${qualified(q.name)} AS ${q.dataType} START WITH ${q.start} INCREMENT BY ${q.increment} MINVALUE ${q.min} MAXVALUE ${q.max} CACHE ${q.cache}${q.cycle ? ' CYCLE' : ' NO CYCLE'}`),
    ...c.tables
      .filter((t) => !skip.has(t.name))
      .map((t) => `CREATE TABLE ${qualified(t.name)} (\n  ${t.columns.map((col) => columnDdl(col, identitySeq(t.name, col.name))).join(',\n  ')}\n)`),
  ];
}

/** After the data: sequence values, keys and checks, then foreign keys, indexes, triggers, owners and grants. */
export function postDataDdl(c: Catalog, skip: ReadonlySet<string> = new Set()): string[] {
  const tables = c.tables.filter((t) => !skip.has(t.name));
  const constraint = (t: CatalogTable, k: CatalogConstraint) => `ALTER TABLE ${qualified(t.name)} ADD CONSTRAINT ${quoteIdent(k.name)} ${k.definition}`;
  return [
    ...c.sequences.map((q) => `SELECT pg_catalog.setval(${quoteLiteral(qualified(q.name))}, ${q.lastValue}, ${q.isCalled})`),
    ...c.sequences.filter((q) => q.ownedBy && !q.identity).map((q) => `ALTER SEQUENCE ${qualified(q.name)} OWNED BY ${qualified(q.ownedBy!.table)}.${quoteIdent(q.ownedBy!.column)}`),
    ...tables.flatMap((t) => t.constraints.filter((k) => k.kind !== 'f').map((k) => constraint(t, k))),
    ...tables.flatMap((t) => t.constraints.filter((k) => k.kind === 'f').map((k) => constraint(t, k))),
    ...tables.flatMap((t) => t.indexes.map((x) => x.definition)),
    // After the rows are in, as pg_dump does: a trigger does not fire on the restore's own COPY.
    ...tables.flatMap((t) => (t.triggers ?? []).map((x) => x.definition)),
    ...(c.functions ?? []).map((f) => `ALTER FUNCTION ${qualifiedFunction(f.signature)} OWNER TO ${quoteIdent(f.owner)}`),
    ...c.types.map((t) => `ALTER TYPE ${qualified(t.name)} OWNER TO ${quoteIdent(t.owner)}`),
    // A sequence owned by a column follows its table's owner (Postgres refuses to change it on its own).
    ...c.sequences.filter((q) => !q.ownedBy).map((q) => `ALTER SEQUENCE ${qualified(q.name)} OWNER TO ${quoteIdent(q.owner)}`),
    ...tables.map((t) => `ALTER TABLE ${qualified(t.name)} OWNER TO ${quoteIdent(t.owner)}`),
    ...tables.flatMap((t) => t.grants.map((g) => grantDdl(`TABLE ${qualified(t.name)}`, g))),
    ...c.sequences.flatMap((q) => q.grants.map((g) => grantDdl(`SEQUENCE ${qualified(q.name)}`, g))),
  ];
}

/** The whole DDL as a script, for a person reading the dump (the restore runs the statements itself). */
export function ddlScript(c: Catalog): string {
  return [`-- MLflow's objects as mlflow-decommission dumped them; data in data/*.copy.gz (COPY text format).`, `SET search_path = '';`, ...preDataDdl(c), '-- COPY each table here', ...postDataDdl(c)]
    .map((s) => (s.startsWith('--') || s.endsWith(';') ? s : `${s};`))
    .join('\n');
}
