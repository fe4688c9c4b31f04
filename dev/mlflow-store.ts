// An MLflow tracking store as MLflow 2.x's SQLAlchemy backend leaves it in Postgres (alembic head
// of the 2.x line, hand-written DDL), plus a seeded, set-based generator of training runs with the
// store's quirks, and the Django app table that receives the cache. Shared by the tests, the
// demo and the backfill bench.
import { createHash } from 'node:crypto';
import type pg from 'pg';

type Queryable = Pick<pg.Pool, 'query'>;

/** The tables MLflow 2.x creates, in dependency order. */
export const MLFLOW_DDL = `
CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num));
CREATE TABLE experiments (
  experiment_id SERIAL NOT NULL,
  name VARCHAR(256) NOT NULL,
  artifact_location VARCHAR(256),
  lifecycle_stage VARCHAR(32),
  creation_time BIGINT,
  last_update_time BIGINT,
  CONSTRAINT experiment_pk PRIMARY KEY (experiment_id),
  UNIQUE (name),
  CONSTRAINT experiments_lifecycle_stage CHECK (lifecycle_stage IN ('active', 'deleted'))
);
CREATE TABLE experiment_tags (
  key VARCHAR(250) NOT NULL,
  value VARCHAR(5000),
  experiment_id INTEGER NOT NULL,
  CONSTRAINT experiment_tag_pk PRIMARY KEY (key, experiment_id),
  FOREIGN KEY (experiment_id) REFERENCES experiments (experiment_id)
);
CREATE TABLE runs (
  run_uuid VARCHAR(32) NOT NULL,
  name VARCHAR(250),
  source_type VARCHAR(20),
  source_name VARCHAR(500),
  entry_point_name VARCHAR(50),
  user_id VARCHAR(256),
  status VARCHAR(9),
  start_time BIGINT,
  end_time BIGINT,
  deleted_time BIGINT,
  source_version VARCHAR(50),
  lifecycle_stage VARCHAR(20),
  artifact_uri VARCHAR(200),
  experiment_id INTEGER,
  CONSTRAINT run_pk PRIMARY KEY (run_uuid),
  CONSTRAINT source_type CHECK (source_type IN ('NOTEBOOK', 'JOB', 'LOCAL', 'UNKNOWN', 'PROJECT')),
  CONSTRAINT status CHECK (status IN ('SCHEDULED', 'FAILED', 'FINISHED', 'RUNNING', 'KILLED')),
  CONSTRAINT runs_lifecycle_stage CHECK (lifecycle_stage IN ('active', 'deleted')),
  FOREIGN KEY (experiment_id) REFERENCES experiments (experiment_id)
);
CREATE TABLE metrics (
  key VARCHAR(250) NOT NULL,
  value DOUBLE PRECISION NOT NULL,
  timestamp BIGINT NOT NULL,
  run_uuid VARCHAR(32) NOT NULL,
  step BIGINT DEFAULT '0' NOT NULL,
  is_nan BOOLEAN DEFAULT 'false' NOT NULL,
  CONSTRAINT metric_pk PRIMARY KEY (key, timestamp, step, run_uuid, value, is_nan),
  FOREIGN KEY (run_uuid) REFERENCES runs (run_uuid)
);
CREATE INDEX index_metrics_run_uuid ON metrics (run_uuid);
CREATE TABLE latest_metrics (
  key VARCHAR(250) NOT NULL,
  value DOUBLE PRECISION NOT NULL,
  timestamp BIGINT,
  step BIGINT NOT NULL,
  is_nan BOOLEAN NOT NULL,
  run_uuid VARCHAR(32) NOT NULL,
  CONSTRAINT latest_metric_pk PRIMARY KEY (key, run_uuid),
  FOREIGN KEY (run_uuid) REFERENCES runs (run_uuid)
);
CREATE INDEX index_latest_metrics_run_uuid ON latest_metrics (run_uuid);
CREATE TABLE params (
  key VARCHAR(250) NOT NULL,
  value VARCHAR(8000) NOT NULL,
  run_uuid VARCHAR(32) NOT NULL,
  CONSTRAINT param_pk PRIMARY KEY (key, run_uuid),
  FOREIGN KEY (run_uuid) REFERENCES runs (run_uuid)
);
CREATE INDEX index_params_run_uuid ON params (run_uuid);
CREATE TABLE tags (
  key VARCHAR(250) NOT NULL,
  value VARCHAR(5000),
  run_uuid VARCHAR(32) NOT NULL,
  CONSTRAINT tag_pk PRIMARY KEY (key, run_uuid),
  FOREIGN KEY (run_uuid) REFERENCES runs (run_uuid)
);
CREATE INDEX index_tags_run_uuid ON tags (run_uuid);
CREATE TABLE registered_models (
  name VARCHAR(256) NOT NULL,
  creation_time BIGINT,
  last_updated_time BIGINT,
  description VARCHAR(5000),
  CONSTRAINT registered_model_pk PRIMARY KEY (name)
);
CREATE TABLE registered_model_tags (
  key VARCHAR(250) NOT NULL,
  value VARCHAR(5000),
  name VARCHAR(256) NOT NULL,
  CONSTRAINT registered_model_tag_pk PRIMARY KEY (key, name),
  FOREIGN KEY (name) REFERENCES registered_models (name) ON UPDATE CASCADE
);
CREATE TABLE registered_model_aliases (
  alias VARCHAR(256) NOT NULL,
  version INTEGER NOT NULL,
  name VARCHAR(256) NOT NULL,
  CONSTRAINT registered_model_alias_pk PRIMARY KEY (name, alias),
  FOREIGN KEY (name) REFERENCES registered_models (name) ON UPDATE CASCADE ON DELETE CASCADE
);
CREATE TABLE model_versions (
  name VARCHAR(256) NOT NULL,
  version INTEGER NOT NULL,
  creation_time BIGINT,
  last_updated_time BIGINT,
  description VARCHAR(5000),
  user_id VARCHAR(256),
  current_stage VARCHAR(20),
  source VARCHAR(500),
  run_id VARCHAR(32),
  status VARCHAR(20),
  status_message VARCHAR(500),
  run_link VARCHAR(500),
  storage_location VARCHAR(500),
  CONSTRAINT model_version_pk PRIMARY KEY (name, version),
  FOREIGN KEY (name) REFERENCES registered_models (name) ON UPDATE CASCADE
);
CREATE TABLE model_version_tags (
  key VARCHAR(250) NOT NULL,
  value VARCHAR(5000),
  name VARCHAR(256) NOT NULL,
  version INTEGER NOT NULL,
  CONSTRAINT model_version_tag_pk PRIMARY KEY (key, name, version),
  FOREIGN KEY (name, version) REFERENCES model_versions (name, version) ON UPDATE CASCADE
);
CREATE TABLE datasets (
  dataset_uuid VARCHAR(36) NOT NULL,
  experiment_id INTEGER NOT NULL,
  name VARCHAR(500) NOT NULL,
  digest VARCHAR(36) NOT NULL,
  dataset_source_type VARCHAR(36) NOT NULL,
  dataset_source TEXT NOT NULL,
  dataset_schema TEXT,
  dataset_profile TEXT,
  CONSTRAINT dataset_pk PRIMARY KEY (experiment_id, name, digest),
  FOREIGN KEY (experiment_id) REFERENCES experiments (experiment_id)
);
CREATE TABLE inputs (
  input_uuid VARCHAR(36) NOT NULL,
  source_type VARCHAR(36) NOT NULL,
  source_id VARCHAR(36) NOT NULL,
  destination_type VARCHAR(36) NOT NULL,
  destination_id VARCHAR(36) NOT NULL,
  CONSTRAINT inputs_pk PRIMARY KEY (source_type, source_id, destination_type, destination_id)
);
CREATE TABLE input_tags (
  input_uuid VARCHAR(36) NOT NULL,
  name VARCHAR(255) NOT NULL,
  value VARCHAR(500) NOT NULL,
  CONSTRAINT input_tags_pk PRIMARY KEY (input_uuid, name)
);
CREATE TABLE trace_info (
  request_id VARCHAR(50) NOT NULL,
  experiment_id INTEGER NOT NULL,
  timestamp_ms BIGINT NOT NULL,
  execution_time_ms BIGINT,
  status VARCHAR(50) NOT NULL,
  CONSTRAINT trace_info_pk PRIMARY KEY (request_id),
  FOREIGN KEY (experiment_id) REFERENCES experiments (experiment_id)
);
CREATE TABLE trace_tags (
  key VARCHAR(250) NOT NULL,
  value VARCHAR(8000),
  request_id VARCHAR(50) NOT NULL,
  CONSTRAINT trace_tag_pk PRIMARY KEY (key, request_id),
  FOREIGN KEY (request_id) REFERENCES trace_info (request_id) ON DELETE CASCADE
);
CREATE TABLE trace_request_metadata (
  key VARCHAR(250) NOT NULL,
  value VARCHAR(8000),
  request_id VARCHAR(50) NOT NULL,
  CONSTRAINT trace_request_metadata_pk PRIMARY KEY (key, request_id),
  FOREIGN KEY (request_id) REFERENCES trace_info (request_id) ON DELETE CASCADE
);
INSERT INTO alembic_version (version_num) VALUES ('867495a8f9d4');
INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage, creation_time, last_update_time)
  VALUES (0, 'Default', 'mlflow-artifacts:/0', 'active', 1700000000000, 1700000000000);
`;

