// The appendix's training_metrics.json (seed 001), as zod: what the trainer writes (Phase 1) and
// what the backfill caches (Phase 0). Extra fields are allowed so files from newer trainers validate.
import { parse } from 'lossless-json';
import { z } from 'zod';

/** A value: a number, or NaN/±Infinity spelled as strings (cache) — the trainer's file may carry them as numbers after tolerant parsing. */
export const encodedValueSchema = z.union([z.number(), z.literal('NaN'), z.literal('Infinity'), z.literal('-Infinity')]);
/** Series are aligned with `epochs`; null where a key has no point at that epoch. */
export const seriesSchema = z.array(encodedValueSchema.nullable());
/** A step: MLflow's 64-bit integer; past 2^53 only a bigint holds it exactly (parseExactJson). */
const stepSchema = z.union([z.number(), z.bigint()]);

const histogramSchema = z
  .object({
    bin_edges: z.array(encodedValueSchema.nullable()),
    counts: z.array(z.array(encodedValueSchema.nullable())),
    /** Extension: the step of each row of counts. */
    steps: z.array(stepSchema).optional(),
  })
  .passthrough();

const towerSchema = z.record(z.string(), z.union([seriesSchema, histogramSchema]));

export const trainingMetricsSchema = z
  .object({
    saved_at: z.string().min(1),
    available: z.boolean(),
    epochs: z.array(stepSchema),
    loss: z.record(z.string(), seriesSchema),
    gradient: z.record(z.string(), seriesSchema),
    weight_stats: z.record(z.string(), towerSchema),
    gradient_stats: z.record(z.string(), towerSchema),
    final_metrics: z.record(z.string(), encodedValueSchema.nullable()),
    params: z.record(z.string(), z.unknown()),
  })
  .passthrough();

export type TrainingMetrics = z.infer<typeof trainingMetricsSchema>;

/** The fields a cache must match a training_metrics.json on (2.1); metadata like saved_at may differ. */
export const COMPARED_FIELDS = ['epochs', 'loss', 'gradient', 'weight_stats', 'gradient_stats', 'final_metrics', 'params'] as const;

/**
 * JSON with every number exact: an integer past 2^53 (a step) as bigint, every other number as a
 * number, so 1 and 1.0 are one value. Object keys are own properties ("__proto__" included).
 */
export function parseExactJson(text: string): unknown {
  return parse(text, undefined, (s) => {
    if (!/^-?\d+$/.test(s)) return Number(s);
    const n = Number(s);
    return Number.isSafeInteger(n) ? n : BigInt(s);
  });
}

/**
 * Parses training_metrics.json as Python's json.dumps writes it: bare NaN, Infinity and -Infinity
 * tokens (allow_nan=True, the default) become the cache's strings. Strings are left alone.
 */
export function parseTrainingMetricsJson(text: string): unknown {
  let out = '';
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      out += c;
      if (c === '\\') out += text[++i] ?? '';
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') {
      inString = true;
      out += c;
    } else if (text.startsWith('NaN', i)) {
      out += '"NaN"';
      i += 2;
    } else if (text.startsWith('-Infinity', i)) {
      out += '"-Infinity"';
      i += 8;
    } else if (text.startsWith('Infinity', i)) {
      out += '"Infinity"';
      i += 7;
    } else out += c;
  }
  return parseExactJson(out);
}
