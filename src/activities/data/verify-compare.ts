// 0.5's comparison, in the app database: each cache against its expected document as jsonb, so
// numbers and 64-bit steps compare exactly and no name passes through a JS object. Only runs that
// differ are walked leaf by leaf, and each differing slot (a key's place) is reported once.
import type { Databases } from '../../adapters/postgres';
import type { Target } from '../../config/schema';
import { appPool, completedWithRun } from './app-table';
import type { ExpectedHistory } from './expected-history';

export interface Mismatch {
  runId: string;
  appId: number;
  key: string;
  problem: string;
}

/** Rows of `runIds` whose cache equals the expected document, and the ones that do not. $1 completed status. */
async function compareDocuments(databases: Databases, target: Target, runIds: string[], expected: ExpectedHistory[]) {
  const t = target.appTable;
  const docs = `[${expected.map((e) => e.doc).join(',')}]`;
  const { rows } = await appPool(databases, target).query(
    `WITH e AS (SELECT r.run_id, j.doc FROM unnest($2::text[]) WITH ORDINALITY AS r(run_id, n)
                  JOIN jsonb_array_elements($3::text::jsonb) WITH ORDINALITY AS j(doc, n) USING (n))
     SELECT a.${t.id} AS id, a.${t.runId} AS run_id, e.doc IS NOT NULL AS in_store, e.doc IS NOT DISTINCT FROM a.${t.history} AS same
       FROM ${t.table} a LEFT JOIN e ON e.run_id = a.${t.runId}
      WHERE ${completedWithRun(t, 'a')} AND a.${t.runId} = ANY($4) AND a.${t.history} IS NOT NULL ORDER BY a.${t.id}`,
    [t.completedStatus, expected.map((e) => e.runId), docs, runIds],
  );
  return rows as Array<{ id: number; run_id: string; in_store: boolean; same: boolean }>;
}

// Both documents as leaves (scalars, empty objects and arrays) by path; the differing leaves
// grouped by slot: the key's place (section, name) or (section, tower, stat). $1 the expected
// document, $2 the cache row's id.
function diffSql(t: Target['appTable']): string {
  return `
WITH RECURSIVE cache AS (SELECT ${t.history} AS h FROM ${t.table} WHERE ${t.id} = $2),
walk(side, path, v) AS (
  SELECT side, '{}'::text[], doc FROM (VALUES ('store', $1::text::jsonb), ('cache', (SELECT h FROM cache))) AS d(side, doc)
  UNION ALL
  SELECT w.side, w.path || c.k, c.v FROM walk w CROSS JOIN LATERAL (
    SELECT key, value FROM jsonb_each(CASE WHEN jsonb_typeof(w.v) = 'object' THEN w.v END)
    UNION ALL SELECT (i - 1)::text, value FROM jsonb_array_elements(CASE WHEN jsonb_typeof(w.v) = 'array' THEN w.v END) WITH ORDINALITY AS x(value, i)) AS c(k, v)
), leaf AS (
  SELECT * FROM walk WHERE jsonb_typeof(v) NOT IN ('object', 'array') OR v IN ('{}'::jsonb, '[]'::jsonb)
), diff AS (
  SELECT coalesce(s.path, c.path) AS path, s.v AS want, c.v AS got
    FROM (SELECT * FROM leaf WHERE side = 'store') s FULL JOIN (SELECT * FROM leaf WHERE side = 'cache') c ON s.path = c.path
   WHERE s.v IS DISTINCT FROM c.v
), slotted AS (
  SELECT CASE WHEN path[1] IN ('weight_stats', 'gradient_stats') THEN path[1:3] WHEN path[1] IN ('epochs', 'saved_at', 'available') THEN path[1:1] ELSE path[1:2] END AS slot, *
    FROM diff
)
SELECT DISTINCT ON (slot) slot, path[cardinality(slot) + 1:] AS rest, want::text AS want, got::text AS got, count(*) OVER (PARTITION BY slot)::int AS leaves,
       ($1::text::jsonb #> slot) IS NOT NULL AS in_store, ((SELECT h FROM cache) #> slot) IS NOT NULL AS in_cache,
       -- A series value's step: the expected epochs at its index.
       CASE WHEN slot[1] IN ('loss', 'gradient', 'other', 'weight_stats', 'gradient_stats') AND cardinality(path) = cardinality(slot) + 1 AND path[cardinality(path)] ~ '^[0-9]{1,9}$'
            THEN ($1::text::jsonb -> 'epochs') ->> path[cardinality(path)]::int END AS step
  FROM slotted
 ORDER BY slot, (SELECT array_agg(lpad(p, 12, '0')) FROM unnest(path) p)`;
}