export async function createMlflowSchema(db: Queryable): Promise<void> {
  await db.query(MLFLOW_DDL);
}

export interface SeedRunsOptions {
  runs: number;
  epochs: number;
  seed: number;
  /** Bins per histogram (weights/{tower}/hist/bin_i, edges hist/edge_j); 0 for none. */
  histogramBins?: number;
  /** First run index, so several calls add distinct runs. */
  offset?: number;
  /**
   * Per-epoch keys per run, the 25 built-in ones first. Above 25, extra keys as a real model logs
   * them: a few unicode ones (val_loss_δ, précision@10, …), one of exactly 250 characters (MLflow's
   * VARCHAR(250) limit), then layer_{i}/{kernel|bias}/{stat}. Default 25: the store the demo,
   * e2e and chaos tests were written against.
   */
  metrics?: number;
}

/** A seeded run id: 32 hex characters, as MLflow's uuid4().hex. */
export function runIdFor(seed: number, index: number): string {
  // Same formula as the SQL below: md5('run-' || seed || '-' || index).
  return md5Hex(`run-${seed}-${index}`);
}

function md5Hex(s: string): string {
  return createHash('md5').update(s).digest('hex');
}

const PER_EPOCH_KEYS = [
  'loss', 'val_loss', 'total_loss', 'val_total_loss', 'regularization_loss', 'val_regularization_loss',
  'total_weight_norm', 'query_weight_norm', 'candidate_weight_norm',
  'weights/query/mean', 'weights/query/std', 'weights/query/min', 'weights/query/max',
  'weights/candidate/mean', 'weights/candidate/std', 'weights/candidate/min', 'weights/candidate/max',
  'gradients/query/mean', 'gradients/query/std', 'gradients/query/norm',
  'gradients/candidate/mean', 'gradients/candidate/std', 'gradients/candidate/norm',
  'recall_at_10', 'val_recall_at_10',
];
/** Unicode keys a trainer really logs: Greek, accents, CJK, an emoji. */
export const UNICODE_KEYS = ['val_loss_δ', 'précision@10', 'rappel@10', '损失/验证', 'grad_norm_∇', 'score_🚀'];
/** A key of exactly 250 characters, MLflow's limit (VARCHAR(250) counts characters, not bytes). */
export const LONG_KEY = ('eval/retrieval/per_segment/' + Array.from({ length: 40 }, (_, i) => `segment_${i}_recall`).join('/')).slice(0, 249) + 'δ';

