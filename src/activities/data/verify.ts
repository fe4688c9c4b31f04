// 0.5: completeness (no completed experiment with a run id lacks a cache) and fidelity (every
// series in the cache equals the store point for point). The store side is computed here in SQL
// (DISTINCT ON … ORDER BY timestamp DESC, value DESC), independently of the backfill's streaming
// reduction, so a bug in one shows up against the other.
import type { Databases } from '../../adapters/postgres';
import { forEachRowChunk, type Row } from '../../adapters/postgres-streams';
import type { Target } from '../../config/schema';
import { ErrorType, fail } from '../../errors';
import { HISTOGRAM_KEY_LIKE, placeKeys, slotOf, type Placement } from '../../history/categorise';
import { decodeValue, encodeStoredValue, sameValue } from '../../history/encoding';
import type { StepResult } from '../../types';
import { appPool, appResource, completedWithRun, mlflowPool, mlflowResource } from './app-table';
import { heartbeat } from '../heartbeat';
import { defineShapeStep } from '../step';

const CHUNK = 100;
const MAX_LISTED = 50;

export interface Mismatch {
  runId: string;
  appId: number;
  key: string;
  problem: string;
}

export interface Completeness {
  uncached: number;
  examples: Array<{ id: number; displayName: string; runId: string }>;
}

export async function checkCompleteness(databases: Databases, target: Target): Promise<Completeness> {
  const t = target.appTable;
  const { rows } = await appPool(databases, target).query(
    `SELECT ${t.id} AS id, ${t.displayName} AS display_name, ${t.runId} AS run_id, count(*) OVER ()::int AS total
       FROM ${t.table} WHERE ${completedWithRun(t)} AND ${t.history} IS NULL ORDER BY ${t.id} LIMIT 20`,
    [t.completedStatus],
  );
  return { uncached: rows[0]?.total ?? 0, examples: rows.map((r) => ({ id: r.id, displayName: r.display_name, runId: r.run_id })) };
}

/** Run ids to verify: every cached one, or fidelitySample of them chosen by md5 (same sample every time). */
async function runsToVerify(databases: Databases, target: Target): Promise<string[]> {
  const t = target.appTable;
  const sample = target.data.fidelitySample;
  const { rows } = await appPool(databases, target).query(
    `SELECT run_id FROM (SELECT DISTINCT ${t.runId} COLLATE "C" AS run_id FROM ${t.table} WHERE ${completedWithRun(t)} AND ${t.history} IS NOT NULL) ids
      ORDER BY ${sample ? 'md5(run_id), ' : ''}run_id ${sample ? `LIMIT ${Number(sample)}` : ''}`,
    [t.completedStatus],
  );
  return rows.map((r) => r.run_id).sort();
}

export interface FidelityOutcome {
  runsVerified: number;
  points: number;
  mismatches: Mismatch[];
  mismatchCount: number;
}

