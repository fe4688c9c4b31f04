// 0.7 (seed 004): app tables that hold MLflow run ids. Every referenced id must exist in the
// store's runs, the source of the raw export, or the reference points at nothing after Phase 3.
import type { Databases } from '../../adapters/postgres';
import { forEachRowChunk, type Row } from '../../adapters/postgres-streams';
import type { Target } from '../../config/schema';
import type { CheckResult, StepResult } from '../../types';
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

/** Every configured reference table's run ids against the store's runs (0.7, and the phase-0 gate). */
export async function auditReferenceTables(databases: Databases, target: Target): Promise<ReferenceAudit[]> {
  const audits: ReferenceAudit[] = [];
  for (const { table, column } of target.data.referenceTables) {
    const { rows } = await appPool(databases, target).query(`SELECT count(*)::int AS n FROM ${table}`);
    const audit: ReferenceAudit = { table, column, rows: rows[0].n, distinctIds: 0, missing: 0, missingIds: [] };
    await forEachRowChunk(
      appPool(databases, target),
      `SELECT DISTINCT ${column}::text AS id FROM ${table} WHERE ${column} IS NOT NULL AND ${column}::text <> '' ORDER BY 1`,
      [],
      ID_CHUNK,
      async (chunk: Row[]) => {
        const ids = chunk.map((r) => r.id);
        audit.distinctIds += ids.length;
        const { rows: missing } = await mlflowPool(databases, target).query(
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
  return audits;
}

/** Gate phase-0: one check per reference table; a dangling id names its table and the id. */
export function referenceChecks(audits: ReferenceAudit[]): CheckResult[] {
  return audits.map((a) => ({
    name: `references ${a.table}.${a.column}`,
    ok: a.missing === 0,
    detail: a.missing
      ? `${a.missing} run id(s) in ${a.table}.${a.column} are not in the MLflow store: ${a.missingIds.join(', ')}${a.missing > a.missingIds.length ? ', …' : ''}. ` +
        'They point at nothing after Phase 3: repoint or clear them in the app (or confirm they are meant to dangle by removing them), then approve again'
      : `all ${a.distinctIds} run id(s) in ${a.table}.${a.column} are in the MLflow store`,
  }));
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
        const audits = await auditReferenceTables(databases, ctx.target);
        const missing = audits.reduce((n, a) => n + a.missing, 0);
        const summary = audits.length
          ? audits.map((a) => `${a.table}.${a.column}: ${a.rows} rows, ${a.distinctIds} run ids, ${a.missing} not in the store`).join('; ')
          : 'no reference tables configured (data.referenceTables)';
        return { summary: missing ? `${summary}. The phase-0 gate lists them by table and id; fix them before approving.` : summary, actions: [], facts: { tables: audits, missing } };
      },
    }),
  };
}