/** The per-epoch keys of a run that logs `metrics` of them (see SeedRunsOptions.metrics). */
export function perEpochKeys(metrics: number = PER_EPOCH_KEYS.length): string[] {
  if (metrics <= PER_EPOCH_KEYS.length) return PER_EPOCH_KEYS.slice(0, Math.max(0, metrics));
  const extra = [...UNICODE_KEYS, LONG_KEY];
  for (let layer = 0; extra.length < metrics - PER_EPOCH_KEYS.length; layer++) {
    for (const part of ['kernel', 'bias']) for (const stat of ['mean', 'std', 'norm']) extra.push(`layer_${layer}/${part}/${stat}`);
  }
  return [...PER_EPOCH_KEYS, ...extra.slice(0, metrics - PER_EPOCH_KEYS.length)];
}

/**
 * Names a user may pick that JavaScript treats specially, or that break naive paths and quoting:
 * every structure built from them must keep them as data (issue 9). NUL-free: Postgres text has no NUL.
 */
export const HOSTILE_NAMES = [
  '__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', '__defineGetter__', 'toJSON', 'valueOf',
  'dots.in.a.name', 'slash/in/name', 'quote"double', "quote'single", 'back\\slash', 'ctl\u0001\u001f\u007f', 'tab\tnew\nline',
  'emoji_📈_🚀', 'دقة_التحقق', 'עברית_loss', ('long_' + 'ŝ'.repeat(250)).slice(0, 250),
];
/** Metric keys of the hostile run: the names above plus ones that land in every section of the document. */
export const HOSTILE_KEYS = [
  ...HOSTILE_NAMES,
  '__proto___weight_norm', 'constructor_weight_norm', '__proto___loss',
  'weights/__proto__/mean', 'weights/constructor/toString', 'gradients/query/__proto__', 'gradients/hasOwnProperty/norm',
  // Under hist/ but not bin_{i}/edge_{j}: other, not histograms (docs/history-mapping.md).
  'weights/query/hist/foo', 'weights/a/b/hist/bin_0', 'weights/query/hist/bin_01',
  'final___proto__', 'test_constructor',
];
/** Steps past 2^53 (MLflow's step is BIGINT): exact only as integers, never as doubles. */
export const BIG_STEPS = ['9007199254740992', '9007199254740993', '4611686018427387904', '9223372036854775807', '-9223372036854775808'];

