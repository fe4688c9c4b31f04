// Proof that a Cloud SQL export holds the MLflow database: a Cloud SQL for PostgreSQL export is a
// plain-format SQL dump (gzip when its name ends in .gz) whose table data sits in
// `COPY table (cols) FROM stdin;` blocks, one line per row, ended by `\.`
// (https://cloud.google.com/sql/docs/postgres/import-export/import-export-sql,
// https://www.postgresql.org/docs/current/sql-copy.html "Text Format"). The dump is streamed, its
// rows counted per table, and the counts compared with the database itself.
import { createInterface } from 'node:readline';
import { pipeline, type Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import type { Databases } from '../../adapters/postgres';
import type { StepContext } from '../../types';
import { activityContext, heartbeat } from '../heartbeat';

/** Rows per table of the public schema, by table name. */
export type RowCounts = Record<string, number>;

/** Counts the rows of every COPY block in a plain SQL dump; a dump cut off inside a block throws. */
export async function countDumpRows(body: Readable, opts: { gzip: boolean; what: string }): Promise<RowCounts> {
  const counts: RowCounts = Object.create(null);
  // pipeline, not pipe: a download that fails (a timeout, a reset) must fail the count, not leave
  // gunzip, and this loop, waiting forever while keepAlive heartbeats.
  const input = opts.gzip ? pipeline(body, createGunzip(), () => {}) : body;
  const lines = createInterface({ input, crlfDelay: Infinity });
  let failed: Error | undefined;
  input.once('error', (err: Error) => {
    failed = err;
    lines.close();
  });
  let table: string | undefined;
  let seen = 0;
  const signal = activityContext()?.cancellationSignal;
  for await (const line of lines) {
    if (++seen % 50_000 === 0) {
      heartbeat({ reading: opts.what, lines: seen });
      if (signal?.aborted) throw signal.reason ?? new Error('cancelled');
    }
    if (table !== undefined) {
      if (line === '\\.') table = undefined;
      else counts[table] = (counts[table] ?? 0) + 1;
      continue;
    }
    if (!line.startsWith('COPY ')) continue;
    const name = copyTarget(line);
    if (name === undefined) continue;
    table = name;
    counts[table] ??= 0;
  }
  if (failed) throw failed;
  if (table !== undefined) throw new Error(`${opts.what} ends inside the data of table ${table}: it is truncated`);
  return counts;
}

/** `COPY public.runs (…) FROM stdin;` → "runs"; tables outside public keep their schema. */
function copyTarget(line: string): string | undefined {
  const m = /^COPY\s+((?:"(?:[^"]|"")+"|[A-Za-z0-9_$]+)(?:\.(?:"(?:[^"]|"")+"|[A-Za-z0-9_$]+))?)\s*(?:\(.*\))?\s*FROM\s+stdin;\s*$/i.exec(line);
  const ref = m?.[1];
  if (ref === undefined) return undefined;
  const parts = ref.match(/"(?:[^"]|"")+"|[^.]+/g)!.map((p) => (p.startsWith('"') ? p.slice(1, -1).replace(/""/g, '"') : p));
  return parts.length === 2 && parts[0] === 'public' ? parts[1] : parts.join('.');
}

/** Exact row counts of every table in the MLflow database's public schema. */
export async function storeRowCounts(databases: Databases, ctx: StepContext): Promise<RowCounts> {
  const pool = databases.pool(ctx.target.databases.mlflow.urlEnv);
  const { rows } = await pool.query<{ name: string }>(`SELECT c.relname AS name FROM pg_catalog.pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p') ORDER BY 1`);
  const counts: RowCounts = Object.create(null);
  for (const { name } of rows) {
    heartbeat({ counting: name });
    const res = await pool.query<{ n: string }>(`SELECT count(*) AS n FROM public."${name.replace(/"/g, '""')}"`);
    counts[name] = Number(res.rows[0]!.n);
  }
  return counts;
}

export interface ExportVerdict {
  ok: boolean;
  detail: string;
  rows: RowCounts;
}

/**
 * Compares a dump's rows with what each table must hold: exactly `expected`, or between two
 * counts taken before and after the export when the database was being written meanwhile.
 */
export function compareRows(dump: RowCounts, low: RowCounts, high: RowCounts = low): ExportVerdict {
  const problems: Array<{ missing: number; text: string }> = [];
  let total = 0;
  const tables = Object.keys(low).sort();
  // Table names are the user's: only an own count is a count ("constructor" must not find Object).
  const count = (c: RowCounts, t: string) => (Object.hasOwn(c, t) ? c[t] : undefined);
  for (const t of tables) {
    const lo = Math.min(low[t]!, count(high, t) ?? low[t]!);
    const hi = Math.max(low[t]!, count(high, t) ?? low[t]!);
    const n = count(dump, t);
    if (n === undefined) {
      problems.push({ missing: hi + 1, text: `table ${t} is missing from it (${fmt(hi)} row(s) in the database)` });
      continue;
    }
    total += n;
    if (n < lo || n > hi) problems.push({ missing: Math.abs(n - lo), text: `table ${t}: ${fmt(n)} row(s) in it, ${lo === hi ? fmt(hi) : `${fmt(lo)}–${fmt(hi)}`} in the database` });
  }
  // The biggest shortfall first: that is the table the operator should look at.
  problems.sort((a, b) => b.missing - a.missing);
  if (problems.length) return { ok: false, detail: problems.slice(0, 6).map((p) => p.text).join('; ') + (problems.length > 6 ? `; and ${problems.length - 6} more table(s)` : ''), rows: dump };
  return { ok: true, detail: `${tables.length} table(s), ${fmt(total)} row(s): every table's rows match the MLflow database`, rows: dump };
}

const fmt = (n: number) => n.toLocaleString('en-US');
