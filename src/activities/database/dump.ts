// The logical dump of MLflow's tables (0.1 for the shapes without Cloud SQL), made by the worker
// itself: no pg_dump on anyone's machine. One REPEATABLE READ snapshot; per table a COPY (text
// format, gzip) streamed to the backup location; schema.json (the catalog the restore recreates)
// and schema.sql (the same as DDL, for people); manifest.json last, so a dump with a manifest is
// whole. Verified by content: each file is read back, its rows counted and its sha256 compared.
//   <backup>/<migration>/dump/manifest.json · schema.json · schema.sql · data/<table>.copy.gz
import { createHash } from 'node:crypto';
import { Transform, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createGzip } from 'node:zlib';
import type { Databases } from '../../adapters/postgres';
import { withSession, type Session } from '../../adapters/postgres-session';
import type { ObjectStore } from '../../ports';
import { activityContext, heartbeat } from '../heartbeat';
import { qualified, quoteIdent, readCatalog, type Catalog } from './catalog';
import { copiedColumns, ddlScript, postDataDdl, preDataDdl } from './ddl';

type Pool = ReturnType<Databases['pool']>;

export const DUMP_FORMAT = 'mlflow-decommission/logical-dump@1';

export interface DumpTable {
  table: string;
  /** The columns copied, in order (generated columns are computed again on restore). */
  columns: string[];
  /** Only these rows (alembic_version shared with an app: MLflow's row only). */
  where?: string;
  rows: number;
  bytes: number;
  sha256: string;
  uri: string;
}

export interface DumpManifest {
  format: typeof DUMP_FORMAT;
  migrationId: string;
  createdAt: string;
  /** Where it was read from: the env var and database, never the connection string. */
  source: string;
  serverVersion: string;
  schemaUri: string;
  schemaSha256: string;
  tables: DumpTable[];
}

const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

function cancellation(): AbortSignal | undefined {
  return activityContext()?.cancellationSignal;
}

/** Counts bytes and hashes them as they pass; heartbeats now and then so a long COPY is seen alive. */
function tap(progress: Record<string, unknown>): Transform & { bytes: number; digest(): string } {
  const hash = createHash('sha256');
  let last = Date.now();
  const t = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      out.bytes += chunk.length;
      if (Date.now() - last > 5_000) {
        last = Date.now();
        heartbeat({ ...progress, bytes: out.bytes });
      }
      cb(null, chunk);
    },
  });
  const out = Object.assign(t, { bytes: 0, digest: () => hash.digest('hex') });
  return out;
}

/** A sink that counts COPY text rows: one newline ends each row (a newline inside a value is written as \n). */
function lineCounter(): Writable & { lines: number } {
  const w = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) out.lines++;
      cb();
    },
  });
  const out = Object.assign(w, { lines: 0 });
  return out;
}

export interface WriteDumpOptions {
  tables: string[];
  /** Functions that go with the tables, as name(arguments). */
  functions?: string[];
  where?: ReadonlyMap<string, string>;
  base: string;
  migrationId: string;
  source: string;
}