const FINAL_KEYS = ['final_loss', 'final_val_loss', 'test_loss', 'test_recall_at_5', 'test_recall_at_10', 'test_recall_at_50', 'test_recall_at_100'];

/**
 * Adds `runs` runs of `epochs` epochs, set-based (INSERT … SELECT over generate_series), the same
 * for the same seed. Quirks, by run index i:
 *   i % 7 = 3   val_loss at step 2 is NaN (value 0, is_nan true)
 *   i % 11 = 5  gradients/query/norm at step 1 is +Inf, weights/query/min at step 1 is -Inf (±DBL_MAX)
 *   i % 5 = 2   loss at step 1 logged twice (later timestamp wins); val_loss at step 0 twice with one timestamp (greater wins)
 *   i % 13 = 4  warmup_lr at steps -1 and 0 (a negative step)
 *   i % 17 = 6  the run is deleted (lifecycle_stage deleted)
 *   i % 9 = 0   param notes is 8000 characters
 *   i % 19 = 8  hostile names (HOSTILE_KEYS as metrics, HOSTILE_NAMES as params and tags, a histogram
 *               tower named __proto__) and key big_step at BIG_STEPS, where doubles would merge 2^53 and 2^53+1
 * final_/test_ metrics are logged without a step (step 0). `metrics` adds per-epoch keys (unicode,
 * 250 characters, layer_{i}/…); the quirks stay on the built-in keys. Returns the run ids, by index.
 */
