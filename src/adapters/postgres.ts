// One pg.Pool per database, keyed by the env var that names it: the connection string is read
// on the worker and never leaves it.
import pg from 'pg';
import { databaseUrl } from '../config/environment';

export interface Databases {
  /**
   * The pool for the database whose URL the env var `urlEnv` holds; with `database`, for that
   * database on the same server as the same role (self-hosted: restoring into a recreated database).
   */
  pool(urlEnv: string, database?: string): pg.Pool;
  close(): Promise<void>;
}

/** `poolSize`: connections per database (the worker's DATABASE_POOL_SIZE); 4 when unset. */
export function createDatabases(env: NodeJS.ProcessEnv = process.env, opts: { poolSize?: number } = {}): Databases {
  const pools = new Map<string, pg.Pool>();
  return {
    pool(urlEnv, database) {
      const key = database === undefined ? urlEnv : `${urlEnv}\u0000${database}`;
      let pool = pools.get(key);
      if (!pool) {
        const url = databaseUrl(urlEnv, env);
        // A short connect timeout: an unreachable host surfaces in preflight, not after minutes.
        pool = new pg.Pool({ connectionString: database === undefined ? url : withDatabase(url, database), max: opts.poolSize ?? 4, connectionTimeoutMillis: 10_000, application_name: 'mlflow-decommission' });
        // An idle client dropped by the server must not crash the worker; the next query reconnects.
        pool.on('error', () => {});
        pools.set(key, pool);
      }
      return pool;
    },
    async close() {
      await Promise.all([...pools.values()].map((p) => p.end()));
      pools.clear();
    },
  };
}

/** The same connection string for another database (a postgres:// URL's path is the database name). */
function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${encodeURIComponent(database)}`;
  return u.toString();
}
