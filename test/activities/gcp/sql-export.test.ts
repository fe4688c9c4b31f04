// Counting a plain-format dump's rows, on text written the way pg_dump writes it (independent of
// the sandbox's own dump writer, which the Cloud SQL tests use).
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { compareRows, countDumpRows } from '../../../src/activities/gcp/sql-export';

const PG_DUMP = [
  '--',
  '-- PostgreSQL database dump',
  '--',
  "SET client_encoding = 'UTF8';",
  'CREATE TABLE public.metrics (',
  '    key character varying(250) NOT NULL,',
  '    value double precision NOT NULL',
  ');',
  'COPY public.metrics (key, value) FROM stdin;',
  'loss\t0.5',
  // A value with an embedded newline and tab is escaped on one line (COPY text format).
  'note\\nwith newline\\tand tab\t1',
  '\\.',
  'COPY public."Odd ""Name""" (id) FROM stdin;',
  '1',
  '\\.',
  'COPY audit.log (id) FROM stdin;',
  '7',
  '\\.',
  'COPY public.empty (id) FROM stdin;',
  '\\.',
  '-- COPY public.metrics (key) FROM stdin; in a comment is not a block',
  '',
].join('\n');

const stream = (text: string, gzip = true) => Readable.from([gzip ? gzipSync(text) : Buffer.from(text)]);

describe('countDumpRows', () => {
  it('fails when the download fails mid-way, gzip or not, instead of waiting forever', async () => {
    for (const gzip of [true, false]) {
      const bytes = gzip ? gzipSync(PG_DUMP) : Buffer.from(PG_DUMP);
      const body = new Readable({ read() {} });
      body.push(bytes.subarray(0, 20));
      setImmediate(() => body.destroy(new Error('socket hang up')));
      await expect(countDumpRows(body, { gzip, what: 'dump' })).rejects.toThrow('socket hang up');
    }
  });

  it('counts the rows of each COPY block, by table, schema-qualified outside public', async () => {
    expect({ ...(await countDumpRows(stream(PG_DUMP), { gzip: true, what: 'dump' })) }).toEqual({ metrics: 2, 'Odd "Name"': 1, 'audit.log': 1, empty: 0 });
    expect({ ...(await countDumpRows(stream(PG_DUMP, false), { gzip: false, what: 'dump' })) }).toEqual({ metrics: 2, 'Odd "Name"': 1, 'audit.log': 1, empty: 0 });
  });

  it('a dump cut off inside a COPY block is not a dump', async () => {
    await expect(countDumpRows(stream(PG_DUMP.slice(0, PG_DUMP.indexOf('\\.'))), { gzip: true, what: 'gs://b/x.sql.gz' })).rejects.toThrow(/gs:\/\/b\/x\.sql\.gz ends inside the data of table metrics: it is truncated/);
  });

  it('compares with the database: exact, or within counts taken before and after the export', () => {
    expect(compareRows({ a: 2, b: 0 }, { a: 2, b: 0 }).ok).toBe(true);
    expect(compareRows({ a: 3 }, { a: 2 }, { a: 5 }).ok).toBe(true);
    const bad = compareRows({ a: 1 }, { a: 159_553, b: 4 });
    expect(bad.ok).toBe(false);
    expect(bad.detail).toBe('table a: 1 row(s) in it, 159,553 in the database; table b is missing from it (4 row(s) in the database)');
  });

  it('tables named "__proto__", "constructor" and "toString" are counted and compared by name', async () => {
    const dump = ['COPY public.__proto__ (id) FROM stdin;', '1', '2', '\\.', 'COPY public."toString" (id) FROM stdin;', '3', '\\.', ''].join('\n');
    const counts = await countDumpRows(stream(dump), { gzip: true, what: 'dump' });
    expect(Object.entries(counts)).toEqual([
      ['__proto__', 2],
      ['toString', 1],
    ]);
    const database = Object.fromEntries([['__proto__', 2], ['toString', 1], ['constructor', 4]]);
    const verdict = compareRows(counts, database);
    expect(verdict.ok).toBe(false);
    expect(verdict.detail).toBe('table constructor is missing from it (4 row(s) in the database)');
    // The same with plain objects, as a caller might pass: an inherited member is not a count.
    expect(compareRows({}, { constructor: 4 }).detail).toBe('table constructor is missing from it (4 row(s) in the database)');
    expect(compareRows({ toString: 1 }, { toString: 1 }, {}).ok).toBe(true);
  });
});