export async function seedMlflowRuns(db: Queryable, opts: SeedRunsOptions): Promise<string[]> {
  const { runs, epochs, seed } = opts;
  const offset = opts.offset ?? 0;
  const bins = opts.histogramBins ?? 0;
  const p = [seed, offset, runs, epochs];
  // r(i, key, step): a deterministic number in [0, 1) from the seed.
  const rnd = `(('x' || substr(md5($1::text || '/' || g.i || '/' || k.key || '/' || s.step), 1, 8))::bit(32)::bigint / 4294967296.0)`;
  await db.query(
    `INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, user_id, status, start_time, end_time, deleted_time, source_version, lifecycle_stage, artifact_uri, experiment_id)
     SELECT md5('run-' || $1::text || '-' || g.i), 'quicktest-' || g.i, 'LOCAL', 'trainer.py', '', 'trainer', 'FINISHED',
            1700000000000 + g.i * 3600000, 1700000000000 + g.i * 3600000 + $4::int * 1000 + 500,
            CASE WHEN g.i % 17 = 6 THEN 1700000000000 + g.i * 3600000 + 86400000 END, '',
            CASE WHEN g.i % 17 = 6 THEN 'deleted' ELSE 'active' END,
            'gs://mlflow-artifacts/0/' || md5('run-' || $1::text || '-' || g.i) || '/artifacts', 0
       FROM generate_series($2::bigint, $2::bigint + $3::int - 1) AS g(i)`,
    p,
  );
  await db.query(
    `INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan)
     SELECT k.key,
            CASE WHEN k.key = 'val_loss' AND s.step = 2 AND g.i % 7 = 3 THEN 0
                 WHEN k.key = 'gradients/query/norm' AND s.step = 1 AND g.i % 11 = 5 THEN 1.7976931348623157e308
                 WHEN k.key = 'weights/query/min' AND s.step = 1 AND g.i % 11 = 5 THEN -1.7976931348623157e308
                 WHEN k.key LIKE '%loss%' THEN round((1.0 / (s.step + 1) + ${rnd} * 0.1)::numeric, 6)::float8
                 ELSE ${rnd} END,
            1700000000000 + g.i * 3600000 + s.step * 1000, md5('run-' || $1::text || '-' || g.i), s.step,
            (k.key = 'val_loss' AND s.step = 2 AND g.i % 7 = 3)
       FROM generate_series($2::bigint, $2::bigint + $3::int - 1) AS g(i)
       CROSS JOIN unnest($5::text[]) AS k(key)
       CROSS JOIN generate_series(0, $4::int - 1) AS s(step)`,
    [...p, perEpochKeys(opts.metrics)],
  );
  // Duplicates: a later timestamp with another value, and the same timestamp with a greater value.
  await db.query(
    `INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan)
     SELECT 'loss', 0.123456, 1700000000000 + g.i * 3600000 + 1000 + 999, md5('run-' || $1::text || '-' || g.i), 1, false
       FROM generate_series($2::bigint, $2::bigint + $3::int - 1) AS g(i) WHERE g.i % 5 = 2 AND $4::int > 1
     UNION ALL
     SELECT 'val_loss', 9.5, 1700000000000 + g.i * 3600000, md5('run-' || $1::text || '-' || g.i), 0, false
       FROM generate_series($2::bigint, $2::bigint + $3::int - 1) AS g(i) WHERE g.i % 5 = 2
     UNION ALL
     SELECT 'warmup_lr', 0.001 * (s.step + 2), 1700000000000 + g.i * 3600000 + s.step, md5('run-' || $1::text || '-' || g.i), s.step, false
       FROM generate_series($2::bigint, $2::bigint + $3::int - 1) AS g(i) CROSS JOIN generate_series(-1, 0) AS s(step) WHERE g.i % 13 = 4`,
    p,
  );
  // Final metrics, logged without a step.
  await db.query(
    `INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan)
     SELECT k.key, ${rnd}, 1700000000000 + g.i * 3600000 + $4::int * 1000 + 100, md5('run-' || $1::text || '-' || g.i), 0, false
       FROM generate_series($2::bigint, $2::bigint + $3::int - 1) AS g(i)
       CROSS JOIN unnest($5::text[]) AS k(key) CROSS JOIN (VALUES (0)) AS s(step)`,
    [...p, FINAL_KEYS],
  );
  if (bins > 0) {
    await db.query(
      `INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan)
       SELECT t.kind || '/' || tw.tower || '/hist/bin_' || b.bin, floor(${rnd.replace('k.key', "(t.kind || tw.tower || b.bin)")} * 1000),
              1700000000000 + g.i * 3600000 + s.step * 1000, md5('run-' || $1::text || '-' || g.i), s.step, false
         FROM generate_series($2::bigint, $2::bigint + $3::int - 1) AS g(i)
         CROSS JOIN (VALUES ('weights'), ('gradients')) AS t(kind) CROSS JOIN (VALUES ('query'), ('candidate')) AS tw(tower)
         CROSS JOIN generate_series(0, $5::int - 1) AS b(bin) CROSS JOIN generate_series(0, $4::int - 1) AS s(step)
       UNION ALL
       SELECT t.kind || '/' || tw.tower || '/hist/edge_' || e.edge, -1.0 + 2.0 * e.edge / $5::int,
              1700000000000 + g.i * 3600000, md5('run-' || $1::text || '-' || g.i), 0, false
         FROM generate_series($2::bigint, $2::bigint + $3::int - 1) AS g(i)
         CROSS JOIN (VALUES ('weights'), ('gradients')) AS t(kind) CROSS JOIN (VALUES ('query'), ('candidate')) AS tw(tower)
         CROSS JOIN generate_series(0, $5::int) AS e(edge)`,
      [...p, bins],
    );
  }
  await seedHostileRuns(db, seed, offset, runs);
  await db.query(
    `INSERT INTO params (key, value, run_uuid)
     SELECT k.key, CASE k.key WHEN 'epochs' THEN $4::text WHEN 'batch_size' THEN '2048' WHEN 'learning_rate' THEN '0.01'
                              WHEN 'optimizer' THEN 'adagrad' WHEN 'embedding_dim' THEN (16 * (1 + g.i % 4))::text
                              ELSE left(repeat('long param ' || g.i || ' ', 800), 8000) END,
            md5('run-' || $1::text || '-' || g.i)
       FROM generate_series($2::bigint, $2::bigint + $3::int - 1) AS g(i)
       CROSS JOIN (VALUES ('epochs'), ('batch_size'), ('learning_rate'), ('optimizer'), ('embedding_dim'), ('notes')) AS k(key)
      WHERE k.key <> 'notes' OR g.i % 9 = 0`,
    p,
  );
  await db.query(
    `INSERT INTO tags (key, value, run_uuid)
     SELECT k.key, CASE k.key WHEN 'mlflow.runName' THEN 'quicktest-' || g.i ELSE 'trainer' END, md5('run-' || $1::text || '-' || g.i)
       FROM generate_series($2::bigint, $2::bigint + $3::int - 1) AS g(i) CROSS JOIN (VALUES ('mlflow.runName'), ('mlflow.user')) AS k(key)`,
    [seed, offset, runs],
  );
  // latest_metrics as MLflow maintains it: the greatest (step, timestamp, value) per key.
  await db.query(
    `INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid)
     SELECT DISTINCT ON (run_uuid, key) key, value, timestamp, step, is_nan, run_uuid FROM metrics
      WHERE run_uuid IN (SELECT md5('run-' || $1::text || '-' || g.i) FROM generate_series($2::bigint, $2::bigint + $3::int - 1) AS g(i))
      ORDER BY run_uuid, key, step DESC, timestamp DESC, value DESC`,
    [seed, offset, runs],
  );
  return Array.from({ length: runs }, (_, j) => runIdFor(seed, offset + j));
}

