// The backfill's fast read of MLflow metrics: each group of runs in one unordered binary COPY
// (Postgres streams the heap through an index on run_uuid: no sort, no work_mem spill), grouped
// and ordered in the worker. Steps and timestamps stay exact 64-bit integers (BigInt64Array),
// values exact float8. A group of runs is held whole until its COPY ends: `runsPerRead` bounds it.
import type { Pool } from '../../adapters/postgres-streams';
import { copyBinary } from '../../adapters/postgres-copy';

/** One key's points in (step, timestamp, value, is_nan) order, duplicates kept: the last of a step wins. */
export interface KeySeries {
  key: string;
  length: number;
  steps: BigInt64Array;
  timestamps: BigInt64Array;
  values: Float64Array;
  /** 1 where MLflow's is_nan is set (its value column then holds 0). */
  isNan: Uint8Array;
}

export interface RunMetrics {
  runUuid: string;
  /** By key, in code-unit order. */
  series: KeySeries[];
}

/** A run as the backfill reads it: times as int8 text (exact), params, tags, metrics. */
export interface RunRows extends RunMetrics {
  endTime: string | null;
  startTime: string | null;
  params: Array<[string, string]>;
  tags: Array<[string, string | null]>;
}

export interface ReadOptions {
  /** SQL LIKE patterns of keys not to read (the histogram keys when they are not kept). */
  excludeKeyLike: readonly string[];
  /** Runs per COPY: the worker holds one group's points at a time (~25 bytes each). */
  runsPerRead: number;
  /** Called between network chunks; throw to stop (cancellation). */
  onChunk?: () => void;
}

/**
 * Calls `onRun` for each of `runIds` (in that order) that the store's runs table holds, with its
 * params, tags and metrics: per group, one query for the small tables, then the metrics COPY.
 */
export async function readRuns(pool: Pool, runIds: readonly string[], opts: ReadOptions, onRun: (run: RunRows) => Promise<void> | void): Promise<void> {
  for (let i = 0; i < runIds.length; i += opts.runsPerRead) {
    const group = runIds.slice(i, i + opts.runsPerRead);
    const { rows } = await pool.query(
      `SELECT run_uuid, 0 AS kind, NULL::text AS key, end_time::text AS a, start_time::text AS b FROM runs WHERE run_uuid = ANY($1)
       UNION ALL SELECT run_uuid, 1, key, value, NULL FROM params WHERE run_uuid = ANY($1)
       UNION ALL SELECT run_uuid, 2, key, value, NULL FROM tags WHERE run_uuid = ANY($1)`,
      [group],
    );
    const runs = new Map<string, RunRows>();
    for (const r of rows) if (r.kind === 0) runs.set(r.run_uuid, { runUuid: r.run_uuid, endTime: r.a, startTime: r.b, params: [], tags: [], series: [] });
    for (const r of rows) {
      if (r.kind === 1) runs.get(r.run_uuid)?.params.push([r.key, r.a]);
      else if (r.kind === 2) runs.get(r.run_uuid)?.tags.push([r.key, r.a]);
    }
    const withMetrics = new Map<string, KeySeries[]>();
    await readRunMetrics(pool, group, { ...opts, runsPerRead: group.length }, (m) => void withMetrics.set(m.runUuid, m.series));
    for (const id of group) {
      const run = runs.get(id);
      if (!run) continue;
      run.series = withMetrics.get(id) ?? [];
      withMetrics.delete(id);
      runs.delete(id);
      await onRun(run);
    }
  }
}

/**
 * Calls `onRun` for each of `runIds` (in that order) that has metrics, after the COPY of its group
 * ends. Run ids without a metric row are not reported: the caller knows its list.
 */
