// A sandbox per test file and the real client libraries pointed at it; an MLflow database on the
// shared test server for the Cloud SQL instance the sandbox models.
import pg from 'pg';
import { afterAll, beforeAll, inject } from 'vitest';
import { createDatabase } from '../../dev/postgres';
import { createMlflowSchema, seedMlflowRuns } from '../../dev/mlflow-store';
import { createDatabases, type Databases } from '../../src/adapters/postgres';
import { createGcpClients, type GcpClients } from '../../src/adapters/gcp/clients';
import { createGcsObjectStore } from '../../src/adapters/gcp/gcs-object-store';
import type { ObjectStore } from '../../src/ports';
import { startSandbox, type Sandbox } from '../../dev/sandbox';

export interface CloudFixture {
  sandbox: Sandbox;
  gcp: GcpClients;
  objects: ObjectStore;
}

/** Starts a fresh sandbox (fast operations) before the file's tests, stops it after. */
export function useSandbox(project = 'demo-project', opts: { pendingDeleteMs?: number } = {}): CloudFixture {
  const fixture = {} as CloudFixture;
  beforeAll(async () => {
    fixture.sandbox = await startSandbox({ operationDelayMs: 50, ...opts });
    fixture.gcp = createGcpClients({ apiEndpoint: fixture.sandbox.url, project });
    fixture.objects = createGcsObjectStore(fixture.gcp.storage);
  });
  afterAll(async () => {
    await fixture.gcp?.close();
    await fixture.sandbox?.stop();
  });
  return fixture;
}

export interface MlflowDatabase {
  url: string;
  /** The worker's view of it, under the env var the demo target names (MLFLOW_DATABASE_URL). */
  databases: Databases;
  /** A fresh seeded store: every table dropped and seeded again. */
  reset(): Promise<void>;
  /** Rows per table of the public schema, counted independently of the code under test. */
  counts(): Promise<Record<string, number>>;
}

/** An MLflow store with `runs` seeded runs, in a database of its own on the shared test server. */
export function useMlflowDatabase(name: string, runs = 6): MlflowDatabase {
  const db = {} as MlflowDatabase;
  let pool: pg.Pool;
  beforeAll(async () => {
    db.url = await createDatabase(inject('pgAdminUrl'), `${name}_${process.pid}`);
    db.databases = createDatabases({ MLFLOW_DATABASE_URL: db.url });
    pool = new pg.Pool({ connectionString: db.url, max: 2 });
    await db.reset();
  });
  afterAll(async () => {
    await db.databases?.close();
    await pool?.end();
  });
  db.reset = async () => {
    await pool.query('DROP SCHEMA public CASCADE; CREATE SCHEMA public;');
    await createMlflowSchema(pool);
    await seedMlflowRuns(pool, { runs, epochs: 4, seed: 11 });
  };
  db.counts = async () => {
    const { rows } = await pool.query<{ t: string }>(`SELECT tablename AS t FROM pg_tables WHERE schemaname = 'public' ORDER BY 1`);
    const out: Record<string, number> = {};
    for (const { t } of rows) out[t] = Number((await pool.query(`SELECT count(*) AS n FROM "${t}"`)).rows[0].n);
    return out;
  };
  return db;
}
