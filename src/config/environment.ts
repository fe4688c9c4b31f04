// The worker's side of configuration: the only module that reads process.env or the config file.
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { configFileSchema, describeIssues, durationMs, type ConfigFile } from './schema';

export class ConfigError extends Error {
  override name = 'ConfigError';
}

const shutdownDuration = z.string().refine((v) => durationMs(v) > 0, 'expected a duration such as "45 seconds" or "45s"');

const workerEnvSchema = z.object({
  TEMPORAL_ADDRESS: z.string().default('localhost:7233'),
  TEMPORAL_NAMESPACE: z.string().default('default'),
  TEMPORAL_TASK_QUEUE: z.string().default('mlflow-decommission'),
  /** mTLS for a self-hosted cluster, or TEMPORAL_API_KEY for Temporal Cloud. */
  TEMPORAL_TLS_CERT: z.string().optional(),
  TEMPORAL_TLS_KEY: z.string().optional(),
  TEMPORAL_TLS_CA: z.string().optional(),
  TEMPORAL_TLS_SERVER_NAME: z.string().optional(),
  TEMPORAL_API_KEY: z.string().optional(),
  MLFLOW_DECOMMISSION_CONFIG: z.string().default('mlflow-decommission.config.json'),
  /** Overrides every Google API endpoint (a private endpoint, or the local sandbox). Unset: real Google Cloud with ADC. */
  GCP_API_ENDPOINT: z.url().optional(),
  /** Optional payload encryption keys, "keyId:base64,…" newest first (see src/temporal/codec.ts). */
  MLFLOW_DECOMMISSION_CODEC_KEYS: z.string().optional(),
  /** Worker Deployment versioning (README, Deploying a new build): an open migration stays on the build that started it. */
  TEMPORAL_WORKER_VERSIONING: z.stringbool().default(true),
  TEMPORAL_DEPLOYMENT_NAME: z.string().min(1).default('mlflow-decommission'),
  /** Unset or empty (compose's ${VAR:-}): a hash of the workflow bundle, so a change to workflow code is a new version. */
  TEMPORAL_WORKER_BUILD_ID: z
    .string()
    .optional()
    .transform((v) => v?.trim() || undefined),
  /** When this build becomes the deployment's current version: if there is none yet, always, or never (promote by CLI). */
  TEMPORAL_WORKER_PROMOTE: z.enum(['if-none', 'always', 'never']).default('if-none'),
  /** Activities one worker runs at once; also the default backfill lanes and database pool size. */
  WORKER_MAX_CONCURRENT_ACTIVITIES: z.coerce.number().int().min(1).max(256).default(4),
  /** On SIGTERM, running activities get this long to finish or heartbeat out; then, at the force
   * time, the worker gives up (issue 9). Keep the force time under your orchestrator's stop grace period. */
  WORKER_SHUTDOWN_GRACE_TIME: shutdownDuration.default('30 seconds'),
  WORKER_SHUTDOWN_FORCE_TIME: shutdownDuration.default('45 seconds'),
  /** An activity that reports no progress for this long stops heartbeating, so a call that hangs
   * (a request without a timeout) meets the heartbeat timeout and is retried (see keepAlive). */
  WORKER_ACTIVITY_STALL_TIME: shutdownDuration.default('5 minutes'),
  /** Connections per database pool; unset: WORKER_MAX_CONCURRENT_ACTIVITIES (each activity holds at most one per database). */
  DATABASE_POOL_SIZE: z.coerce.number().int().min(1).max(256).optional(),
});
export type WorkerEnv = z.infer<typeof workerEnvSchema>;

export function readWorkerEnv(env: NodeJS.ProcessEnv = process.env): WorkerEnv {
  const parsed = workerEnvSchema.safeParse(env);
  if (!parsed.success) throw new ConfigError(`environment: ${describeIssues(parsed.error)}`);
  const { WORKER_SHUTDOWN_GRACE_TIME: grace, WORKER_SHUTDOWN_FORCE_TIME: force } = parsed.data;
  if (durationMs(force) <= durationMs(grace)) {
    throw new ConfigError(`environment: WORKER_SHUTDOWN_FORCE_TIME (${force}) must be longer than WORKER_SHUTDOWN_GRACE_TIME (${grace})`);
  }
  return parsed.data;
}

export function loadConfigFile(path: string): ConfigFile {
  let raw: string;
  try {
    raw = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`config file ${path} cannot be read (${(err as Error).message}): set MLFLOW_DECOMMISSION_CONFIG to its path`);
  }
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch (err) {
    throw new ConfigError(`config file ${path} is not valid JSON: ${(err as Error).message}`);
  }
  const parsed = configFileSchema.safeParse(json);
  if (!parsed.success) throw new ConfigError(`config file ${path}: ${describeIssues(parsed.error)}`);
  return parsed.data;
}

/** The connection string held by the env var a target names; the value never leaves the worker. */
export function databaseUrl(envVar: string, env: NodeJS.ProcessEnv = process.env): string {
  const url = env[envVar];
  if (!url) throw new ConfigError(`env var ${envVar} is not set on the worker: set it to the database's connection string (postgres://…)`);
  return url;
}
