// Every activity the worker registers, built over injected clients (no globals). The workflow
// proxies ReturnType<typeof createActivities>, so names and types have one declaration.
import type { Databases } from '../adapters/postgres';
import type { GcpClients } from '../adapters/gcp/clients';
import type { ConfigFile, Target } from '../config/schema';
import type { ObjectStore } from '../ports';
import { createDatabaseActivities } from './database';
import { createDataActivities } from './data';
import { withDeletionPreview } from './deletion-preview';
import { createCloudActivities } from './gcp';
import { keepingAlive } from './heartbeat';
import { createLifecycleActivities } from './lifecycle';
import { isCloud } from '../shapes';
import type { StepContext } from '../types';

export interface ActivityDeps {
  config: ConfigFile;
  databases: Databases;
  gcp: GcpClients;
  objects: ObjectStore;
  /** 0.3's lanes when the target sets no data.backfillLanes: the worker's activity slots. */
  defaultBackfillLanes?: number;
  /** How long an activity may report no progress before its heartbeats stop (keepAlive). */
  stallMs?: number;
}

export function createActivities(deps: ActivityDeps) {
  const data = createDataActivities({ databases: deps.databases, objects: deps.objects, defaultBackfillLanes: deps.defaultBackfillLanes });
  const cloud = createCloudActivities({ gcp: deps.gcp, objects: deps.objects, databases: deps.databases });
  // Seeds 000 and 002: MLflow in Postgres without the cloud around it.
  const database = createDatabaseActivities({ databases: deps.databases, objects: deps.objects });
  const cloudPreflight = async (ctx: StepContext<Target>) => (isCloud(ctx.target) ? cloud.preflight({ ...ctx, target: ctx.target }) : []);
  const lifecycle = createLifecycleActivities({ config: deps.config, objects: deps.objects, preflightChecks: [data.preflight, cloudPreflight, database.preflight] });
  // Every activity heartbeats on a timer while it runs, whatever call it is waiting on.
  return keepingAlive(withDeletionPreview({ ...lifecycle, ...data.activities, ...cloud.activities, ...database.activities }), deps.stallMs);
}
