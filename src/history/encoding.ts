// JSONB has no NaN or Infinity, and MLflow's Postgres store has neither either: it keeps NaN as
// value 0 with is_nan = true and ±Infinity as ±DBL_MAX. The cache spells all three as strings,
// "NaN", "Infinity", "-Infinity", so no value is lost and the JSON stays valid (docs/history-mapping.md).

/** A value as the cache stores it. */
export type EncodedValue = number | 'NaN' | 'Infinity' | '-Infinity';

/** MLflow's stand-in for ±Infinity (sqlalchemy store: sys.float_info.max). */
export const MLFLOW_INFINITY = 1.7976931348623157e308;

/** A point as MLflow stores it to the value a reader of the cache sees. */
export function encodeStoredValue(value: number, isNan: boolean): EncodedValue {
  if (isNan || Number.isNaN(value)) return 'NaN';
  if (value >= MLFLOW_INFINITY) return 'Infinity';
  if (value <= -MLFLOW_INFINITY) return '-Infinity';
  return value;
}

/** A JS number (trainer side, training_metrics.json) to its cache spelling. */
export function encodeNumber(value: number): EncodedValue {
  return encodeStoredValue(value, false);
}

/** The cache's spelling back to a JS number; undefined when it is not a value at all. */
export function decodeValue(v: unknown): number | undefined {
  if (typeof v === 'number') return v;
  if (v === 'NaN') return Number.NaN;
  if (v === 'Infinity') return Number.POSITIVE_INFINITY;
  if (v === '-Infinity') return Number.NEGATIVE_INFINITY;
  return undefined;
}

/** Equality as the verifier means it: NaN equals NaN, ±Infinity equals itself, numbers exactly. */
export function sameValue(a: number, b: number): boolean {
  return Object.is(a, b) || (Number.isNaN(a) && Number.isNaN(b)) || a === b;
}
