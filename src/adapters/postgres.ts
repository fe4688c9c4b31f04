// One pg.Pool per database, keyed by the env var that names it: the connection string is read
// on the worker and never leaves it.
import pg from 'pg';
import { databaseUrl } from '../config/environment';

export interface Databases {
  /** The pool for the database whose URL the env var `urlEnv` holds. */
  pool(urlEnv: string): pg.Pool;
  close(): Promise<void>;
}

export function createDatabases(env: NodeJS.ProcessEnv = process.env): Databases {
  const pools = new Map<string, pg.Pool>();
  return {
    pool(urlEnv) {
      let pool = pools.get(urlEnv);
      if (!pool) {
        // A short connect timeout: an unreachable host surfaces in preflight, not after minutes.
        pool = new pg.Pool({ connectionString: databaseUrl(urlEnv, env), max: 4, connectionTimeoutMillis: 10_000, application_name: 'mlflow-decommission' });
        // An idle client dropped by the server must not crash the worker; the next query reconnects.
        pool.on('error', () => {});
        pools.set(urlEnv, pool);
      }
      return pool;
    },
    async close() {
      await Promise.all([...pools.values()].map((p) => p.end()));
      pools.clear();
    },
  };
}
