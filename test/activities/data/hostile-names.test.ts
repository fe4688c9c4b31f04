// Names are data and steps are 64-bit (issue 9): a run whose keys, params, tags, towers and stats
// are names JavaScript treats specially, with steps past 2^53, round-trips through the backfill,
// 0.5, the histogram option, the raw export and the cutover check. And 0.5, which recomputes each
// document on its own, catches a builder that gets a name, a step or a classification wrong.
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { gunzipSync } from 'node:zlib';
import { parse, stringify } from 'lossless-json';
import { from as copyFrom } from 'pg-copy-streams';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDataActivities } from '../../../src/activities/data';
import { manifestUri, type RawManifest } from '../../../src/activities/data/export';
import { BIG_STEPS, HOSTILE_KEYS, HOSTILE_NAMES } from '../../../dev/mlflow-store';
import { createDataWorld, type DataWorld } from '../../fixtures/mlflow-store';
import { MemoryObjectStore } from '../../support/memory-object-store';
import { failureOf } from '../../support/failures';

/** The cache as text, parsed exactly: integers as bigint, other numbers as numbers. */
function exact(text: string): any {
  return parse(text, undefined, (s) => (/^-?\d+$/.test(s) ? BigInt(s) : Number(s)));
}

describe('hostile names and 64-bit steps through Phase 0', () => {
  let w: DataWorld;
  let objects: MemoryObjectStore;
  let hostile: string;
  const acts = () => createDataActivities({ databases: w.databases, objects }).activities;
  const cache = async (runId = hostile) => {
    const { rows } = await w.app.query(`SELECT training_history_json::text AS h FROM ml_platform_quicktest WHERE mlflow_run_id = $1`, [runId]);
    return exact(rows[0].h);
  };
  const backfill = async (force = false) => {
    const ctx = w.ctx({ force });
    for (const b of (await acts().planBackfill(ctx)).facts!.batches as any[]) await acts().backfillBatch(ctx, b);
  };

  beforeAll(async () => {
    w = await createDataWorld({ name: 'hostile', runs: 12, epochs: 3, app: { alreadyCached: 0, notCompleted: 0, withoutRunId: 0 } });
    objects = new MemoryObjectStore();
    hostile = w.runIds[8]!; // i % 19 = 8
  });
  afterAll(() => w.close());

  it('backfills every hostile name to its place and every step exactly', async () => {
    await backfill();
    const h = await cache();
    for (const name of ['__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', '__defineGetter__', 'toJSON', 'valueOf', 'dots.in.a.name', 'slash/in/name', 'tab\tnew\nline', 'emoji_📈_🚀', 'دقة_التحقق']) {
      expect(Object.hasOwn(h.other, name), name).toBe(true);
    }
    expect(Object.hasOwn(h.loss, 'עברית_loss')).toBe(true);
    expect(Object.hasOwn(h.loss, '__proto___loss')).toBe(true);
    expect(Object.keys(h.gradient).sort()).toEqual(['__proto__', 'candidate', 'constructor', 'query', 'total']);
    expect(Object.keys(h.weight_stats['__proto__'])).toEqual(['mean']);
    expect(Object.keys(h.weight_stats.constructor)).toEqual(['toString']);
    expect(Object.keys(h.gradient_stats.query)).toContain('__proto__');
    expect(Object.keys(h.gradient_stats.hasOwnProperty)).toEqual(['norm']);
    expect(Object.keys(h.final_metrics)).toContain('final___proto__');
    // Under hist/ but not bin_{i}/edge_{j}: other, even in option A; the real histogram tower is skipped.
    for (const key of ['weights/query/hist/foo', 'weights/a/b/hist/bin_0', 'weights/query/hist/bin_01']) expect(Object.hasOwn(h.other, key), key).toBe(true);
    expect(Object.hasOwn(h.weight_stats, '__proto__') && Object.hasOwn(h.weight_stats['__proto__'], 'histogram')).toBe(false);
    for (const name of HOSTILE_NAMES) {
      expect(h.params[name], name).toBe(`param ${name}`);
      expect(h.tags[name], name).toBe(`tag ${name}`);
    }
    // Steps: 2^53 and 2^53+1 stay two epochs, each with its own value; 2^62, 2^63−1 and −2^63 exact.
    expect(h.epochs).toEqual([...BIG_STEPS.map(BigInt), 0n, 1n, 2n].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));
    const at = (step: string) => h.other.big_step[h.epochs.findIndex((e: bigint) => e === BigInt(step))];
    expect(BIG_STEPS.map(at)).toEqual([1n, 2n, 3n, 4n, 5n]);
    // As Postgres itself holds them (jsonb numeric), not as a JS reader would round them.
    const { rows } = await w.app.query(`SELECT (training_history_json->'epochs')::text AS e FROM ml_platform_quicktest WHERE mlflow_run_id = $1`, [hostile]);
    expect(rows[0].e).toBe('[-9223372036854775808, 0, 1, 2, 9007199254740992, 9007199254740993, 4611686018427387904, 9223372036854775807]');
  });

  it('0.5 passes on them, in option A and with histograms (option B, a tower named __proto__)', async () => {
    expect((await acts().verifyMigration(w.ctx())).facts).toMatchObject({ runsVerified: 12, mismatches: 0, uncached: 0 });
    const include = { ...w.target, data: { ...w.target.data, histograms: 'include' as const } };
    const res = await acts().cacheHistograms(w.ctx({ target: include }));
    expect(res.facts).toMatchObject({ runs: 1 });
    const hist = (await cache()).weight_stats['__proto__'].histogram;
    expect(hist).toEqual({ bin_edges: [-1n, 0n, 1n], counts: [[3n, 4n]], steps: [0n] });
    expect((await acts().verifyMigration(w.ctx({ target: include }))).facts).toMatchObject({ runsVerified: 12, mismatches: 0 });
    await backfill(true);
  });

  it('0.5 catches a builder that drops a name, merges two steps, or misplaces a key, and names each', async () => {
    const good = await cache();
    const bad = exact(stringify(good)!);
    delete bad.other['__proto__']; // obj["__proto__"] = … on a plain object: the key vanishes
    bad.epochs[bad.epochs.findIndex((e: bigint) => e === 9007199254740993n)] = 9007199254740992n; // a step held as a double
    bad.other['__proto___weight_norm'] = bad.gradient['__proto__']; // a wrong classification
    delete bad.gradient['__proto__'];
    bad.gradient_stats.query = Object.fromEntries(Object.entries(bad.gradient_stats.query).filter(([k]) => k !== '__proto__'));
    await w.app.query(`UPDATE ml_platform_quicktest SET training_history_json = $2::text::jsonb WHERE mlflow_run_id = $1`, [hostile, stringify(bad)]);

    const f = await failureOf(acts().verifyMigration(w.ctx()));
    const details = f.details![0] as { mismatchList: Array<{ runId: string; key: string; problem: string }> };
    const problems = new Map(details.mismatchList.map((m) => [m.key, m.problem]));
    expect(problems.get('__proto__')).toMatch(/^missing from the cache/);
    expect(problems.get('(epochs)') ?? problems.get('epochs')).toMatch(/9007199254740993 in the store, 9007199254740992 in the cache/);
    expect(problems.get('__proto___weight_norm')).toMatch(/missing from the cache \(expected at gradient\/__proto__\)/);
    expect(problems.get('gradients/query/__proto__')).toMatch(/^missing from the cache/);
    expect([...problems.keys()].some((k) => k.includes('other') && k.includes('__proto___weight_norm'))).toBe(true);
    expect(details.mismatchList.every((m) => m.runId === hostile)).toBe(true);

    // retry: 0.5 rewrites exactly the runs it saved, then verifies again.
    const retried = await acts().verifyMigration(w.ctx());
    expect(retried.summary).toMatch(/^retry rewrote 1 mismatched run\(s\); all 12 migrated runs match/);
    expect(await cache()).toEqual(good);
  });

  it('the raw export holds every hostile name exactly (read back by Postgres COPY)', async () => {
    const ctx = w.ctx();
    await acts().exportRawTables(ctx);
    const manifest = JSON.parse((await objects.read(manifestUri(ctx)))!.toString()) as RawManifest;
    const entry = manifest.tables.find((t) => t.table === 'metrics')!;
    await w.mlflow.query(`CREATE TABLE metrics_back (LIKE metrics)`);
    const client = await w.mlflow.connect();
    try {
      await pipeline(Readable.from([gunzipSync((await objects.read(entry.uri))!)]), client.query(copyFrom(`COPY metrics_back FROM STDIN WITH (FORMAT csv, HEADER)`)));
    } finally {
      client.release();
    }
    const { rows } = await w.mlflow.query(
      `SELECT (SELECT count(*) FROM (SELECT * FROM metrics EXCEPT SELECT * FROM metrics_back) d)::int AS lost,
              (SELECT count(DISTINCT key) FROM metrics_back WHERE key = ANY($1))::int AS hostile,
              (SELECT array_agg(step::text ORDER BY step) FROM metrics_back WHERE key = 'big_step') AS steps`,
      [HOSTILE_KEYS],
    );
    expect(rows[0]).toEqual({ lost: 0, hostile: new Set(HOSTILE_KEYS).size, steps: [...BIG_STEPS].sort((a, b) => (BigInt(a) < BigInt(b) ? -1 : 1)) });
  });

  it('the cutover check (2.1) compares files and caches whose names are hostile', async () => {
    const file = JSON.stringify({
      saved_at: '2024-01-02T00:00:00Z',
      available: true,
      epochs: [0, 1],
      loss: { ['__proto__']: [0.5, 0.25], constructor: [1, 2] },
      gradient: { toString: [3, 4] },
      weight_stats: { query: {}, candidate: {}, ['__proto__']: { hasOwnProperty: [1, 1] } },
      gradient_stats: { query: {}, candidate: {} },
      final_metrics: { test___proto__: 0.3 },
      params: { ['__proto__']: 'x', constructor: 'y' },
    }).replace('"epochs":[0,1]', '"epochs":[0,9007199254740993]');
    expect(Object.hasOwn(JSON.parse(file).loss, '__proto__')).toBe(true);
    const { rows } = await w.app.query(`SELECT id, gcs_artifacts_path AS p FROM ml_platform_quicktest ORDER BY id DESC LIMIT 2`);
    for (const r of rows) {
      await objects.write(`${r.p}/training_metrics.json`, file);
      await w.app.query(`UPDATE ml_platform_quicktest SET training_history_json = $2::jsonb, mlflow_run_id = '' WHERE id = $1`, [r.id, file]);
    }
    const target = { ...w.target, data: { ...w.target.data, cutoverDate: '2024-01-01T00:00:00Z', minPostCutoverExperiments: 2 } };
    expect((await acts().checkCutover(w.ctx({ target }))).facts).toEqual({ experiments: rows.map((r) => r.id) });
    // The cache lost __proto__ (as a plain object would): 2.1 must see it.
    await w.app.query(`UPDATE ml_platform_quicktest SET training_history_json = training_history_json #- '{loss,__proto__}' WHERE id = $1`, [rows[0].id]);
    const f = await failureOf(acts().checkCutover(w.ctx({ target })));
    expect(f.message).toMatch(/the cache differs from .* in loss/);
    // A step that a double would round (2^53+1 → 2^53): 2.1 compares steps exactly.
    await w.app.query(`UPDATE ml_platform_quicktest SET training_history_json = $2::jsonb WHERE id = $1`, [rows[0].id, file.replace('9007199254740993', '9007199254740992')]);
    const g = await failureOf(acts().checkCutover(w.ctx({ target })));
    expect(g.message).toMatch(/the cache differs from .* in epochs$|the cache differs from [^;]* in epochs[.;]/);
  });
});
