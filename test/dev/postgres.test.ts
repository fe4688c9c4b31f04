import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { describe, expect, inject, it } from 'vitest';
import { createDatabase, startPostgres } from '../../dev/postgres';

describe('dev postgres', () => {
  it('serves a real server on which tests create their own databases', async () => {
    const url = await createDatabase(inject('pgAdminUrl'), 'pg_smoke');
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    const { rows } = await client.query('select current_database() as db, version() as v');
    await client.end();
    expect(rows[0].db).toBe('pg_smoke');
    expect(rows[0].v).toMatch(/PostgreSQL/);
  });

  it("stop() removes the embedded server's data folder even when Ctrl-C reached postgres first (the demo's process group)", { timeout: 120_000 }, async () => {
    const env = { DATABASE_URL: process.env.DATABASE_URL, TMPDIR: process.env.TMPDIR };
    const tmp = mkdtempSync(join(tmpdir(), 'pg-stop-'));
    chmodSync(tmp, 0o777); // initdb runs as user postgres and reads its password file from here
    delete process.env.DATABASE_URL;
    process.env.TMPDIR = tmp; // startPostgres makes its folder under os.tmpdir()
    try {
      const server = await startPostgres();
      const [folder] = readdirSync(tmp).filter((f) => f.startsWith('mlflow-decommission-pg-'));
      expect(folder).toBeDefined();
      // Ctrl-C in a terminal signals the whole group: postgres gets its SIGINT too and shuts down on its own.
      const postmaster = Number(readFileSync(join(tmp, folder!, 'data', 'postmaster.pid'), 'utf8').split('\n')[0]);
      process.kill(postmaster, 'SIGINT');
      await expect.poll(() => alive(postmaster), { timeout: 30_000 }).toBe(false);
      await new Promise((r) => setImmediate(r)); // the child's exit event is delivered
      await server.stop();
      expect(readdirSync(tmp)).toEqual([]);
    } finally {
      Object.assign(process.env, env);
      if (env.DATABASE_URL === undefined) delete process.env.DATABASE_URL;
      if (env.TMPDIR === undefined) delete process.env.TMPDIR;
      rmSync(tmp, { recursive: true, force: true });
    }
  });
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