export async function checkFidelity(databases: Databases, target: Target): Promise<FidelityOutcome> {
  const t = target.appTable;
  const histograms = target.data.histograms === 'include';
  const runIds = await runsToVerify(databases, target);
  const out: FidelityOutcome = { runsVerified: 0, points: 0, mismatches: [], mismatchCount: 0 };
  const report = (m: Mismatch) => {
    out.mismatchCount++;
    if (out.mismatches.length < MAX_LISTED) out.mismatches.push(m);
  };
  const histogramFilter = histograms ? '' : `AND NOT (${HISTOGRAM_KEY_LIKE.map((p) => `key LIKE '${p}'`).join(' OR ')})`;
  for (let i = 0; i < runIds.length; i += CHUNK) {
    const chunk = runIds.slice(i, i + CHUNK);
    const { rows: cacheRows } = await appPool(databases, target).query(
      `SELECT ${t.id} AS id, ${t.runId} AS run_id, ${t.history}::text AS h FROM ${t.table} WHERE ${completedWithRun(t)} AND ${t.runId} = ANY($2) AND ${t.history} IS NOT NULL ORDER BY ${t.id}`,
      [t.completedStatus, chunk],
    );
    const caches = new Map<string, Array<{ id: number; h: any }>>();
    for (const r of cacheRows) {
      const list = caches.get(r.run_id) ?? [];
      list.push({ id: r.id, h: JSON.parse(r.h) });
      caches.set(r.run_id, list);
    }
    const { rows: paramRows } = await mlflowPool(databases, target).query(`SELECT run_uuid, key, value FROM params WHERE run_uuid = ANY($1)`, [chunk]);
    const params = new Map<string, Record<string, string>>();
    for (const r of paramRows) (params.get(r.run_uuid) ?? params.set(r.run_uuid, {}).get(r.run_uuid)!)[r.key] = r.value;
    const { rows: runRows } = await mlflowPool(databases, target).query(`SELECT run_uuid FROM runs WHERE run_uuid = ANY($1)`, [chunk]);
    const inStore = new Set(runRows.map((r) => r.run_uuid));

    let current: string | undefined;
    const compared = new Set<string>();
    let series = new Map<string, Array<[number, number]>>();
    const compareRun = () => {
      if (current === undefined) return;
      for (const c of caches.get(current) ?? []) compareCache(current, c.id, c.h, series, params.get(current) ?? {}, report);
      out.runsVerified++;
      compared.add(current);
      series = new Map();
    };
    await forEachRowChunk(
      mlflowPool(databases, target),
      `SELECT DISTINCT ON (run_uuid, key, step) run_uuid, key, step, value, is_nan FROM metrics
        WHERE run_uuid = ANY($1) ${histogramFilter}
        ORDER BY run_uuid, key, step, timestamp DESC, value DESC, is_nan DESC`,
      [chunk.filter((id) => inStore.has(id))],
      5_000,
      (rows: Row[]) => {
        for (const r of rows) {
          if (r.run_uuid !== current) {
            compareRun();
            current = r.run_uuid;
          }
          const v = decodeValue(encodeStoredValue(Number(r.value), r.is_nan))!;
          (series.get(r.key) ?? series.set(r.key, []).get(r.key)!).push([Number(r.step), v]);
          out.points++;
        }
      },
    );
    compareRun();
    for (const id of chunk) {
      if (!inStore.has(id)) {
        for (const c of caches.get(id) ?? []) report({ runId: id, appId: c.id, key: '(run)', problem: 'run not found in the MLflow store' });
      } else if (!compared.has(id)) {
        // A run without a single metric: its cache must hold no series either.
        current = id;
        compareRun();
      }
    }
    heartbeat({ runsDone: Math.min(i + CHUNK, runIds.length), runsTotal: runIds.length, points: out.points });
  }
  return out;
}

function compareCache(runId: string, appId: number, h: any, store: Map<string, Array<[number, number]>>, params: Record<string, string>, report: (m: Mismatch) => void) {
  const bad = (key: string, problem: string) => report({ runId, appId, key, problem });
  if (!h || typeof h !== 'object' || !Array.isArray(h.epochs)) return bad('(cache)', 'not in the appendix schema (no epochs array)');
  const epochs: number[] = h.epochs;
  const placements = placeKeys(store.keys());
  const expectedSlots = new Set<string>();
  for (const [key, p] of placements) {
    const points = store.get(key)!;
    expectedSlots.add(slotOf(p));
    const actual = cachedPoints(h, epochs, p);
    if (actual === undefined) {
      bad(key, `missing from the cache (${describePlacement(p)})`);
      continue;
    }
    const expected = p.kind === 'final' || (p.kind === 'histogram' && p.part === 'edge') ? points.slice(-1) : points;
    if (p.kind === 'final' || (p.kind === 'histogram' && p.part === 'edge')) {
      const [got] = actual;
      const [want] = expected;
      if (actual.length !== 1 || !got || !want || !sameValue(got[1], want[1])) bad(key, `last value ${want?.[1]} in the store, ${got?.[1]} in the cache`);
      continue;
    }
    if (actual.length !== expected.length) {
      bad(key, `${expected.length} points in the store, ${actual.length} in the cache`);
      continue;
    }
    for (const [i, want] of expected.entries()) {
      const got = actual[i];
      if (!got || got[0] !== want[0]) {
        bad(key, `step ${want[0]} in the store, ${got?.[0]} in the cache`);
        break;
      }
      if (!sameValue(got[1], want[1])) {
        bad(key, `step ${want[0]}: ${want[1]} in the store, ${got[1]} in the cache`);
        break;
      }
    }
  }
  for (const s of cachedSlots(h)) if (!expectedSlots.has(s)) bad(s, 'in the cache but not in the store');
  const cachedParams = h.params && typeof h.params === 'object' ? h.params : {};
  for (const [k, v] of Object.entries(params)) if (cachedParams[k] !== v) bad(`param ${k}`, 'differs from the store');
  for (const k of Object.keys(cachedParams)) if (!(k in params)) bad(`param ${k}`, 'in the cache but not in the store');
}

