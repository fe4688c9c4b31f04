// The worker users run: the mlflowDecommission workflow and the real activities, on task queue
// `mlflow-decommission`. Configuration is read and validated once, before connecting.
import { Connection } from '@temporalio/client';
import { bundleWorkflowCode, NativeConnection, Worker } from '@temporalio/worker';
import { temporal } from '@temporalio/proto';
import { createActivities } from './activities';
import { durationMs } from './config/schema';
import { createDependencies } from './dependencies';
import { ConfigError, loadConfigFile, readWorkerEnv, type WorkerEnv } from './config/environment';
import { SEARCH_ATTRIBUTES } from './temporal/search-attributes';
import { connectionOptions, dataConverter } from './temporal/connection';
import { createWorkerOptions, deploymentVersionOf, promoteVersion } from './temporal/versioning';

/** The workflow upserts these on every transition; a namespace without them would fail its tasks. */
export async function ensureSearchAttributes(env: WorkerEnv): Promise<void> {
  const connection = await Connection.connect(connectionOptions(env));
  try {
    const { customAttributes } = await connection.operatorService.listSearchAttributes({ namespace: env.TEMPORAL_NAMESPACE });
    const missing = SEARCH_ATTRIBUTES.filter((k) => !customAttributes?.[k.name]);
    if (missing.length === 0) return;
    await connection.operatorService.addSearchAttributes({
      namespace: env.TEMPORAL_NAMESPACE,
      searchAttributes: Object.fromEntries(missing.map((k) => [k.name, temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD])),
    });
  } catch (err) {
    const names = SEARCH_ATTRIBUTES.map((k) => k.name);
    throw new ConfigError(
      `search attributes ${names.join(', ')} are not registered on namespace ${env.TEMPORAL_NAMESPACE} and could not be added (${(err as Error).message}). ` +
        `Register them once: ${names.map((n) => `temporal operator search-attribute create --name ${n} --type Keyword`).join(' && ')}`,
    );
  } finally {
    await connection.close();
  }
}

/** Runs until SIGINT/SIGTERM (the SDK's default), or until `stop` aborts (a host such as the demo that owns the signals). */
export async function runWorker(env: WorkerEnv = readWorkerEnv(), opts: { stop?: AbortSignal } = {}): Promise<void> {
  const config = loadConfigFile(env.MLFLOW_DECOMMISSION_CONFIG);
  await ensureSearchAttributes(env);
  if (opts.stop?.aborted) return;
  // Bundled here rather than from workflowsPath: the bundle's hash is the default build ID.
  const workflowBundle = await bundleWorkflowCode({ workflowsPath: require.resolve('./workflows') });
  const deps = createDependencies(env, config);
  const connection = await NativeConnection.connect(connectionOptions(env));
  const stopPromoting = new AbortController();
  try {
    const activities = createActivities({ config, ...deps, defaultBackfillLanes: env.WORKER_MAX_CONCURRENT_ACTIVITIES, stallMs: durationMs(env.WORKER_ACTIVITY_STALL_TIME) });
    const worker = await Worker.create(createWorkerOptions({ env, connection, workflowBundle, dataConverter: dataConverter(env) }, activities));
    opts.stop?.addEventListener('abort', () => worker.shutdown(), { once: true });
    const version = deploymentVersionOf(env, workflowBundle);
    const where = version ? `, version ${version.deploymentName}.${version.buildId} (pinned)` : ', unversioned';
    console.log(`worker on ${env.TEMPORAL_ADDRESS}, namespace ${env.TEMPORAL_NAMESPACE}, task queue ${env.TEMPORAL_TASK_QUEUE}${where}; targets: ${Object.keys(config.targets).join(', ')}`);
    // The version exists once this worker polls, so it is promoted while the worker runs.
    if (version) {
      promoteVersion(connection, env.TEMPORAL_NAMESPACE, version, env.TEMPORAL_WORKER_PROMOTE, { signal: stopPromoting.signal }).then(
        (done) => console.log(`${version.deploymentName}.${version.buildId}: ${done}`),
        (err: Error) => console.error(`mlflow-decommission worker: ${err.message}`),
      );
    }
    await worker.run();
  } finally {
    stopPromoting.abort();
    await connection.close();
    await deps.close();
  }
}

if (require.main === module) {
  runWorker().catch((err) => {
    console.error(err instanceof ConfigError ? `mlflow-decommission worker: ${err.message}` : err);
    process.exit(1);
  });
}
