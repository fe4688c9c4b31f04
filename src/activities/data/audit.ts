// 0.7 (seed 004): app tables that hold MLflow run ids. Every referenced id must exist in the
// store's runs, the source of the raw export, or the reference points at nothing after Phase 3.
import type { Databases } from '../../adapters/postgres';
import { forEachRowChunk, type Row } from '../../adapters/postgres-streams';
import type { Target } from '../../config/schema';
import type { StepResult } from '../../types';
import { appPool, mlflowPool, mlflowResource } from './app-table';
import { cancellationSignal } from '../heartbeat';
import { defineShapeStep } from '../step';

const ID_CHUNK = 5_000;

export interface ReferenceAudit {
  table: string;
  column: string;
  rows: number;
  distinctIds: number;
  missing: number;
  /** Up to 20 ids not in the store. */
  missingIds: string[];
}

export function createAuditActivities(databases: Databases) {
  return {
    auditReferences: defineShapeStep<Target>({
      async plan(ctx) {
        const urlEnv = ctx.target.databases.app.urlEnv;
        return ctx.target.data.referenceTables.flatMap((r) => [
          { call: 'postgres.select', resource: `postgres:${urlEnv}/${r.table}.${r.column}`, description: 'count rows and read distinct run ids' },
          { call: 'postgres.select', resource: mlflowResource(ctx.target, 'runs'), description: `look up ${r.table}.${r.column}'s ids in the store` },
        ]);
      },
      async run(ctx): Promise<StepResult> {
        const audits: ReferenceAudit[] = [];
        for (const { table, column } of ctx.target.data.referenceTables) {
          const { rows } = await appPool(databases, ctx.target).query(`SELECT count(*)::int AS n FROM ${table}`);
          const audit: ReferenceAudit = { table, column, rows: rows[0].n, distinctIds: 0, missing: 0, missingIds: [] };
          await forEachRowChunk(
            appPool(databases, ctx.target),
            `SELECT DISTINCT ${column}::text AS id FROM ${table} WHERE ${column} IS NOT NULL AND ${column}::text <> '' ORDER BY 1`,
            [],
            ID_CHUNK,
            async (chunk: Row[]) => {
              const ids = chunk.map((r) => r.id);
              audit.distinctIds += ids.length;
              const { rows: missing } = await mlflowPool(databases, ctx.target).query(
                `SELECT id FROM unnest($1::text[]) AS id WHERE NOT EXISTS (SELECT 1 FROM runs WHERE run_uuid = id) ORDER BY id`,
                [ids],
              );
              audit.missing += missing.length;
              for (const m of missing) if (audit.missingIds.length < 20) audit.missingIds.push(m.id);
            },
            cancellationSignal(),
          );
          audits.push(audit);
        }
        const missing = audits.reduce((n, a) => n + a.missing, 0);
        const summary = audits.length
          ? audits.map((a) => `${a.table}.${a.column}: ${a.rows} rows, ${a.distinctIds} run ids, ${a.missing} not in the store`).join('; ')
          : 'no reference tables configured (data.referenceTables)';
        return { summary: missing ? `${summary}. Review the missing ids before Phase 3.` : summary, actions: [], facts: { tables: audits, missing } };
      },
    }),
  };
}
