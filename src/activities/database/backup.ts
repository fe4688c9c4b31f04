// 0.1 for the shapes without Cloud SQL: the logical dump of exactly MLflow's tables, and the gate
// check that it still holds what the store holds (phase-0 and, just before anything is dropped,
// phase-2): every file read back, and every table counted against the store.
import type { Databases } from '../../adapters/postgres';
import { ErrorType, fail } from '../../errors';
import type { ObjectStore } from '../../ports';
import { backupUri } from '../../shapes';
import type { Target } from '../../config/schema';
import type { CheckResult, StepContext } from '../../types';
import { mlflowPool, mlflowResource } from '../data/app-table';
import { defineShapeCheck, defineShapeStep } from '../step';
import { compareLiveCounts, readManifest, verifyDumpContent, writeDump, type DumpManifest } from './dump';
import { dumpSelection, identifyMlflowObjects, NotAnMlflowStore } from './mlflow-tables';

export type Ctx = StepContext<Target>;

export const dumpBase = (ctx: Ctx) => backupUri(ctx, 'dump');

/** The dump 3.x relies on; its absence stops them before they act. */
export async function requireDump(objects: ObjectStore, ctx: Ctx, what: string): Promise<DumpManifest> {
  const manifest = await readManifest(objects, dumpBase(ctx));
  if (!manifest) fail(ErrorType.PreconditionFailed, `the dump from step 0.1 (${dumpBase(ctx)}/manifest.json) is missing, so ${what} is not done: restore the dump's folder, or roll back and start again.`);
  for (const t of manifest.tables) {
    const info = await objects.stat(t.uri);
    if (!info || info.size !== t.bytes) fail(ErrorType.PreconditionFailed, `${t.uri} is ${info ? `${info.size} bytes, the manifest says ${t.bytes}` : 'missing'}, so ${what} is not done: the dump is the way back.`);
  }
  return manifest;
}

export async function identifyOrFail(db: Parameters<typeof identifyMlflowObjects>[0], ctx: Ctx) {
  try {
    return await identifyMlflowObjects(db, ctx.target.data.acceptMlflowRevisions);
  } catch (err) {
    if (err instanceof NotAnMlflowStore) fail(ErrorType.ResourceMismatch, err.message);
    throw err;
  }
}

export function createBackupActivities(databases: Databases, objects: ObjectStore) {
  return {
    dumpMlflowTables: defineShapeStep<Target>({
      async plan(ctx: Ctx) {
        const existing = await readManifest(objects, dumpBase(ctx));
        if (existing) return [];
        const found = await identifyOrFail(mlflowPool(databases, ctx.target), ctx);
        const { tables, functions, where } = dumpSelection(found);
        return [
          ...tables.map((t) => ({
            call: 'postgres.copy_to',
            resource: mlflowResource(ctx.target, t),
            description: `COPY ${t}${where.has(t) ? ` (only MLflow's row: ${where.get(t)})` : ` (${found.rows.get(t) ?? '?'} rows)`} to ${dumpBase(ctx)}/data/${t}.copy.gz`,
          })),
          ...functions.map((f) => ({ call: 'postgres.catalog', resource: mlflowResource(ctx.target, f), description: `keep the definition of MLflow's function ${f} in schema.json` })),
          { call: 'objects.write', resource: `${dumpBase(ctx)}/manifest.json`, description: 'write schema.json, schema.sql and the manifest (rows, bytes, sha256 per table), after reading every file back' },
        ];
      },
      async run(ctx: Ctx) {
        const base = dumpBase(ctx);
        let manifest = await readManifest(objects, base);
        let reused = true;
        if (!manifest) {
          reused = false;
          const found = await identifyOrFail(mlflowPool(databases, ctx.target), ctx);
          const { tables, functions, where } = dumpSelection(found);
          manifest = await writeDump(mlflowPool(databases, ctx.target), objects, {
            tables,
            functions,
            where,
            base,
            migrationId: ctx.migrationId,
            source: `postgres:${ctx.target.databases.mlflow.urlEnv} (MLflow revision ${found.alembic.mlflow})`,
          });
        }
        const rows = manifest.tables.reduce((n, t) => n + t.rows, 0);
        const bytes = manifest.tables.reduce((n, t) => n + t.bytes, 0);
        const uri = `${base}/manifest.json`;
        return {
          summary: `${reused ? 'dump already taken: ' : ''}${manifest.tables.length} MLflow tables, ${rows} rows, ${bytes} bytes gzip, read back and verified; manifest at ${uri}`,
          actions: [],
          // exportUri/exportBytes: where the completion record looks for 0.1's backup.
          facts: { exportUri: uri, exportBytes: bytes, tables: manifest.tables.length, rows },
        };
      },
    }),

    checkDumpVerified: defineShapeCheck<Target>(async (ctx: Ctx): Promise<CheckResult[]> => {
      const name = 'dump verified';
      const base = dumpBase(ctx);
      const manifest = await readManifest(objects, base);
      if (!manifest) return [{ name, ok: false, detail: `${base}/manifest.json is missing: step 0.1 has not finished a dump` }];
      const problems = [...(await verifyDumpContent(objects, manifest)), ...(await compareLiveCounts(mlflowPool(databases, ctx.target), manifest))];
      const rows = manifest.tables.reduce((n, t) => n + t.rows, 0);
      return [
        problems.length
          ? {
              name,
              ok: false,
              detail:
                `${problems.slice(0, 10).join('; ')}. The dump no longer holds what MLflow's tables hold (something still writes to MLflow, or a file was damaged): ` +
                'stop every writer to MLflow, then roll back and start again for a fresh dump.',
            }
          : { name, ok: true, detail: `${manifest.tables.length} tables, ${rows} rows: every file read back with its sha256, every count equal to the store's` },
      ];
    }),
  };
}
