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
  /** An SQL condition on `key` for the keys not to read (the histogram keys when they are not kept). */
  excludeKeys?: string;
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
      run.series = metrics.run(id);
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
      if (!metrics.runs.has(id)) continue;
      await onRun({ runUuid: id, series: metrics.run(id) });
    }
  }
}

/** One COPY: the group's points, columnar (six arrays for the whole group, not six per key). */
async function readGroup(pool: Pool, group: readonly string[], opts: ReadOptions): Promise<GroupPoints> {
  const exclude = opts.excludeKeys ? ` AND NOT ${opts.excludeKeys}` : '';
  const points = new GroupPoints();
  let lastRun = '';
  let lastRunKeys: Map<string, number> | undefined;
  let lastKey = '';
  let lastSeries = -1;
  await copyBinary(
    pool,
    `SELECT run_uuid, key, step, timestamp, value, is_nan FROM metrics WHERE run_uuid = ANY($1)${exclude}`,
    group,
    (buf, start, len) => {
      const run = buf.toString('utf8', start[0]!, start[0]! + len[0]!);
      if (run !== lastRun || !lastRunKeys) {
        lastRun = run;
        lastRunKeys = points.runs.get(run);
        if (!lastRunKeys) points.runs.set(run, (lastRunKeys = new Map()));
        lastSeries = -1;
      }
      const key = buf.toString('utf8', start[1]!, start[1]! + len[1]!);
      if (key !== lastKey || lastSeries < 0) {
        lastKey = key;
        lastSeries = lastRunKeys.get(key) ?? -1;
        if (lastSeries < 0) lastRunKeys.set(key, (lastSeries = points.series++));
      }
      points.add(lastSeries, buf, start[2]!, start[3]!, buf.readDoubleBE(start[4]!), buf[start[5]!]!);
    },
    opts.onChunk,
  );
  points.index();
  return points;
}

/** Where an int8's low 32-bit word sits in a BigInt64Array slot, in the machine's byte order. */
const LO = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1 ? 0 : 1;
const HI = 1 - LO;

/**
 * A group's points in arrival order: series id, int8 halves (high word signed, low unsigned),
 * float8, is_nan; 29 bytes a point, no BigInt and no object per point.
 */
class GroupPoints {
  /** run → key → series id */
  readonly runs = new Map<string, Map<string, number>>();
  series = 0;
  private n = 0;
  private sid = new Int32Array(1 << 14);
  private stepHi = new Int32Array(1 << 14);
  private stepLo = new Uint32Array(1 << 14);
  private tsHi = new Int32Array(1 << 14);
  private tsLo = new Uint32Array(1 << 14);
  private values = new Float64Array(1 << 14);
  private nan = new Uint8Array(1 << 14);
  /** After index(): series s's points are order[first[s] … first[s + 1]). */
  private first = new Int32Array(1);
  private order = new Int32Array(0);

  add(series: number, buf: Buffer, stepAt: number, tsAt: number, value: number, isNan: number): void {
    if (this.n === this.sid.length) this.grow();
    const i = this.n++;
    this.sid[i] = series;
    this.stepHi[i] = buf.readInt32BE(stepAt);
    this.stepLo[i] = buf.readUInt32BE(stepAt + 4);
    this.tsHi[i] = buf.readInt32BE(tsAt);
    this.tsLo[i] = buf.readUInt32BE(tsAt + 4);
    this.values[i] = value;
    this.nan[i] = isNan;
  }

  private grow(): void {
    const size = this.sid.length * 2;
    const grown = <T extends Int32Array | Uint32Array | Float64Array | Uint8Array>(a: T, make: new (n: number) => T): T => {
      const b = new make(size);
      b.set(a as never);
      return b;
    };
    this.sid = grown(this.sid, Int32Array);
    this.stepHi = grown(this.stepHi, Int32Array);
    this.stepLo = grown(this.stepLo, Uint32Array);
    this.tsHi = grown(this.tsHi, Int32Array);
    this.tsLo = grown(this.tsLo, Uint32Array);
    this.values = grown(this.values, Float64Array);
    this.nan = grown(this.nan, Uint8Array);
  }

  /** Counting sort by series, stable: each series keeps the heap's order until run() orders it. */
  index(): void {
    const first = new Int32Array(this.series + 1);
    for (let i = 0; i < this.n; i++) first[this.sid[i]! + 1]!++;
    for (let s = 0; s < this.series; s++) first[s + 1]! += first[s]!;
    const next = first.slice(0, this.series);
    const order = new Int32Array(this.n);
    for (let i = 0; i < this.n; i++) order[next[this.sid[i]!]!++] = i;
    this.first = first;
    this.order = order;
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

  /** A run's series by key, each in order, as views of four arrays made for the run. */
  run(runUuid: string): KeySeries[] {
    const keys = this.runs.get(runUuid);
    if (!keys) return [];
    this.runs.delete(runUuid);
    const ids = [...keys].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    let total = 0;
    for (const [, s] of ids) total += this.first[s + 1]! - this.first[s]!;
    const steps = new BigInt64Array(total);
    const timestamps = new BigInt64Array(total);
    const values = new Float64Array(total);
    const isNan = new Uint8Array(total);
    // int8 slots filled from the two words: exact, no BigInt arithmetic.
    const steps32 = new Int32Array(steps.buffer);
    const ts32 = new Int32Array(timestamps.buffer);
    const out: KeySeries[] = [];
    let at = 0;
    for (const [key, s] of ids) {
      let points = this.order.subarray(this.first[s]!, this.first[s + 1]!);
      for (let k = 1; k < points.length; k++) {
        if (this.compare(points[k - 1]!, points[k]!) > 0) {
          points = points.slice().sort((i, j) => this.compare(i, j));
          break;
        }
      }
      for (let k = 0; k < points.length; k++) {
        const from = points[k]!;
        const to = at + k;
        steps32[2 * to + LO] = this.stepLo[from]! | 0;
        steps32[2 * to + HI] = this.stepHi[from]!;
        ts32[2 * to + LO] = this.tsLo[from]! | 0;
        ts32[2 * to + HI] = this.tsHi[from]!;
        values[to] = this.values[from]!;
        isNan[to] = this.nan[from]!;
      }
      const end = at + points.length;
      out.push({ key, length: points.length, steps: steps.subarray(at, end), timestamps: timestamps.subarray(at, end), values: values.subarray(at, end), isNan: isNan.subarray(at, end) });
      at = end;
    }
    return out;
  }
}