/** Named mismatches of one cache row against its expected document. */
async function describeDifferences(databases: Databases, target: Target, appId: number, expected: ExpectedHistory): Promise<Mismatch[]> {
  const { rows } = await appPool(databases, target).query(diffSql(target.appTable), [expected.doc, appId]);
  const keys = new Map(expected.slots.map(([slot, key]) => [JSON.stringify(slot), key]));
  const shown = (v: string | null) => (v === null ? 'nothing' : /^"(NaN|-?Infinity)"$/.test(v) ? v.slice(1, -1) : v);
  return rows.map((r) => {
    const slot: string[] = r.slot;
    const rest: string[] = r.rest;
    let key = keys.get(JSON.stringify(slot)) ?? labelOf(slot);
    if (slot[0] === 'params' || slot[0] === 'tags') key = `${slot[0] === 'params' ? 'param' : 'tag'} ${slot[1]}`;
    let problem: string;
    if (!r.in_cache) problem = `missing from the cache (expected at ${labelOf(slot)})`;
    else if (!r.in_store) problem = 'in the cache but not in the store';
    else if (slot[0] === 'params' || slot[0] === 'tags') problem = 'differs from the store';
    else {
      const at = r.step !== null ? `step ${r.step}` : rest.length ? rest.join('/') : 'value';
      problem = `${at}: ${shown(r.want)} in the store, ${shown(r.got)} in the cache${r.leaves > 1 ? ` (${r.leaves} values differ)` : ''}`;
    }
    return { runId: expected.runId, appId, key, problem };
  });
}

/** "loss/val_loss"-style label of a slot; a name holding "/" is quoted, so it reads as one name. */
function labelOf(slot: string[]): string {
  return slot.map((s) => (s.includes('/') ? JSON.stringify(s) : s)).join('/');
}

/**
 * Compares the caches of `runIds` with their expected documents; reports each differing key of the
 * first `budget.runs` differing runs, and each run after those once (a systematic bug would
 * otherwise walk every document of the store).
 */
export async function compareChunk(
  databases: Databases,
  target: Target,
  runIds: string[],
  expected: ExpectedHistory[],
  report: (m: Mismatch) => void,
  budget: { runs: number },
): Promise<void> {
  const byRun = new Map(expected.map((e) => [e.runId, e]));
  for (const row of await compareDocuments(databases, target, runIds, expected)) {
    if (row.same) continue;
    const e = byRun.get(row.run_id);
    if (!row.in_store || !e) {
      report({ runId: row.run_id, appId: row.id, key: '(run)', problem: 'run not found in the MLflow store' });
      continue;
    }
    if (budget.runs <= 0) {
      report({ runId: row.run_id, appId: row.id, key: '(cache)', problem: 'differs from the store (not itemised: many runs differ)' });
      continue;
    }
    budget.runs--;
    const found = await describeDifferences(databases, target, row.id, e);
    // jsonb said they differ; a walk that finds nothing would hide it, so say so.
    for (const m of found.length ? found : [{ runId: row.run_id, appId: row.id, key: '(cache)', problem: 'differs from the store' }]) report(m);
  }
}
