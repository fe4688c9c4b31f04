// The clients the worker's activities share, built once from the worker's environment.
import { createGcpClients } from './adapters/gcp/clients';
import { createGcsObjectStore } from './adapters/gcp/gcs-object-store';
import { createDatabases } from './adapters/postgres';
import type { ConfigFile } from './config/schema';
import type { WorkerEnv } from './config/environment';

export function createDependencies(env: WorkerEnv, config: ConfigFile) {
  // Storage and BigQuery want a default project; every call names its target's project anyway.
  const project = Object.values(config.targets)[0]?.gcp.project;
  const gcp = createGcpClients({ apiEndpoint: env.GCP_API_ENDPOINT, project });
  const databases = createDatabases();
  return {
    gcp,
    databases,
    objects: createGcsObjectStore(gcp.storage),
    async close() {
      await Promise.all([gcp.close(), databases.close()]);
    },
  };
}