/** The hostile run of each 19 (i % 19 = 8): names as data, steps past 2^53. */
async function seedHostileRuns(db: Queryable, seed: number, offset: number, runs: number): Promise<void> {
  const hostile = `FROM generate_series($2::bigint, $2::bigint + $3::int - 1) AS g(i) WHERE g.i % 19 = 8`;
  const run = `md5('run-' || $1::text || '-' || g.i)`;
  await db.query(
    `INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan)
     SELECT k.key, k.n * 0.5 + s.step, 1700000000000 + g.i * 3600000 + s.step, ${run}, s.step, false
       ${hostile.replace('WHERE', 'CROSS JOIN unnest($4::text[]) WITH ORDINALITY AS k(key, n) CROSS JOIN generate_series(0, 1) AS s(step) WHERE')}
     UNION ALL
     SELECT 'weights/__proto__/hist/' || p.part, p.v, 1700000000000 + g.i * 3600000, ${run}, 0, false
       ${hostile.replace('WHERE', "CROSS JOIN (VALUES ('bin_0', 3), ('bin_1', 4), ('edge_0', -1), ('edge_1', 0), ('edge_2', 1)) AS p(part, v) WHERE")}
     UNION ALL
     SELECT 'big_step', b.n, 1700000000000 + g.i * 3600000 + b.n, ${run}, b.step::bigint, false
       ${hostile.replace('WHERE', 'CROSS JOIN unnest($5::text[]) WITH ORDINALITY AS b(step, n) WHERE')}`,
    [seed, offset, runs, HOSTILE_KEYS, BIG_STEPS],
  );
  await db.query(
    `INSERT INTO params (key, value, run_uuid) SELECT k.key, 'param ' || k.key, ${run} ${hostile.replace('WHERE', 'CROSS JOIN unnest($4::text[]) AS k(key) WHERE')}
     ON CONFLICT DO NOTHING`,
    [seed, offset, runs, HOSTILE_NAMES],
  );
  await db.query(
    `INSERT INTO tags (key, value, run_uuid) SELECT k.key, 'tag ' || k.key, ${run} ${hostile.replace('WHERE', 'CROSS JOIN unnest($4::text[]) AS k(key) WHERE')}`,
    [seed, offset, runs, HOSTILE_NAMES],
  );
}