/** Dumps `tables` from one snapshot and writes the manifest last. */
export async function writeDump(pool: Pool, objects: ObjectStore, opts: WriteDumpOptions): Promise<DumpManifest> {
  const signal = cancellation();
  const { catalog, tables, serverVersion } = await withSession(
    pool,
    async (s) => {
      await s.query('SET LOCAL extra_float_digits = 3');
      const catalog = await readCatalog(s, opts.tables, opts.functions);
      const missing = opts.tables.filter((t) => !catalog.tables.some((c) => c.name === t));
      if (missing.length) throw new Error(`tables ${missing.join(', ')} disappeared while the dump was read`);
      const { v: serverVersion } = await s.one<{ v: string }>('SHOW server_version');
      const out: DumpTable[] = [];
      for (const t of catalog.tables) {
        const columns = copiedColumns(t);
        const where = opts.where?.get(t.name);
        const uri = `${opts.base}/data/${t.name}.copy.gz`;
        const meter = tap({ table: t.name, tablesDone: out.length, tablesTotal: catalog.tables.length });
        const sql = `COPY (SELECT ${columns.map(quoteIdent).join(', ')} FROM ${qualified(t.name)}${where ? ` WHERE ${where}` : ''}) TO STDOUT`;
        const rowsCopied = await s.copyOut(sql, [createGzip(), meter, objects.writeStream(uri, 'application/gzip')], signal);
        out.push({ table: t.name, columns, ...(where ? { where } : {}), rows: rowsCopied, bytes: meter.bytes, sha256: meter.digest(), uri });
        heartbeat({ tablesDone: out.length, tablesTotal: catalog.tables.length, table: t.name });
      }
      return { catalog, tables: out, serverVersion };
    },
    { begin: 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY' },
  );
  const schema = JSON.stringify(catalog, null, 2);
  const schemaUri = `${opts.base}/schema.json`;
  await objects.write(schemaUri, schema, 'application/json');
  await objects.write(`${opts.base}/schema.sql`, ddlScript(catalog), 'application/sql');
  const manifest: DumpManifest = {
    format: DUMP_FORMAT,
    migrationId: opts.migrationId,
    createdAt: new Date().toISOString(),
    source: opts.source,
    serverVersion,
    schemaUri,
    schemaSha256: sha256(schema),
    tables,
  };
  // Read back before the manifest exists: a dump whose files do not hold what was copied never counts.
  const problems = await verifyDumpContent(objects, manifest);
  if (problems.length) throw new Error(`the dump did not read back as written: ${problems.join('; ')}`);
  await objects.write(`${opts.base}/manifest.json`, JSON.stringify(manifest, null, 2), 'application/json');
  return manifest;
}

export async function readManifest(objects: ObjectStore, base: string): Promise<DumpManifest | undefined> {
  const body = await objects.read(`${base}/manifest.json`);
  if (!body) return undefined;
  const manifest = JSON.parse(body.toString('utf8')) as DumpManifest;
  if (manifest.format !== DUMP_FORMAT) throw new Error(`${base}/manifest.json is not a ${DUMP_FORMAT} manifest (format ${String(manifest.format)})`);
  return manifest;
}

export async function readCatalogFile(objects: ObjectStore, manifest: DumpManifest): Promise<Catalog> {
  const body = await objects.read(manifest.schemaUri);
  if (!body) throw new Error(`${manifest.schemaUri} is missing`);
  if (sha256(body) !== manifest.schemaSha256) throw new Error(`${manifest.schemaUri} does not match the manifest's sha256`);
  return JSON.parse(body.toString('utf8')) as Catalog;
}

/** Reads every data file: present, the sha256 the manifest names, and as many rows as were copied. */
export async function verifyDumpContent(objects: ObjectStore, manifest: DumpManifest): Promise<string[]> {
  const problems: string[] = [];
  const schema = await objects.read(manifest.schemaUri);
  if (!schema) problems.push(`${manifest.schemaUri} missing`);
  else if (sha256(schema) !== manifest.schemaSha256) problems.push(`${manifest.schemaUri}: sha256 differs from the manifest`);
  for (const t of manifest.tables) {
    if (!(await objects.stat(t.uri))) {
      problems.push(`${t.uri} missing`);
      continue;
    }
    const meter = tap({ verifying: t.table });
    const lines = lineCounter();
    try {
      await pipeline([objects.readStream(t.uri), meter, createGunzip(), lines], { signal: cancellation() });
    } catch (err) {
      problems.push(`${t.uri} cannot be read back (${(err as Error).message})`);
      continue;
    }
    if (meter.digest() !== t.sha256) problems.push(`${t.table}: ${t.uri} has a different sha256 than the manifest`);
    if (lines.lines !== t.rows) problems.push(`${t.table}: ${lines.lines} rows in ${t.uri}, ${t.rows} copied`);
  }
  return problems;
}

/** Each dumped table's rows now, against the dump: a store still being written to has moved on. */
export async function compareLiveCounts(pool: Pool, manifest: DumpManifest): Promise<string[]> {
  const problems: string[] = [];
  for (const t of manifest.tables) {
    const { rows } = await pool.query(`SELECT count(*)::bigint AS n FROM ${qualified(t.table)}${t.where ? ` WHERE ${t.where}` : ''}`);
    const now = Number(rows[0].n);
    if (now !== t.rows) problems.push(`${t.table}: ${t.rows} rows in the dump, ${now} now`);
  }
  return problems;
}

/**
 * Recreates the dumped objects in the session's transaction: types, sequences and tables, their
 * rows, then keys, indexes, owners and grants; then counts every table against the manifest.
 * A table in `merge` already exists (alembic_version kept for the app): its dumped rows are added.
 */
export async function restoreDump(s: Session, objects: ObjectStore, manifest: DumpManifest, merge: ReadonlySet<string> = new Set()): Promise<{ tables: number; rows: number }> {
  const catalog = await readCatalogFile(objects, manifest);
  const signal = cancellation();
  await s.query(`SET LOCAL search_path = ''`);
  for (const sql of preDataDdl(catalog, merge)) await s.query(sql);
  let rows = 0;
  for (const t of manifest.tables) {
    const cols = t.columns.map(quoteIdent).join(', ');
    const source = () => objects.readStream(t.uri);
    if (merge.has(t.table)) {
      await s.query(`CREATE TEMPORARY TABLE restore_merge ON COMMIT DROP AS SELECT ${cols} FROM ${qualified(t.table)} WITH NO DATA`);
      await s.copyIn(`COPY pg_temp.restore_merge (${cols}) FROM STDIN`, source(), [tap({ restoring: t.table }), createGunzip()], signal);
      await s.query(`INSERT INTO ${qualified(t.table)} (${cols}) SELECT ${cols} FROM pg_temp.restore_merge ON CONFLICT DO NOTHING`);
      const found = await s.one(`SELECT count(*)::bigint AS n FROM (SELECT ${cols} FROM pg_temp.restore_merge INTERSECT SELECT ${cols} FROM ${qualified(t.table)}) x`);
      await s.query('DROP TABLE pg_temp.restore_merge');
      if (Number(found.n) !== t.rows) throw new Error(`${t.table}: ${found.n} of the dump's ${t.rows} rows are back`);
    } else {
      const copied = await s.copyIn(`COPY ${qualified(t.table)} (${cols}) FROM STDIN`, source(), [tap({ restoring: t.table }), createGunzip()], signal);
      if (copied !== t.rows) throw new Error(`${t.table}: ${copied} rows copied in, the dump holds ${t.rows}`);
    }
    rows += t.rows;
    heartbeat({ restoring: t.table, rows });
  }
  for (const sql of postDataDdl(catalog, merge)) await s.query(sql);
  // Counted again once keys and indexes are on: what the rollback promises is equal row counts.
  for (const t of manifest.tables.filter((x) => !merge.has(x.table))) {
    const { n } = await s.one(`SELECT count(*)::bigint AS n FROM ${qualified(t.table)}`);
    if (Number(n) !== t.rows) throw new Error(`${t.table}: ${n} rows after the restore, the dump holds ${t.rows}`);
  }
  return { tables: manifest.tables.length, rows };
}