/** The (step, value) points the cache holds for a placement, or undefined when it holds none. A value past the end of its steps has no step. */
function cachedPoints(h: any, epochs: number[], p: Placement): Array<[number | undefined, number]> | undefined {
  const fromAligned = (arr: unknown, steps: number[]) => {
    if (!Array.isArray(arr)) return undefined;
    const pts: Array<[number | undefined, number]> = [];
    arr.forEach((v, i) => {
      if (v !== null) pts.push([steps[i], decodeValue(v) ?? Number.NaN]);
    });
    return pts;
  };
  switch (p.kind) {
    case 'final': {
      const v = h.final_metrics?.[p.name];
      return v === undefined ? undefined : [[0, decodeValue(v) ?? Number.NaN]];
    }
    case 'series':
      return fromAligned(h[p.section]?.[p.name], epochs);
    case 'tower-series':
      return fromAligned(h[p.section]?.[p.tower]?.[p.stat], epochs);
    case 'histogram': {
      const hist = h[p.section]?.[p.tower]?.histogram;
      if (!hist) return undefined;
      if (p.part === 'edge') {
        const v = hist.bin_edges?.[p.index];
        return v === undefined || v === null ? undefined : [[0, decodeValue(v) ?? Number.NaN]];
      }
      if (!Array.isArray(hist.counts) || !Array.isArray(hist.steps)) return undefined;
      return fromAligned(hist.counts.map((row: unknown[]) => (Array.isArray(row) ? (row[p.index] ?? null) : null)), hist.steps);
    }
  }
}

/** Every series slot a cache holds, to catch series the store does not have. */
function cachedSlots(h: any): string[] {
  const out: string[] = [];
  for (const k of Object.keys(h.final_metrics ?? {})) out.push(`final_metrics/${k}`);
  for (const s of ['loss', 'gradient', 'other']) for (const k of Object.keys(h[s] ?? {})) out.push(`${s}/${k}`);
  for (const s of ['weight_stats', 'gradient_stats']) {
    for (const [tower, stats] of Object.entries<Record<string, unknown>>(h[s] ?? {})) {
      for (const stat of Object.keys(stats ?? {})) out.push(`${s}/${tower}/${stat}`);
    }
  }
  return out;
}

function describePlacement(p: Placement): string {
  return `expected at ${slotOf(p)}`;
}

export function createVerifyActivities(databases: Databases) {
  return {
    // 0.5
    verifyMigration: defineShapeStep<Target>({
      async plan(ctx) {
        const t = ctx.target;
        return [
          { call: 'postgres.select', resource: appResource(t, t.appTable.history), description: 'count completed experiments with a run id and no cache' },
          {
            call: 'postgres.select',
            resource: mlflowResource(t, 'metrics'),
            description: `compare ${t.data.fidelitySample ? `a sample of ${t.data.fidelitySample}` : 'every'} migrated run's cache with the store point for point`,
          },
        ];
      },
      async run(ctx): Promise<StepResult> {
        const target = ctx.target;
        const completeness = await checkCompleteness(databases, target);
        const fidelity = await checkFidelity(databases, target);
        const facts = { runsVerified: fidelity.runsVerified, points: fidelity.points, mismatches: fidelity.mismatchCount, uncached: completeness.uncached };
        if (completeness.uncached || fidelity.mismatchCount) {
          const parts = [];
          if (completeness.uncached) {
            parts.push(`${completeness.uncached} completed experiment(s) with an MLflow run id have no training_history_json (e.g. ${completeness.examples.slice(0, 5).map((e) => `#${e.id} ${e.displayName}`).join(', ')})`);
          }
          if (fidelity.mismatchCount) {
            const first = fidelity.mismatches.slice(0, 5).map((m) => `${m.runId} ${m.key}: ${m.problem}`).join('; ');
            parts.push(`${fidelity.mismatchCount} mismatch(es) between the cache and the MLflow store (${first})`);
          }
          fail(ErrorType.VerificationFailed, `0.5 verification failed: ${parts.join('; ')}. Re-run step 0.3 with force (input "force": true), then retry 0.5.`, {
            ...facts,
            uncachedExamples: completeness.examples,
            mismatchList: fidelity.mismatches,
          });
        }
        return {
          summary: `all ${fidelity.runsVerified} migrated runs match the store point for point (${fidelity.points} points); none uncached`,
          actions: [],
          facts,
        };
      },
    }),
  };
}