/** The app table's column names, as target.appTable configures them. */
export interface AppTableNames {
  table: string;
  id: string;
  status: string;
  completedStatus: string;
  runId: string;
  history: string;
  artifactsPath: string;
  displayName: string;
  finishedAt?: string;
}

/** The Django QuickTest table, reduced to the columns the migration reads and writes. */
export async function createAppTable(db: Queryable, t: AppTableNames): Promise<void> {
  await db.query(`CREATE TABLE ${t.table} (
    ${t.id} SERIAL PRIMARY KEY,
    ${t.displayName} VARCHAR(255) NOT NULL DEFAULT '',
    ${t.status} VARCHAR(20) NOT NULL,
    ${t.runId} VARCHAR(255),
    ${t.history} JSONB,
    ${t.artifactsPath} VARCHAR(500)
    ${t.finishedAt ? `, ${t.finishedAt} TIMESTAMPTZ` : ''}
  )`);
}

export interface SeedAppRowsOptions {
  /** One completed row per run id. */
  runIds: string[];
  /** Of those, how many (the first) already carry a cache. */
  alreadyCached?: number;
  /** Extra rows that are not completed (running, failed). */
  notCompleted?: number;
  /** Extra completed rows without a run id (null or ''). */
  withoutRunId?: number;
  /** gs://bucket/prefix under which each row's artifacts path is made. */
  artifactsRoot?: string;
  /** finished_at of the completed rows: start, then one hour apart. */
  finishedFrom?: string;
  /** When set, the completed rows all finish before this (closer than an hour apart if need be),
   * so a demo of any size has no run after its cutover date. */
  finishedBefore?: string;
}

export async function seedAppRows(db: Queryable, t: AppTableNames, opts: SeedAppRowsOptions): Promise<void> {
  const root = opts.artifactsRoot ?? 'gs://app-artifacts/quicktests';
  const fin = t.finishedAt ? `, ${t.finishedAt}` : '';
  const from = opts.finishedFrom ?? '2024-01-01T00:00:00Z';
  // One hour apart, or closer so the last of them still finishes before finishedBefore.
  const room = opts.finishedBefore ? Date.parse(opts.finishedBefore) - Date.parse(from) : Infinity;
  const stepMs = Math.min(3_600_000, Math.floor(room / (opts.runIds.length + 1)));
  const finVal = (n: string) => (t.finishedAt ? `, $3::timestamptz + (${n}) * interval '${stepMs} milliseconds'` : '');
  await db.query(
    `INSERT INTO ${t.table} (${t.displayName}, ${t.status}, ${t.runId}, ${t.history}, ${t.artifactsPath}${fin})
     SELECT 'Quick test ' || r.n, '${t.completedStatus.replace(/'/g, "''")}', r.run_id,
            CASE WHEN r.n <= $2::int THEN '{"available": true, "cached_by": "django"}'::jsonb END,
            '${root}/' || r.run_id ${finVal('r.n')}
       FROM unnest($1::text[]) WITH ORDINALITY AS r(run_id, n)`,
    t.finishedAt ? [opts.runIds, opts.alreadyCached ?? 0, from] : [opts.runIds, opts.alreadyCached ?? 0],
  );
  if (opts.notCompleted) {
    await db.query(
      `INSERT INTO ${t.table} (${t.displayName}, ${t.status}, ${t.runId}) SELECT 'Running ' || n, CASE WHEN n % 2 = 0 THEN 'running' ELSE 'failed' END, md5('not-done-' || n) FROM generate_series(1, $1::int) n`,
      [opts.notCompleted],
    );
  }
  if (opts.withoutRunId) {
    await db.query(
      `INSERT INTO ${t.table} (${t.displayName}, ${t.status}, ${t.runId}) SELECT 'No MLflow ' || n, '${t.completedStatus.replace(/'/g, "''")}', CASE WHEN n % 2 = 0 THEN '' END FROM generate_series(1, $1::int) n`,
      [opts.withoutRunId],
    );
  }
}
