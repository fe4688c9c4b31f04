// 0.6: every table of the MLflow store, as gzip CSV with a header, streamed to the backup bucket
// with a manifest of row counts, sizes and sha256 — so the raw data outlives the database even
// if the SQL export (0.1) cannot be restored.
import { createHash } from 'node:crypto';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import type { Databases } from '../../adapters/postgres';
import { copyOut } from '../../adapters/postgres-streams';
import type { Target } from '../../config/schema';
import type { ObjectStore } from '../../ports';
import { backupRoot, shapeOf } from '../../shapes';
import type { StepContext, StepResult } from '../../types';
import { ALEMBIC, identifyMlflowObjects } from '../database/mlflow-tables';
import { mlflowPool, mlflowResource } from './app-table';
import { cancellationSignal, heartbeat, throwIfCancelled } from '../heartbeat';
import { defineShapeStep } from '../step';

/** gzip is the export's bottleneck (CPU): level 1 ran 1.5× as fast as the default 6 for 14% more
 * bytes on 7M metric rows (npm run bench:backfill, README "Backfill and export speed"). */
const GZIP_LEVEL = 1;

export interface ManifestEntry {
  table: string;
  rows: number;
  bytes: number;
  sha256: string;
  uri: string;
}

export interface RawManifest {
  migrationId: string;
  createdAt: string;
  tables: ManifestEntry[];
}

export function rawExportBase(ctx: StepContext<Target>): string {
  return `${backupRoot(ctx.target)}/${ctx.migrationId}/raw`;
}

export function manifestUri(ctx: StepContext<Target>): string {
  return `${rawExportBase(ctx)}/manifest.json`;
}

/** The store's tables, from information_schema (whatever MLflow version created them). */
export async function storeTables(databases: Databases, target: Target): Promise<string[]> {
  const { rows } = await mlflowPool(databases, target).query(
    `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY table_name COLLATE "C"`,
  );
  const tables: string[] = rows.map((r) => r.table_name);
  if (shapeOf(target) !== 'shared-database') return tables;
  // Seed 000: the app's tables share the schema; only MLflow's (by its revision's schema) are exported.
  const found = await identifyMlflowObjects(mlflowPool(databases, target), target.data.acceptMlflowRevisions);
  const mine = new Set([...found.tables, ALEMBIC]);
  return tables.filter((t) => mine.has(t));
}

export async function countRows(databases: Databases, target: Target, table: string): Promise<number> {
  const { rows } = await mlflowPool(databases, target).query(`SELECT count(*)::bigint AS n FROM public.${quoteIdent(table)}`);
  return Number(rows[0].n);
}

function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** One table, COPY → gzip → upload; heartbeats per chunk, and a cancelled activity aborts the stream. */
async function exportTable(databases: Databases, target: Target, objects: ObjectStore, table: string, uri: string, progress: Record<string, unknown>): Promise<ManifestEntry> {
  const hash = createHash('sha256');
  let bytes = 0;
  const tap = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      bytes += chunk.length;
      heartbeat({ ...progress, table, bytes });
      cb(null, chunk);
    },
  });
  const { stream, release } = await copyOut(mlflowPool(databases, target), `COPY public.${quoteIdent(table)} TO STDOUT WITH (FORMAT csv, HEADER)`);
  try {
    // An aborted signal destroys every stream of the pipeline: the COPY stops and the upload is not completed.
    await pipeline(stream, createGzip({ level: GZIP_LEVEL }), tap, objects.writeStream(uri, 'application/gzip'), { signal: cancellationSignal() });
    release();
  } catch (err) {
    release(err as Error);
    throw err;
  }
  // pg-copy-streams reads the row count from COPY's command tag.
  const rows = Number((stream as unknown as { rowCount?: number }).rowCount ?? 0);
  return { table, rows, bytes, sha256: hash.digest('hex'), uri };
}

export function createExportActivities(databases: Databases, objects: ObjectStore) {
  return {
    exportRawTables: defineShapeStep<Target>({
      async plan(ctx) {
        const tables = await storeTables(databases, ctx.target);
        return [
          ...tables.map((t) => ({ call: 'storage.objects.insert', resource: `${rawExportBase(ctx)}/${t}.csv.gz`, description: `COPY ${mlflowResource(ctx.target, t)} as gzip CSV with header` })),
          { call: 'storage.objects.insert', resource: manifestUri(ctx), description: 'write the manifest (rows, bytes, sha256 per table)' },
        ];
      },
      async run(ctx): Promise<StepResult> {
        const tables = await storeTables(databases, ctx.target);
        const entries: ManifestEntry[] = [];
        for (const table of tables) {
          const progress = { tablesDone: entries.length, tablesTotal: tables.length };
          entries.push(await exportTable(databases, ctx.target, objects, table, `${rawExportBase(ctx)}/${table}.csv.gz`, progress));
          heartbeat({ tablesDone: entries.length, tablesTotal: tables.length, table });
        }
        const manifest: RawManifest = { migrationId: ctx.migrationId, createdAt: new Date().toISOString(), tables: entries };
        await objects.write(manifestUri(ctx), JSON.stringify(manifest, null, 2), 'application/json');
        const rows = entries.reduce((n, e) => n + e.rows, 0);
        const bytes = entries.reduce((n, e) => n + e.bytes, 0);
        return {
          summary: `${entries.length} tables, ${rows} rows, ${bytes} bytes gzip CSV; manifest at ${manifestUri(ctx)}`,
          actions: [],
          facts: { manifest: manifestUri(ctx), tables: entries.length, rows, bytes },
        };
      },
    }),
  };
}

/** checkPhase0: the manifest's row counts against the store now, and each object's size. */
export async function checkManifest(databases: Databases, objects: ObjectStore, ctx: StepContext<Target>): Promise<{ ok: boolean; detail: string }> {
  const uri = manifestUri(ctx);
  const body = await objects.read(uri);
  // 0.6 cannot run again inside a running migration: the way to a fresh export is a new migration.
  const redo = 'send `rollback`, stop writes to MLflow, and start the migration again (a new migration exports afresh); `retry` the gate only once the cause is gone';
  if (!body) return { ok: false, detail: `${uri} missing: ${redo}` };
  const manifest = JSON.parse(body.toString('utf8')) as RawManifest;
  const problems: string[] = [];
  const tables = await storeTables(databases, ctx.target);
  for (const t of tables) if (!manifest.tables.some((e) => e.table === t)) problems.push(`${t}: in the store, not in the export`);
  for (const e of manifest.tables) {
    throwIfCancelled();
    heartbeat({ checking: e.table });
    const now = await countRows(databases, ctx.target, e.table);
    if (now !== e.rows) problems.push(`${e.table}: ${e.rows} rows exported, ${now} in the store now`);
    const info = await objects.stat(e.uri);
    if (!info) problems.push(`${e.uri} missing`);
    else if (info.size !== e.bytes) problems.push(`${e.uri}: ${info.size} bytes, manifest says ${e.bytes}`);
  }
  if (problems.length) return { ok: false, detail: `${problems.slice(0, 10).join('; ')}: ${redo}` };
  return { ok: true, detail: `${manifest.tables.length} tables, ${manifest.tables.reduce((n, e) => n + e.rows, 0)} rows match the store` };
}
