// Builds one run's training_history_json from MLflow rows, fed in the order the backfill reads
// them (by key, step, timestamp, value, is_nan): the last row of a (key, step) wins, which is the
// latest timestamp, then the greatest value — deterministic, so a rerun writes identical JSON.
// Names are data: every map built from metric, param, tag, tower or stat names has no prototype,
// so "__proto__" or "constructor" are ordinary keys. Steps are 64-bit (MLflow's BIGINT): they come
// as the int8 text Postgres writes, never pass through a double, and are bigint in the document.
import { isHistogramKey, placeKeys } from './categorise';
import { encodeStoredValue, type EncodedValue } from './encoding';

export interface BuildOptions {
  /** 0.4 option B: keep weights/{tower}/hist/{bin|edge}_{i} series. */
  histograms: boolean;
}

/** An object with no prototype, for user-chosen names. */
export type Names<T> = Record<string, T>;
export function names<T>(): Names<T> {
  return Object.create(null) as Names<T>;
}

export interface Histogram {
  bin_edges: Array<EncodedValue | null>;
  counts: Array<Array<EncodedValue | null>>;
  steps: bigint[];
}

export interface TrainingHistory {
  saved_at: string;
  available: true;
  epochs: bigint[];
  loss: Names<Array<EncodedValue | null>>;
  gradient: Names<Array<EncodedValue | null>>;
  weight_stats: Names<Names<Array<EncodedValue | null> | Histogram>>;
  gradient_stats: Names<Names<Array<EncodedValue | null> | Histogram>>;
  final_metrics: Names<EncodedValue>;
  params: Names<string>;
  /** Extension: the run's tags (mlflow.* included), kept so nothing MLflow held is lost. */
  tags: Names<string>;
  /** Extension: per-epoch keys no other rule places (e.g. recall_at_10). */
  other: Names<Array<EncodedValue | null>>;
}

/** Epoch milliseconds (MLflow's end_time/start_time) to the saved_at a rerun reproduces. */
export function savedAtFrom(endTime: number | null | undefined, startTime: number | null | undefined): string {
  const ms = endTime ?? startTime ?? 0;
  return new Date(Number(ms)).toISOString();
}

/**
 * A step as a map key: a safe integer as a number (the fast common case), a step past 2^53 as its
 * int8 text, so no two steps share a key. `step` is the canonical decimal Postgres writes.
 */
type StepKey = number | string;
function stepKey(step: string): StepKey {
  const n = Number(step);
  return Number.isSafeInteger(n) ? n : step;
}

/** Step keys, sorted as the integers they are, and as bigint for the document. */
function sortedSteps(keys: Iterable<StepKey>): { steps: bigint[]; keys: StepKey[] } {
  const steps = [...keys].map((k) => BigInt(k)).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return { steps, keys: steps.map((s) => stepKey(String(s))) };
}

export class RunHistoryBuilder {
  /** key → step → value. */
  private readonly points = new Map<string, Map<StepKey, EncodedValue>>();
  private readonly params = names<string>();
  private readonly tags = names<string>();
  private endTime: number | null = null;
  private startTime: number | null = null;

  constructor(
    readonly runUuid: string,
    private readonly opts: BuildOptions,
  ) {}

  setTimes(endTime: number | null, startTime: number | null): void {
    this.endTime = endTime;
    this.startTime = startTime;
  }

  param(key: string, value: string): void {
    this.params[key] = value;
  }

  tag(key: string, value: string): void {
    this.tags[key] = value;
  }

  /**
   * Rows must come in (key, step, timestamp, value, is_nan) order; a later row for the same step
   * replaces the earlier. `step` is the int8 as Postgres writes it ("-1", "9223372036854775807").
   */
  metric(key: string, step: string, value: number, isNan: boolean): void {
    if (!this.opts.histograms && isHistogramKey(key)) return;
    let series = this.points.get(key);
    if (!series) this.points.set(key, (series = new Map()));
    series.set(stepKey(step), encodeStoredValue(value, isNan));
  }

  /** The cache document and the number of points it holds. */
  build(): { history: TrainingHistory; points: number } {
    const placements = placeKeys(this.points.keys());
    const epochSet = new Set<StepKey>();
    for (const [key, p] of placements) {
      if (p.kind === 'series' || p.kind === 'tower-series') for (const s of this.points.get(key)!.keys()) epochSet.add(s);
    }
    const { steps: epochs, keys: epochKeys } = sortedSteps(epochSet);
    const align = (m: Map<StepKey, EncodedValue>) => epochKeys.map((s) => m.get(s) ?? null);
    // MetricsCollector starts with both towers present.
    const towers = () => Object.assign(names<Names<Array<EncodedValue | null> | Histogram>>(), { query: names(), candidate: names() });
    const h: TrainingHistory = {
      saved_at: savedAtFrom(this.endTime, this.startTime),
      available: true,
      epochs,
      loss: names(),
      gradient: names(),
      weight_stats: towers(),
      gradient_stats: towers(),
      final_metrics: names(),
      params: this.params,
      tags: this.tags,
      other: names(),
    };
    const histograms = new Map<string, { tower: Names<unknown>; bins: Map<number, Map<StepKey, EncodedValue>>; edges: Map<number, EncodedValue> }>();
    let points = 0;
    for (const [key, p] of placements) {
      const m = this.points.get(key)!;
      points += m.size;
      switch (p.kind) {
        case 'final':
          h.final_metrics[p.name] = lastValue(m);
          break;
        case 'series':
          h[p.section][p.name] = align(m);
          break;
        case 'tower-series':
          (h[p.section][p.tower] ??= names())[p.stat] = align(m);
          break;
        case 'histogram': {
          const tower = (h[p.section][p.tower] ??= names());
          const id = JSON.stringify([p.section, p.tower]);
          let acc = histograms.get(id);
          if (!acc) histograms.set(id, (acc = { tower, bins: new Map(), edges: new Map() }));
          if (p.part === 'bin') acc.bins.set(p.index, m);
          else acc.edges.set(p.index, lastValue(m));
        }
      }
    }
    for (const { tower, bins, edges } of histograms.values()) {
      const stepSet = new Set<StepKey>();
      for (const m of bins.values()) for (const s of m.keys()) stepSet.add(s);
      const { steps, keys } = sortedSteps(stepSet);
      const nBins = bins.size ? Math.max(...bins.keys()) + 1 : 0;
      const nEdges = edges.size ? Math.max(...edges.keys()) + 1 : 0;
      const histogram: Histogram = {
        bin_edges: Array.from({ length: nEdges }, (_, j) => edges.get(j) ?? null),
        counts: keys.map((s) => Array.from({ length: nBins }, (_, i) => bins.get(i)?.get(s) ?? null)),
        steps,
      };
      tower.histogram = histogram;
    }
    return { history: h, points };
  }
}

/** The value at the greatest step: what MetricsCollector keeps for final_/test_ keys. */
function lastValue(m: Map<StepKey, EncodedValue>): EncodedValue {
  let best: bigint | undefined;
  let value: EncodedValue = 'NaN';
  for (const [s, v] of m) {
    const step = BigInt(s);
    if (best === undefined || step > best) [best, value] = [step, v];
  }
  return value;
}
