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
    const metrics = await readGroup(pool, group, opts);
    for (const id of group) {
      const run = runs.get(id);
      if (!run) continue;
      run.series = finishRun(metrics.get(id));
      metrics.delete(id);
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
  for (let i = 0; i < runIds.length; i += opts.runsPerRead) {
    const group = runIds.slice(i, i + opts.runsPerRead);
    const metrics = await readGroup(pool, group, opts);
    for (const id of group) {
      const keys = metrics.get(id);
      if (!keys) continue;
      metrics.delete(id);
      await onRun({ runUuid: id, series: finishRun(keys) });
    }
  }
}

/** One run's series, ordered; a run's exact arrays are made only when it is handed out. */
function finishRun(keys: Map<string, SeriesBuilder> | undefined): KeySeries[] {
  if (!keys) return [];
  return [...keys.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)).map((s) => s.finish());
}

/** One COPY: the group's points by run and key, in the order the heap holds them. */
async function readGroup(pool: Pool, group: readonly string[], opts: ReadOptions): Promise<Map<string, Map<string, SeriesBuilder>>> {
  const exclude = opts.excludeKeyLike.map((p) => ` AND key NOT LIKE '${p.replace(/'/g, "''")}'`).join('');
  const runs = new Map<string, Map<string, SeriesBuilder>>();
  let lastRun = '';
  let lastRunMap: Map<string, SeriesBuilder> | undefined;
  let lastKey = '';
  let lastSeries: SeriesBuilder | undefined;
  await copyBinary(
    pool,
    `SELECT run_uuid, key, step, timestamp, value, is_nan FROM metrics WHERE run_uuid = ANY($1)${exclude}`,
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
  return runs;
}

/** Where an int8's low 32-bit word sits in a BigInt64Array slot, in the machine's byte order. */
const LO = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1 ? 0 : 1;
const HI = 1 - LO;

/**
 * Grows typed arrays of int8 halves (high word signed, low word unsigned): 25 bytes a point while
 * a group is read, no BigInt per point. finish() hands out exact BigInt64Arrays, in order.
 */
class SeriesBuilder {
  private n = 0;
  private stepHi = new Int32Array(64);
  private stepLo = new Uint32Array(64);
  private tsHi = new Int32Array(64);
  private tsLo = new Uint32Array(64);
  private values = new Float64Array(64);
  private nan = new Uint8Array(64);

  constructor(readonly key: string) {}

  add(buf: Buffer, stepAt: number, tsAt: number, value: number, isNan: number): void {
    if (this.n === this.values.length) this.grow();
    const i = this.n++;
    this.stepHi[i] = buf.readInt32BE(stepAt);
    this.stepLo[i] = buf.readUInt32BE(stepAt + 4);
    this.tsHi[i] = buf.readInt32BE(tsAt);
    this.tsLo[i] = buf.readUInt32BE(tsAt + 4);
    this.values[i] = value;
    this.nan[i] = isNan;
  }

  private grow(): void {
    const size = this.values.length * 2;
    const grown = <T extends Int32Array | Uint32Array | Float64Array | Uint8Array>(a: T, make: new (n: number) => T): T => {
      const b = new make(size);
      b.set(a as never);
      return b;
    };
    this.stepHi = grown(this.stepHi, Int32Array);
    this.stepLo = grown(this.stepLo, Uint32Array);
    this.tsHi = grown(this.tsHi, Int32Array);
    this.tsLo = grown(this.tsLo, Uint32Array);
    this.values = grown(this.values, Float64Array);
    this.nan = grown(this.nan, Uint8Array);
  }

  /** As Postgres orders (step, timestamp, value, is_nan): int8 by (signed high, unsigned low) word, NaN above every number, false before true. */
  private compare(i: number, j: number): number {
    if (this.stepHi[i] !== this.stepHi[j]) return this.stepHi[i]! < this.stepHi[j]! ? -1 : 1;
    if (this.stepLo[i] !== this.stepLo[j]) return this.stepLo[i]! < this.stepLo[j]! ? -1 : 1;
    if (this.tsHi[i] !== this.tsHi[j]) return this.tsHi[i]! < this.tsHi[j]! ? -1 : 1;
    if (this.tsLo[i] !== this.tsLo[j]) return this.tsLo[i]! < this.tsLo[j]! ? -1 : 1;
    const a = this.values[i]!;
    const b = this.values[j]!;
    if (a !== b && !(Number.isNaN(a) && Number.isNaN(b))) return Number.isNaN(a) ? 1 : Number.isNaN(b) ? -1 : a < b ? -1 : 1;
    return this.nan[i]! - this.nan[j]!;
  }

  finish(): KeySeries {
    const n = this.n;
    let sorted = true;
    for (let i = 1; i < n && sorted; i++) if (this.compare(i - 1, i) > 0) sorted = false;
    const order = sorted ? undefined : Array.from({ length: n }, (_, i) => i).sort((i, j) => this.compare(i, j));
    const out: KeySeries = { key: this.key, length: n, steps: new BigInt64Array(n), timestamps: new BigInt64Array(n), values: new Float64Array(n), isNan: new Uint8Array(n) };
    // int8 slots filled from the two words: exact, no BigInt arithmetic.
    const steps = new Int32Array(out.steps.buffer);
    const ts = new Int32Array(out.timestamps.buffer);
    for (let to = 0; to < n; to++) {
      const from = order ? order[to]! : to;
      steps[2 * to + LO] = this.stepLo[from]! | 0;
      steps[2 * to + HI] = this.stepHi[from]!;
      ts[2 * to + LO] = this.tsLo[from]! | 0;
      ts[2 * to + HI] = this.tsHi[from]!;
      out.values[to] = this.values[from]!;
      out.isNan[to] = this.nan[from]!;
    }
    return out;
  }
}
