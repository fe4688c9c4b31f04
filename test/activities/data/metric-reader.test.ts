import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { createDatabases, type Databases } from '../../../src/adapters/postgres';
import { BinaryTupleParser, copyBinary } from '../../../src/adapters/postgres-copy';
import { readRunMetrics, readRuns, type RunRows } from '../../../src/activities/data/metric-reader';
import { HISTOGRAM_KEY_SQL } from '../../../src/history/categorise';
import { createDatabase } from '../../../dev/postgres';
import { createMlflowSchema } from '../../../dev/mlflow-store';

// Names a user can pick, as keys and as run ids (the app table's run id column is free text).
const HOSTILE = ['__proto__', 'constructor', 'toString', 'run$$1', 'a$&b', "x$'y", 'a\tb', 'back\\slash', 'quote"d', "apo'strophe", '{brace,comma}', 'NULL', 'línea\nnueva', '🚀', 'שלום'];
const BIG = ['9007199254740993', '4611686018427387904', '9223372036854775807', '-9223372036854775808', '-1', '0'];

describe('metric reader (0.3 read path)', () => {
  let databases: Databases;
  beforeAll(async () => {
    const url = await createDatabase(inject('pgAdminUrl'), 'metric_reader_mlflow');
    databases = createDatabases({ MLFLOW_DATABASE_URL: url });
    const db = databases.pool('MLFLOW_DATABASE_URL');
    await createMlflowSchema(db);
    // Run ids at MLflow's limit (32 characters); hostile ones too, since the app may name anything.
    const runIds = ['r1', 'r2', 'r-empty', ...HOSTILE.map((h) => h.slice(0, 32))];
    for (const id of runIds) await db.query(`INSERT INTO runs (run_uuid, start_time, end_time, lifecycle_stage, experiment_id) VALUES ($1, 1, 2, 'active', 0)`, [id]);
    // r1: every hostile key, steps at and above 2^53, logged out of order.
    for (const key of HOSTILE) {
      for (const step of [...BIG].reverse()) await db.query(`INSERT INTO metrics VALUES ($1, $2, 1000, 'r1', $3, false)`, [key, Number(step.length), step]);
    }
    // r2: duplicates of one step, resolved as Postgres orders them (timestamp, value, is_nan).
    await db.query(`INSERT INTO metrics VALUES ('loss', 5, 20, 'r2', 1, false), ('loss', 3, 20, 'r2', 1, false), ('loss', 9, 10, 'r2', 1, false),
      ('loss', 0, 20, 'r2', 1, true), ('loss', 7, 5, 'r2', 0, false), ('weights/q/hist/bin_0', 1, 1, 'r2', 0, false)`);
    for (const h of HOSTILE) await db.query(`INSERT INTO metrics VALUES ('k', 1.5, 1, $1, 3, false)`, [h.slice(0, 32)]);
    await db.query(`INSERT INTO params VALUES ('__proto__', 'p', 'r1')`);
  });
  afterAll(() => databases.close());

  const pool = () => databases.pool('MLFLOW_DATABASE_URL');
  const all = async (ids: string[], runsPerRead = 2, excludeKeys?: string) => {
    const out: RunRows[] = [];
    await readRuns(pool(), ids, { excludeKeys, runsPerRead }, (r) => void out.push(r));
    return out;
  };

  it('keeps every key, and steps exactly, in step order', async () => {
    const [r1] = await all(['r1']);
    expect(r1!.series.map((s) => s.key)).toEqual([...HOSTILE].sort());
    for (const s of r1!.series) {
      expect([...s.steps].map(String)).toEqual([...BIG].sort((a, b) => (BigInt(a) < BigInt(b) ? -1 : 1)));
      expect([...s.values]).toEqual([...s.steps].map((x) => String(x).length));
    }
    expect(r1!.params).toEqual([['__proto__', 'p']]);
    expect(r1!.endTime).toBe('2');
  });

  it('orders duplicates of a step as Postgres does, so the last one wins', async () => {
    const [r2] = await all(['r2'], 2, HISTOGRAM_KEY_SQL);
    expect(r2!.series.map((s) => s.key)).toEqual(['loss']);
    const loss = r2!.series[0]!;
    expect([...loss.steps]).toEqual([0n, 1n, 1n, 1n, 1n]);
    expect([...loss.timestamps]).toEqual([5n, 10n, 20n, 20n, 20n]);
    // MLflow stores NaN as value 0 with is_nan: it sorts by that 0, before 3 and 5.
    expect([...loss.values]).toEqual([7, 9, 0, 3, 5]);
    expect([...loss.isNan]).toEqual([0, 0, 1, 0, 0]);
  });

  it('reads hostile run ids, in the order given, across groups; runs without metrics come with none; unknown ids are left out', async () => {
    const ids = ['nope', ...HOSTILE.map((h) => h.slice(0, 32)), 'r-empty'];
    const runs = await all(ids, 3);
    expect(runs.map((r) => r.runUuid)).toEqual(ids.slice(1));
    expect(runs.at(-1)!.series).toEqual([]);
    for (const r of runs.slice(0, -1)) expect([...r.series[0]!.steps]).toEqual([3n]);
    const onlyMetrics: string[] = [];
    await readRunMetrics(pool(), ids, { runsPerRead: 5 }, (m) => void onlyMetrics.push(m.runUuid));
    expect(onlyMetrics).toEqual(ids.slice(1, -1));
  });

  it('fails the read, and only the read, when its connection is cut mid-COPY', async () => {
    const admin = databases.pool('MLFLOW_DATABASE_URL');
    let tuples = 0;
    const read = copyBinary(pool(), `SELECT x, pg_sleep(0.01) FROM generate_series(1, 2000) AS x WHERE cardinality($1) = 1`, ['marker'], () => void tuples++);
    const cut = (async () => {
      for (let i = 0; i < 100; i++) {
        const { rows } = await admin.query(`SELECT pg_terminate_backend(pid) AS done FROM pg_stat_activity WHERE query LIKE 'COPY (SELECT x, pg_sleep%' AND pid <> pg_backend_pid()`);
        if (rows.length) return;
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    await expect(read).rejects.toThrow(/terminat/i);
    await cut;
    // The pool still serves: the dead connection was dropped, not handed out again.
    expect((await pool().query('SELECT 1 AS one')).rows[0].one).toBe(1);
  });

  it('parses tuples cut at any byte, and refuses a stream that ends mid-tuple', () => {
    // Header, one tuple (int8 7, text "ab", NULL), trailer.
    const tuple = Buffer.concat([Buffer.from([0, 3]), Buffer.from([0, 0, 0, 8]), Buffer.from([0, 0, 0, 0, 0, 0, 0, 7]), Buffer.from([0, 0, 0, 2]), Buffer.from('ab'), Buffer.from([0xff, 0xff, 0xff, 0xff])]);
    const stream = Buffer.concat([Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1'), Buffer.alloc(8), tuple, tuple, Buffer.from([0xff, 0xff])]);
    for (let cut = 1; cut < stream.length; cut++) {
      const seen: string[] = [];
      const p = new BinaryTupleParser((buf, start, len) => seen.push(`${buf.readBigInt64BE(start[0]!)}|${buf.toString('utf8', start[1]!, start[1]! + len[1]!)}|${len[2]}`));
      p.push(stream.subarray(0, cut));
      p.push(stream.subarray(cut));
      p.end();
      expect(seen, `cut at ${cut}`).toEqual(['7|ab|-1', '7|ab|-1']);
    }
    const p = new BinaryTupleParser(() => {});
    p.push(stream.subarray(0, stream.length - 5));
    expect(() => p.end()).toThrow(/mid-tuple/);
  });
  it('stops a COPY still streaming when onChunk throws, and the pool goes on serving', async () => {
    // Big enough to arrive in many network chunks; a ROLLBACK sent behind it would wait forever.
    const db = pool();
    await db.query(`CREATE TABLE IF NOT EXISTS big AS SELECT g AS n, md5(g::text) AS t FROM generate_series(1, 300000) g`);
    let chunks = 0;
    const stop = new Error('cancelled');
    await expect(
      copyBinary(db, 'SELECT n, t FROM big WHERE t <> ALL($1)', ['x'], () => {}, () => {
        if (++chunks === 3) throw stop;
      }),
    ).rejects.toBe(stop);
    expect((await db.query('SELECT 1 AS one')).rows[0].one).toBe(1);
  });
});
