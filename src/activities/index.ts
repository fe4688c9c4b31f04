// Every activity the worker registers, built over injected clients (no globals). The workflow
// proxies ReturnType<typeof createActivities>, so names and types have one declaration.
import type { Databases } from '../adapters/postgres';
import type { GcpClients } from '../adapters/gcp/clients';
import type { ConfigFile } from '../config';
import type { ObjectStore } from '../ports';
import { createCloudActivities } from './cloud';
import { createDataActivities } from './data';
import { createMigrationActivities } from './migration';

export interface ActivityDeps {
  config: ConfigFile;
  databases: Databases;
  gcp: GcpClients;
  objects: ObjectStore;
}

export function createActivities(deps: ActivityDeps) {
  const data = createDataActivities({ databases: deps.databases, objects: deps.objects });
  const cloud = createCloudActivities({ gcp: deps.gcp, objects: deps.objects, databases: deps.databases });
  const migration = createMigrationActivities({ config: deps.config, objects: deps.objects, preflightChecks: [data.preflight, cloud.preflight] });
  return { ...migration, ...data.activities, ...cloud.activities };
}
