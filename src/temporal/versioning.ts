// The worker's options, built once from the worker env (temporal-jumpstart's createWorkerOptions),
// with Worker Deployment versioning: every migration is PINNED to the build that started it, so a
// redeploy never runs a week-old migration on new workflow code.
// https://docs.temporal.io/production-deployment/worker-deployments/worker-versioning
import { createHash } from 'node:crypto';
import type { DataConverter, Duration, WorkerDeploymentVersion } from '@temporalio/common';
import type { NativeConnection, WorkerOptions, WorkflowBundle } from '@temporalio/worker';
import { MAX_HEARTBEAT_THROTTLE_INTERVAL } from '../activities/heartbeat';
import type { WorkerEnv } from '../config/environment';

export interface WorkerConfig {
  env: WorkerEnv;
  connection: NativeConnection;
  workflowBundle: WorkflowBundle;
  dataConverter?: DataConverter;
}

/** TEMPORAL_WORKER_BUILD_ID, else the bundle's hash: a change to workflow code is a new version, a rebuild of the same code is not. */
export function buildIdOf(env: WorkerEnv, bundle: WorkflowBundle): string {
  if (env.TEMPORAL_WORKER_BUILD_ID) return env.TEMPORAL_WORKER_BUILD_ID;
  return `sha256-${createHash('sha256').update(bundle.code).digest('hex').slice(0, 16)}`;
}

/** This worker's deployment version, or undefined when TEMPORAL_WORKER_VERSIONING=false. */
export function deploymentVersionOf(env: WorkerEnv, bundle: WorkflowBundle): WorkerDeploymentVersion | undefined {
  if (!env.TEMPORAL_WORKER_VERSIONING) return undefined;
  return { deploymentName: env.TEMPORAL_DEPLOYMENT_NAME, buildId: buildIdOf(env, bundle) };
}

export function createWorkerOptions(cfg: WorkerConfig, activities: object): WorkerOptions {
  const { env } = cfg;
  const version = deploymentVersionOf(env, cfg.workflowBundle);
  return {
    connection: cfg.connection,
    namespace: env.TEMPORAL_NAMESPACE,
    taskQueue: env.TEMPORAL_TASK_QUEUE,
    workflowBundle: cfg.workflowBundle,
    activities,
    dataConverter: cfg.dataConverter,
    // Also the default backfill lanes and pool size, so a lane never waits for a slot or a connection.
    maxConcurrentActivityTaskExecutions: env.WORKER_MAX_CONCURRENT_ACTIVITIES,
    // SIGTERM stops polling; running activities get the grace time to finish or heartbeat out, and
    // at the force time the worker gives up, so a batch stuck in a call cannot hang the shutdown
    // (issue 9). Its attempt is retried elsewhere.
    shutdownGraceTime: env.WORKER_SHUTDOWN_GRACE_TIME as Duration,
    shutdownForceTime: env.WORKER_SHUTDOWN_FORCE_TIME as Duration,
    // A cancellation (a rollback during a step) reaches an activity only in a heartbeat's reply:
    // without a cap the SDK waits 0.8 × the heartbeat timeout (24 s) between beats.
    maxHeartbeatThrottleInterval: MAX_HEARTBEAT_THROTTLE_INTERVAL,
    workerDeploymentOptions: version
      ? { useWorkerVersioning: true, version, defaultVersioningBehavior: 'PINNED' }
      : undefined,
  };
}

export type PromoteMode = WorkerEnv['TEMPORAL_WORKER_PROMOTE'];

/**
 * Makes `version` its deployment's current version (new migrations start on it; open ones stay
 * pinned where they are): with 'if-none' only when the deployment has none yet, a first deploy.
 * The server accepts it once this version's pollers have reached it, so it retries until
 * `timeoutMs`. Returns what it did.
 */
export async function promoteVersion(
  connection: Pick<NativeConnection, 'workflowService'>,
  namespace: string,
  version: WorkerDeploymentVersion,
  mode: PromoteMode,
  opts: { timeoutMs?: number; signal?: AbortSignal } = {},
): Promise<'promoted' | 'already current' | 'kept the current version' | 'not asked'> {
  if (mode === 'never') return 'not asked';
  const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
  let last: unknown;
  while (!opts.signal?.aborted) {
    try {
      const { workerDeploymentInfo, conflictToken } = await connection.workflowService.describeWorkerDeployment({
        namespace,
        deploymentName: version.deploymentName,
      });
      const current = workerDeploymentInfo?.routingConfig?.currentDeploymentVersion?.buildId;
      if (current === version.buildId) return 'already current';
      if (current && mode === 'if-none') return 'kept the current version';
      // The conflict token: two workers racing for a first deploy cannot both win.
      await connection.workflowService.setWorkerDeploymentCurrentVersion({
        namespace,
        deploymentName: version.deploymentName,
        buildId: version.buildId,
        conflictToken,
        identity: `mlflow-decommission worker ${version.buildId}`,
      });
      return 'promoted';
    } catch (err) {
      // NotFound until this version's first poll creates the deployment; FailedPrecondition until its pollers are seen.
      last = err;
    }
    if (Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(
    `could not make ${version.deploymentName}.${version.buildId} the current version (${(last as Error | undefined)?.message ?? 'stopped'}): ` +
      `run temporal worker deployment set-current-version --deployment-name ${version.deploymentName} --build-id ${version.buildId}`,
  );
}
