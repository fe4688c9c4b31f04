// Builds one run's training_history_json from MLflow rows, fed in the order the backfill reads
// them (by key, step, timestamp, value, is_nan): the last row of a (key, step) wins, which is the
// latest timestamp, then the greatest value — deterministic, so a rerun writes identical JSON.
import { placeKeys } from './categorise';
import { encodeStoredValue, type EncodedValue } from './encoding';

export interface BuildOptions {
  /** 0.4 option B: keep weights/…/hist/… and gradients/…/hist/… series. */
  histograms: boolean;
}

export interface TrainingHistory {
  saved_at: string;
  available: true;
  epochs: number[];
  loss: Record<string, Array<EncodedValue | null>>;
  gradient: Record<string, Array<EncodedValue | null>>;
  weight_stats: Record<string, Record<string, unknown>>;
  gradient_stats: Record<string, Record<string, unknown>>;
  final_metrics: Record<string, EncodedValue>;
  params: Record<string, string>;
  /** Extension: the run's tags (mlflow.* included), kept so nothing MLflow held is lost. */
  tags: Record<string, string>;
  /** Extension: per-epoch keys no other rule places (e.g. recall_at_10). */
  other: Record<string, Array<EncodedValue | null>>;
}

/** Epoch milliseconds (MLflow's end_time/start_time) to the saved_at a rerun reproduces. */
export function savedAtFrom(endTime: number | null | undefined, startTime: number | null | undefined): string {
  const ms = endTime ?? startTime ?? 0;
  return new Date(Number(ms)).toISOString();
}

export class RunHistoryBuilder {
  private readonly points = new Map<string, Map<number, EncodedValue>>();
  private readonly params: Record<string, string> = {};
  private readonly tags: Record<string, string> = {};
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

  /** Rows must come in (key, step, timestamp, value, is_nan) order; a later row for the same step replaces the earlier. */
  metric(key: string, step: number, value: number, isNan: boolean): void {
    if (!this.opts.histograms && isHistogramKey(key)) return;
    let series = this.points.get(key);
    if (!series) this.points.set(key, (series = new Map()));
    series.set(step, encodeStoredValue(value, isNan));
  }

  /** The cache JSON and the number of points it holds. */
  build(): { history: TrainingHistory; points: number } {
    const placements = placeKeys(this.points.keys());
    const epochSet = new Set<number>();
    for (const [key, p] of placements) {
      if (p.kind === 'series' || p.kind === 'tower-series') for (const s of this.points.get(key)!.keys()) epochSet.add(s);
    }
    const epochs = [...epochSet].sort((a, b) => a - b);
    const align = (m: Map<number, EncodedValue>) => epochs.map((s) => (m.has(s) ? m.get(s)! : null));
    const h: TrainingHistory = {
      saved_at: savedAtFrom(this.endTime, this.startTime),
      available: true,
      epochs,
      loss: {},
      gradient: {},
      // MetricsCollector starts with both towers present.
      weight_stats: { query: {}, candidate: {} },
      gradient_stats: { query: {}, candidate: {} },
      final_metrics: {},
      params: this.params,
      tags: this.tags,
      other: {},
    };
    const histograms = new Map<string, { tower: Record<string, unknown>; bins: Map<number, Map<number, EncodedValue>>; edges: Map<number, EncodedValue> }>();
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
          (h[p.section][p.tower] ??= {})[p.stat] = align(m);
          break;
        case 'histogram': {
          const tower = (h[p.section][p.tower] ??= {});
          const id = `${p.section}/${p.tower}`;
          let acc = histograms.get(id);
          if (!acc) histograms.set(id, (acc = { tower, bins: new Map(), edges: new Map() }));
          if (p.part === 'bin') acc.bins.set(p.index, m);
          else acc.edges.set(p.index, lastValue(m));
        }
      }
    }
    for (const { tower, bins, edges } of histograms.values()) {
      const stepSet = new Set<number>();
      for (const m of bins.values()) for (const s of m.keys()) stepSet.add(s);
      const steps = [...stepSet].sort((a, b) => a - b);
      const nBins = bins.size ? Math.max(...bins.keys()) + 1 : 0;
      const nEdges = edges.size ? Math.max(...edges.keys()) + 1 : 0;
      tower.histogram = {
        bin_edges: Array.from({ length: nEdges }, (_, j) => (edges.has(j) ? edges.get(j)! : null)),
        counts: steps.map((s) => Array.from({ length: nBins }, (_, i) => bins.get(i)?.get(s) ?? null)),
        steps,
      };
    }
    return { history: h, points };
  }
}

export function isHistogramKey(key: string): boolean {
  return /^(weights|gradients)\/[^/]+\/hist\//.test(key);
}

/** The value at the greatest step: what MetricsCollector keeps for final_/test_ keys. */
function lastValue(m: Map<number, EncodedValue>): EncodedValue {
  let best = -Infinity;
  for (const s of m.keys()) if (s > best) best = s;
  return m.get(best)!;
}
