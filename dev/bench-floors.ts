// The floors the backfill is measured against, all on the same table in the same run: reads of
// `metrics` through COPY … TO STDOUT, bytes counted and dropped, each on its own connection with
// the session settings it names. Also the raw export's gzip, per level.
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';

export interface Read {
  label: string;
  ms: number;
  rows: number;
  bytes: number;
  /** The plan's top nodes, as EXPLAIN names them. */
  plan: string;
}

const COLUMNS = 'run_uuid, key, step, timestamp, value, is_nan';

/** The reads that set the floors: the unordered COPY, then every ordered read worth trying. */
export const FLOOR_READS: Array<{ label: string; sql: string; settings?: string[] }> = [
  { label: 'unordered COPY metrics TO STDOUT (physical floor)', sql: 'COPY metrics TO STDOUT' },
  // What the bench called its floor until now: the planner's choice for the default collation.
  { label: 'ordered COPY, default collation (the old bench floor)', sql: `COPY (SELECT ${COLUMNS} FROM metrics ORDER BY run_uuid, key, step, timestamp) TO STDOUT` },
  {
    label: 'ordered COPY, default collation, seq scan + sort',
    sql: `COPY (SELECT ${COLUMNS} FROM metrics ORDER BY run_uuid, key, step, timestamp) TO STDOUT`,
    settings: ['SET enable_indexscan = off', 'SET enable_bitmapscan = off'],
  },
  { label: 'ordered COPY, COLLATE "C"', sql: `COPY (SELECT ${COLUMNS} FROM metrics ORDER BY run_uuid COLLATE "C", key COLLATE "C", step, timestamp) TO STDOUT` },
];

/** Runs one COPY … TO STDOUT, counting and dropping its bytes. */
export async function timeCopy(url: string, label: string, sql: string, settings: string[] = []): Promise<Read> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    for (const s of settings) await client.query(s);
    const inner = /^COPY \((.*)\) TO STDOUT$/s.exec(sql)?.[1] ?? `SELECT * FROM ${/^COPY (\S+)/.exec(sql)![1]}`;
    const { rows: planRows } = await client.query(`EXPLAIN ${inner}`);
    const plan = planRows
      .map((r) => String(r['QUERY PLAN']))
      .filter((l) => !/^(Sort Key|Filter|Index Cond|Recheck|JIT|Functions|Options|Workers Planned)/.test(l.trim()))
      .map((l) => l.replace(/->\s*/, '').replace(/\s+\(cost=.*$/, '').trim())
      .join(' ← ');
    let bytes = 0;
    const t0 = performance.now();
    const stream = client.query(copyTo(sql));
    await pipeline(stream, new Writable({ write: (chunk: Buffer, _e, cb) => ((bytes += chunk.length), cb()) }));
    const ms = performance.now() - t0;
    return { label, ms, rows: Number((stream as unknown as { rowCount?: number }).rowCount ?? 0), bytes, plan };
  } finally {
    await client.end();
  }
}

/** COPY metrics as the raw export writes it (CSV, header), through gzip at `level`, to nowhere. */
export async function timeGzip(url: string, level: number): Promise<{ level: number; ms: number; rows: number; rawBytes: number; gzBytes: number }> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    let rawBytes = 0;
    let gzBytes = 0;
    const t0 = performance.now();
    const stream = client.query(copyTo('COPY public.metrics TO STDOUT WITH (FORMAT csv, HEADER)'));
    stream.on('data', (c: Buffer) => (rawBytes += c.length));
    await pipeline(stream, createGzip({ level }), new Writable({ write: (chunk: Buffer, _e, cb) => ((gzBytes += chunk.length), cb()) }));
    return { level, ms: performance.now() - t0, rows: Number((stream as unknown as { rowCount?: number }).rowCount ?? 0), rawBytes, gzBytes };
  } finally {
    await client.end();
  }
}
