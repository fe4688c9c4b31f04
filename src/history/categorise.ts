// Where an MLflow metric key lands in training_history_json. The rules follow the seed's
// MetricsCollector.log_metric (final_/test_ prefix, then "loss", then "weight_norm") and extend it
// for the keys the weight/gradient stats callbacks log. Checked in this order; the first match wins:
//
//   key                                        lands in                                   kind
//   final_* | test_*                           final_metrics[key]          (last value)   scalar
//   weights/{tower}/hist/bin_{i}               weight_stats[tower].histogram.counts[*][i]  histogram (0.4)
//   weights/{tower}/hist/edge_{j}              weight_stats[tower].histogram.bin_edges[j]  histogram (0.4, last value)
//   gradients/{tower}/hist/bin_{i}|edge_{j}    gradient_stats[tower].histogram…            histogram (0.4)
//   weights/{tower}/{stat}                     weight_stats[tower][stat]                   series
//   gradients/{tower}/{stat}                   gradient_stats[tower][stat]                 series
//   *loss*                                     loss[key]                                   series
//   *weight_norm*                              gradient[key without "_weight_norm"]        series
//   anything else                              other[key]                                  series
//
// {tower} and {stat} are one path segment (no "/"); {i} and {j} are decimals without leading
// zeros. So weights/query/hist/foo and weights/a/b/hist/bin_0 are not histograms: they go to
// other. Names are data: tower and stat names such as __proto__ are ordinary names here.
// A series is an array aligned with `epochs` (null where the key has no point at that epoch), so
// steps survive even when a key skips epochs. docs/history-mapping.md is the operator's copy.

export type Section = 'loss' | 'gradient' | 'weight_stats' | 'gradient_stats' | 'other';

export type Placement =
  | { kind: 'final'; name: string }
  | { kind: 'series'; section: 'loss' | 'gradient' | 'other'; name: string }
  | { kind: 'tower-series'; section: 'weight_stats' | 'gradient_stats'; tower: string; stat: string }
  | { kind: 'histogram'; section: 'weight_stats' | 'gradient_stats'; tower: string; part: 'bin' | 'edge'; index: number };

const HISTOGRAM = /^(weights|gradients)\/([^/]+)\/hist\/(bin|edge)_(0|[1-9][0-9]*)$/;
const TOWER_STAT = /^(weights|gradients)\/([^/]+)\/([^/]+)$/;

/** SQL for "key is a histogram key", the same pattern as HISTOGRAM: the backfill's pre-filter in
 * option A. The LIKEs come first so the regular expression runs only on keys under hist/. */
export const HISTOGRAM_KEY_SQL = `((key LIKE 'weights/%/hist/%' OR key LIKE 'gradients/%/hist/%') AND key ~ '^(weights|gradients)/[^/]+/hist/(bin|edge)_(0|[1-9][0-9]*)$')`;

export function isHistogramKey(key: string): boolean {
  return HISTOGRAM.test(key);
}

export function placeMetric(key: string): Placement {
  if (key.startsWith('final_') || key.startsWith('test_')) return { kind: 'final', name: key };
  const h = HISTOGRAM.exec(key);
  if (h) {
    const [, stats, tower = '', part, index] = h;
    return { kind: 'histogram', section: stats === 'weights' ? 'weight_stats' : 'gradient_stats', tower, part: part === 'edge' ? 'edge' : 'bin', index: Number(index) };
  }
  const t = TOWER_STAT.exec(key);
  const [, stats, tower = '', stat = ''] = t ?? [];
  // "histogram" is the histogram object's own name inside a tower, so a stat of that name goes to other.
  if (t && stat !== 'histogram') {
    return { kind: 'tower-series', section: stats === 'weights' ? 'weight_stats' : 'gradient_stats', tower, stat };
  }
  if (key.includes('loss')) return { kind: 'series', section: 'loss', name: key };
  if (key.includes('weight_norm')) return { kind: 'series', section: 'gradient', name: key.replaceAll('_weight_norm', '') };
  return { kind: 'series', section: 'other', name: key };
}

/** Code-point order (UTF-8 bytes, Postgres COLLATE "C"), not JS's UTF-16 order: the doc's "sorted order". */
export function byCodePoint(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** Placements for a run's keys. Two keys that would share one slot (e.g. "a_weight_norm" and
 * "a_weight_norm_weight_norm") keep the first in code-point order; the others go to other[key]. */
export function placeKeys(keys: Iterable<string>): Map<string, Placement> {
  const out = new Map<string, Placement>();
  const taken = new Set<string>();
  for (const key of [...keys].sort(byCodePoint)) {
    let p = placeMetric(key);
    // Bins and edges of one tower share the histogram object by design.
    const slot = p.kind === 'histogram' ? undefined : slotOf(p);
    if (slot !== undefined && taken.has(slot)) p = { kind: 'series', section: 'other', name: key };
    if (slot !== undefined) taken.add(slotOf(p));
    out.set(key, p);
  }
  return out;
}

/** Where a placement lands in the document, as a path (names are kept whole, so "/" in a name is no separator). */
function slotOf(p: Placement): string {
  switch (p.kind) {
    case 'final':
      return JSON.stringify(['final_metrics', p.name]);
    case 'series':
      return JSON.stringify([p.section, p.name]);
    case 'tower-series':
      return JSON.stringify([p.section, p.tower, p.stat]);
    case 'histogram':
      return JSON.stringify([p.section, p.tower, 'histogram']);
  }
}