export async function readRunMetrics(pool: Pool, runIds: readonly string[], opts: ReadOptions, onRun: (run: RunMetrics) => Promise<void> | void): Promise<void> {
  const exclude = opts.excludeKeyLike.map((p) => ` AND key NOT LIKE '${p.replace(/'/g, "''")}'`).join('');
  const select = `SELECT run_uuid, key, step, timestamp, value, is_nan FROM metrics WHERE run_uuid = ANY($1)${exclude}`;
  for (let i = 0; i < runIds.length; i += opts.runsPerRead) {
    const group = runIds.slice(i, i + opts.runsPerRead);
    const runs = new Map<string, Map<string, SeriesBuilder>>();
    let lastRun = '';
    let lastRunMap: Map<string, SeriesBuilder> | undefined;
    let lastKey = '';
    let lastSeries: SeriesBuilder | undefined;
    await copyBinary(
      pool,
      select,
      group,
      (buf, start, len) => {
        const run = buf.toString('utf8', start[0]!, start[0]! + len[0]!);
        if (run !== lastRun || !lastRunMap) {
          lastRun = run;
          lastRunMap = runs.get(run);
          if (!lastRunMap) runs.set(run, (lastRunMap = new Map()));
          lastSeries = undefined;
        }
        const key = buf.toString('utf8', start[1]!, start[1]! + len[1]!);
        if (key !== lastKey || !lastSeries) {
          lastKey = key;
          lastSeries = lastRunMap.get(key);
          if (!lastSeries) lastRunMap.set(key, (lastSeries = new SeriesBuilder(key)));
        }
        lastSeries.add(buf, start[2]!, start[3]!, buf.readDoubleBE(start[4]!), buf[start[5]!]!);
      },
      opts.onChunk,
    );
    for (const id of group) {
      const keys = runs.get(id);
      if (!keys) continue;
      runs.delete(id);
      const series = [...keys.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)).map((s) => s.finish());
      await onRun({ runUuid: id, series });
    }
  }
}

/** Grows typed arrays; int8 bytes are copied as they come (big-endian) into little-endian slots. */
class SeriesBuilder {
  private n = 0;
  private steps = new BigInt64Array(64);
  private ts = new BigInt64Array(64);
  private values = new Float64Array(64);
  private nan = new Uint8Array(64);
  /** Steps as doubles: monotone in the exact step, so they order all but ties and near-2^53 neighbours. */
  private approx = new Float64Array(64);

  constructor(readonly key: string) {}

  add(buf: Buffer, stepAt: number, tsAt: number, value: number, isNan: number): void {
    if (this.n === this.steps.length) this.grow();
    const i = this.n++;
    this.steps[i] = buf.readBigInt64BE(stepAt);
    this.approx[i] = buf.readInt32BE(stepAt) * 4294967296 + buf.readUInt32BE(stepAt + 4);
    this.ts[i] = buf.readBigInt64BE(tsAt);
    this.values[i] = value;
    this.nan[i] = isNan;
  }

  private grow(): void {
    const size = this.steps.length * 2;
    const grown = <T extends BigInt64Array | Float64Array | Uint8Array>(a: T, make: new (n: number) => T): T => {
      const b = new make(size);
      b.set(a as never);
      return b;
    };
    this.steps = grown(this.steps, BigInt64Array);
    this.ts = grown(this.ts, BigInt64Array);
    this.values = grown(this.values, Float64Array);
    this.nan = grown(this.nan, Uint8Array);
    this.approx = grown(this.approx, Float64Array);
  }

  /** As Postgres orders (step, timestamp, value, is_nan): NaN above every number, false before true. */
  private before(i: number, j: number): number {
    if (this.approx[i] !== this.approx[j] || this.steps[i] !== this.steps[j]) return this.steps[i]! < this.steps[j]! ? -1 : 1;
    if (this.ts[i] !== this.ts[j]) return this.ts[i]! < this.ts[j]! ? -1 : 1;
    const a = this.values[i]!;
    const b = this.values[j]!;
    if (a !== b && !(Number.isNaN(a) && Number.isNaN(b))) return Number.isNaN(a) ? 1 : Number.isNaN(b) ? -1 : a < b ? -1 : 1;
    return this.nan[i]! - this.nan[j]!;
  }

  finish(): KeySeries {
    const n = this.n;
    let sorted = true;
    for (let i = 1; i < n && sorted; i++) {
      // Cheap test on the doubles; exact only where they tie.
      if (this.approx[i - 1]! > this.approx[i]! || (this.approx[i - 1] === this.approx[i] && this.before(i - 1, i) > 0)) sorted = false;
    }
    if (sorted) return { key: this.key, length: n, steps: this.steps.subarray(0, n), timestamps: this.ts.subarray(0, n), values: this.values.subarray(0, n), isNan: this.nan.subarray(0, n) };
    const order = Array.from({ length: n }, (_, i) => i).sort((i, j) => this.before(i, j));
    const out: KeySeries = { key: this.key, length: n, steps: new BigInt64Array(n), timestamps: new BigInt64Array(n), values: new Float64Array(n), isNan: new Uint8Array(n) };
    order.forEach((from, to) => {
      out.steps[to] = this.steps[from]!;
      out.timestamps[to] = this.ts[from]!;
      out.values[to] = this.values[from]!;
      out.isNan[to] = this.nan[from]!;
    });
    return out;
  }
}
