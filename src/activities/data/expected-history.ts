// 0.5's oracle: each run's expected training_history_json, recomputed in SQL from the MLflow store
// with this file's own reading of docs/history-mapping.md. It shares nothing with src/history/
// (the builder), so a classification, merge or step bug there shows up as a mismatch here.
// Steps stay bigint and values go through to_jsonb (exact with extra_float_digits, which
// forEachRowChunk sets), so the document compares exactly as jsonb against the cache.
import type { Databases } from '../../adapters/postgres';
import { forEachRowChunk, type Row } from '../../adapters/postgres-streams';
import type { Target } from '../../config/schema';
import { mlflowPool } from './app-table';
import { cancellationSignal } from '../heartbeat';

export interface ExpectedHistory {
  runId: string;
  /** The document as jsonb text: compared in the app database, never parsed into doubles. */
  doc: string;
  /** Points (distinct run, key, step) the document holds. */
  points: number;
  /** Where each MLflow key landed: [slot path, key], to name mismatches by key. */
  slots: Array<[string[], string]>;
}

// The mapping table, rule by rule, first match wins. $1: run ids; $2: histograms included (0.4 option B).
const EXPECTED_SQL = `
WITH pt AS (
  -- One point per (run, key, step): the latest timestamp, then the greatest value. NaN and ±DBL_MAX as strings.
  SELECT DISTINCT ON (run_uuid, key, step) run_uuid, key, step,
         CASE WHEN is_nan OR value = 'NaN'::float8 THEN '"NaN"'::jsonb
              WHEN value >= 1.7976931348623157e308 THEN '"Infinity"'::jsonb
              WHEN value <= -1.7976931348623157e308 THEN '"-Infinity"'::jsonb
              ELSE to_jsonb(value) END AS v
    FROM metrics WHERE run_uuid = ANY($1)
   ORDER BY run_uuid, key, step, timestamp DESC, value DESC, is_nan DESC
), ptk AS (
  -- Each key's steps and values, in step order: arr -> -1 is the value at the greatest step.
  SELECT run_uuid, key, array_agg(step ORDER BY step) AS steps, jsonb_agg(v ORDER BY step) AS arr FROM pt GROUP BY run_uuid, key
), rule AS (
  SELECT run_uuid, key, steps, arr,
         CASE WHEN starts_with(key, 'final_') OR starts_with(key, 'test_') THEN 'final'
              WHEN key ~ '^(weights|gradients)/[^/]+/hist/(bin|edge)_(0|[1-9][0-9]*)$' THEN 'histogram'
              WHEN key ~ '^(weights|gradients)/[^/]+/[^/]+$' AND split_part(key, '/', 3) <> 'histogram' THEN 'tower'
              WHEN strpos(key, 'loss') > 0 THEN 'loss'
              WHEN strpos(key, 'weight_norm') > 0 THEN 'gradient'
              ELSE 'other' END AS place,
         CASE WHEN starts_with(key, 'weights/') THEN 'weight_stats' ELSE 'gradient_stats' END AS section
    FROM ptk
), placed AS (
  -- Two keys with one gradient name: the first in code-point order keeps it, the others go to other.
  SELECT run_uuid, key, steps, arr, section, split_part(key, '/', 2) AS tower, split_part(key, '/', 3) AS stat,
         CASE WHEN place = 'gradient' AND row_number() OVER (PARTITION BY run_uuid, place, replace(key, '_weight_norm', '') ORDER BY key COLLATE "C") > 1
              THEN 'other' ELSE place END AS place
    FROM rule WHERE $2 OR place <> 'histogram'
), slotted AS (
  SELECT *, CASE place WHEN 'final' THEN ARRAY['final_metrics', key] WHEN 'gradient' THEN ARRAY['gradient', replace(key, '_weight_norm', '')]
                       WHEN 'tower' THEN ARRAY[section, tower, stat] WHEN 'histogram' THEN ARRAY[section, tower, 'histogram']
                       ELSE ARRAY[place, key] END AS slot
    FROM placed
), ep AS (
  -- epochs: every step of every series key (most keys share one set of steps: unnest each set once).
  SELECT run_uuid, array_agg(DISTINCT st ORDER BY st) AS steps
    FROM (SELECT DISTINCT run_uuid, steps FROM slotted WHERE place IN ('loss', 'gradient', 'other', 'tower')) sets, unnest(steps) AS st GROUP BY run_uuid
), series AS (
  -- Aligned with epochs: null where the key has no point at that epoch.
  SELECT s.run_uuid, s.slot, s.place, s.section, s.tower, s.stat,
         CASE WHEN s.steps = ep.steps THEN s.arr
              ELSE (SELECT jsonb_agg(coalesce(s.arr -> (k.n - 1)::int, 'null'::jsonb) ORDER BY e.o)
                      FROM unnest(ep.steps) WITH ORDINALITY AS e(step, o) LEFT JOIN unnest(s.steps) WITH ORDINALITY AS k(step, n) ON k.step = e.step) END AS arr
    FROM slotted s JOIN ep USING (run_uuid) WHERE s.place IN ('loss', 'gradient', 'other', 'tower')
), fin AS (
  SELECT run_uuid, jsonb_object_agg(key, arr -> -1) AS obj FROM slotted WHERE place = 'final' GROUP BY run_uuid
), hk AS (
  SELECT s.run_uuid, s.section, s.tower, starts_with(split_part(s.key, '/', 4), 'edge_') AS edge, substring(s.key from '[0-9]+$')::int AS idx, s.steps, s.arr
    FROM slotted s WHERE s.place = 'histogram'
), edges AS (
  -- An edge is its value at the greatest step.
  SELECT run_uuid, section, tower, idx, arr -> -1 AS v FROM hk WHERE edge
), edge_arr AS (
  SELECT d.run_uuid, d.section, d.tower, jsonb_agg(coalesce(e.v, 'null'::jsonb) ORDER BY j) AS arr
    FROM (SELECT run_uuid, section, tower, max(idx) AS n FROM edges GROUP BY 1, 2, 3) d CROSS JOIN LATERAL generate_series(0, d.n) AS j
    LEFT JOIN edges e ON e.run_uuid = d.run_uuid AND e.section = d.section AND e.tower = d.tower AND e.idx = j
   GROUP BY 1, 2, 3
), bins AS (
  SELECT h.run_uuid, h.section, h.tower, h.idx, k.step, h.arr -> (k.n - 1)::int AS v FROM hk h, unnest(h.steps) WITH ORDINALITY AS k(step, n) WHERE NOT h.edge
), bin_rows AS (
  SELECT d.run_uuid, d.section, d.tower, st.step, jsonb_agg(coalesce(b.v, 'null'::jsonb) ORDER BY i) AS r
    FROM (SELECT run_uuid, section, tower, max(idx) AS n FROM bins GROUP BY 1, 2, 3) d
    JOIN (SELECT DISTINCT run_uuid, section, tower, step FROM bins) st USING (run_uuid, section, tower)
    CROSS JOIN LATERAL generate_series(0, d.n) AS i
    LEFT JOIN bins b ON b.run_uuid = d.run_uuid AND b.section = d.section AND b.tower = d.tower AND b.step = st.step AND b.idx = i
   GROUP BY 1, 2, 3, 4
), hist AS (
  SELECT run_uuid, section, tower, jsonb_build_object('histogram', jsonb_build_object(
           'bin_edges', coalesce(e.arr, '[]'), 'counts', coalesce(b.counts, '[]'), 'steps', coalesce(b.steps, '[]'))) AS obj
    FROM edge_arr e FULL JOIN (SELECT run_uuid, section, tower, jsonb_agg(r ORDER BY step) AS counts, jsonb_agg(to_jsonb(step) ORDER BY step) AS steps
                                 FROM bin_rows GROUP BY 1, 2, 3) b USING (run_uuid, section, tower)
), towers AS (
  SELECT run_uuid, section, tower, coalesce(t.obj, '{}') || coalesce(h.obj, '{}') AS obj
    FROM (SELECT run_uuid, section, tower, jsonb_object_agg(stat, arr) AS obj FROM series WHERE place = 'tower' GROUP BY 1, 2, 3) t
    FULL JOIN hist h USING (run_uuid, section, tower)
), stats AS (
  SELECT run_uuid, jsonb_object_agg(tower, obj) FILTER (WHERE section = 'weight_stats') AS w,
         jsonb_object_agg(tower, obj) FILTER (WHERE section = 'gradient_stats') AS g
    FROM towers GROUP BY run_uuid
), plain AS (
  SELECT run_uuid, jsonb_object_agg(slot[2], arr) FILTER (WHERE place = 'loss') AS loss,
         jsonb_object_agg(slot[2], arr) FILTER (WHERE place = 'gradient') AS gradient,
         jsonb_object_agg(slot[2], arr) FILTER (WHERE place = 'other') AS other
    FROM series WHERE place <> 'tower' GROUP BY run_uuid
), par AS (
  SELECT run_uuid, jsonb_object_agg(key, value) AS obj FROM params WHERE run_uuid = ANY($1) GROUP BY run_uuid
), tag AS (
  SELECT run_uuid, jsonb_object_agg(key, coalesce(value, '')) AS obj FROM tags WHERE run_uuid = ANY($1) GROUP BY run_uuid
), counted AS (
  SELECT run_uuid, sum(cardinality(steps))::int AS points,
         jsonb_agg(DISTINCT jsonb_build_array(to_jsonb(slot), CASE WHEN place = 'histogram' THEN regexp_replace(key, '/[^/]*$', '/*') ELSE key END)) AS slots
    FROM slotted GROUP BY run_uuid
)
SELECT r.run_uuid COLLATE "C" AS run_uuid, coalesce(c.points, 0) AS points, coalesce(c.slots, '[]')::text AS slots,
       jsonb_build_object(
         'saved_at', to_char((timestamptz 'epoch' + coalesce(r.end_time, r.start_time, 0) * interval '1 millisecond') AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
         'available', true,
         'epochs', coalesce(to_jsonb(ep.steps), '[]'),
         'loss', coalesce(plain.loss, '{}'), 'gradient', coalesce(plain.gradient, '{}'), 'other', coalesce(plain.other, '{}'),
         'weight_stats', '{"query": {}, "candidate": {}}'::jsonb || coalesce(stats.w, '{}'),
         'gradient_stats', '{"query": {}, "candidate": {}}'::jsonb || coalesce(stats.g, '{}'),
         'final_metrics', coalesce(fin.obj, '{}'), 'params', coalesce(par.obj, '{}'), 'tags', coalesce(tag.obj, '{}'))::text AS doc
  FROM runs r LEFT JOIN ep USING (run_uuid) LEFT JOIN plain USING (run_uuid) LEFT JOIN stats USING (run_uuid)
  LEFT JOIN fin USING (run_uuid) LEFT JOIN par USING (run_uuid) LEFT JOIN tag USING (run_uuid) LEFT JOIN counted c USING (run_uuid)
 WHERE r.run_uuid = ANY($1)`;

/** The expected documents of `runIds` (runs the store does not hold are absent), in no particular order. */
export async function expectedHistories(databases: Databases, target: Target, runIds: string[], onRuns: (runs: ExpectedHistory[]) => Promise<void>): Promise<void> {
  await forEachRowChunk(mlflowPool(databases, target), EXPECTED_SQL, [runIds, target.data.histograms === 'include'], 25, async (rows: Row[]) => {
    await onRuns(rows.map((r) => ({ runId: r.run_uuid, doc: r.doc, points: r.points, slots: JSON.parse(r.slots) })));
  }, cancellationSignal());
}
