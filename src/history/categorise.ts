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
// A series is an array aligned with `epochs` (null where the key has no point at that epoch), so
// steps survive even when a key skips epochs. docs/history-mapping.md is the operator's copy.

export type Section = 'loss' | 'gradient' | 'weight_stats' | 'gradient_stats' | 'other';

export type Placement =
  | { kind: 'final'; name: string }
  | { kind: 'series'; section: 'loss' | 'gradient' | 'other'; name: string }
  | { kind: 'tower-series'; section: 'weight_stats' | 'gradient_stats'; tower: string; stat: string }
  | { kind: 'histogram'; section: 'weight_stats' | 'gradient_stats'; tower: string; part: 'bin' | 'edge'; index: number };

const HISTOGRAM = /^(weights|gradients)\/([^/]+)\/hist\/(bin|edge)_(\d+)$/;
const TOWER_STAT = /^(weights|gradients)\/([^/]+)\/([^/]+)$/;

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
  if (t && stat !== 'histogram' && tower !== '__proto__' && stat !== '__proto__') {
    return { kind: 'tower-series', section: stats === 'weights' ? 'weight_stats' : 'gradient_stats', tower, stat };
  }
  if (key.includes('loss')) return { kind: 'series', section: 'loss', name: key };
  if (key.includes('weight_norm')) return { kind: 'series', section: 'gradient', name: key.replaceAll('_weight_norm', '') };
  return { kind: 'series', section: 'other', name: key };
}

/** Placements for a run's keys. Two keys that would share one slot (e.g. "a_weight_norm" and
 * "a_weight_norm_weight_norm") keep the first in sorted order; the others go to other[key]. */
export function placeKeys(keys: Iterable<string>): Map<string, Placement> {
  const out = new Map<string, Placement>();
  const taken = new Set<string>();
  for (const key of [...keys].sort()) {
    let p = placeMetric(key);
    // Bins and edges of one tower share the histogram object by design.
    const slot = p.kind === 'histogram' ? undefined : slotOf(p);
    if (slot !== undefined && taken.has(slot)) p = { kind: 'series', section: 'other', name: key };
    if (slot !== undefined) taken.add(slotOf(p));
    out.set(key, p);
  }
  return out;
}

/** Where a placement lands in the document, e.g. "loss/val_loss" or "weight_stats/query/mean". */
export function slotOf(p: Placement): string {
  switch (p.kind) {
    case 'final':
      return `final_metrics/${p.name}`;
    case 'series':
      return `${p.section}/${p.name}`;
    case 'tower-series':
      return `${p.section}/${p.tower}/${p.stat}`;
    case 'histogram':
      return `${p.section}/${p.tower}/histogram`;
  }
}

/** SQL LIKE patterns matching histogram keys (a superset; placeMetric decides). */
export const HISTOGRAM_KEY_LIKE = ['weights/%/hist/%', 'gradients/%/hist/%'];
