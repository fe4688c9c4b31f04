// The clients the worker's activities share, built once from the worker's environment.
import { createGcpClients } from './adapters/gcp/clients';
import { createGcsObjectStore } from './adapters/gcp/gcs-object-store';
import { createLocalObjectStore } from './adapters/local-object-store';
import { objectStoreByScheme } from './adapters/object-stores';
import { createDatabases } from './adapters/postgres';
import type { ConfigFile } from './config/schema';
import type { WorkerEnv } from './config/environment';
import { isCloud } from './shapes';

export function createDependencies(env: WorkerEnv, config: ConfigFile) {
  // Storage and BigQuery want a default project; every call names its target's project anyway.
  const project = Object.values(config.targets).find(isCloud)?.gcp.project;
  const gcp = createGcpClients({ apiEndpoint: env.GCP_API_ENDPOINT, project });
  const databases = createDatabases(undefined, { poolSize: env.DATABASE_POOL_SIZE ?? env.WORKER_MAX_CONCURRENT_ACTIVITIES });
  return {
    gcp,
    databases,
    objects: objectStoreByScheme({ gs: createGcsObjectStore(gcp.storage), file: createLocalObjectStore() }),
    async close() {
      await Promise.all([gcp.close(), databases.close()]);
    },
  };
}
