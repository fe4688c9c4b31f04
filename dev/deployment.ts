// A seeded MLflow deployment on this machine: two fresh databases on a Postgres server, the GCP
// sandbox, and the config file and env vars a worker needs to migrate it. Used by the demo, the
// end-to-end tests and the chaos script.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startSandbox, type Sandbox } from './sandbox';
import { cloudTargetSchema, type CloudTarget } from '../src/config/schema';
import { seedDemo } from './demo-data';
import { createDatabase } from './postgres';

export interface Deployment {
  name: string;
  sandbox: Sandbox;
  mlflowUrl: string;
  appUrl: string;
  target: CloudTarget;
  configPath: string;
  /** What the worker's environment needs: config file, connection strings, the sandbox endpoint. */
  workerEnv: Record<string, string>;
  close(): Promise<void>;
}

export async function createDeployment(opts: {
  adminUrl: string;
  name: string;
  /** Prefix of the two databases' names (default: the target name), when two deployments share a target name. */
  databasePrefix?: string;
  dir: string;
  runs?: number;
  epochs?: number;
  batchSize?: number;
  operationDelayMs?: number;
}): Promise<Deployment> {
  mkdirSync(opts.dir, { recursive: true });
  const prefix = opts.databasePrefix ?? opts.name;
  const mlflowUrl = await createDatabase(opts.adminUrl, `${prefix}_mlflow`);
  const appUrl = await createDatabase(opts.adminUrl, `${prefix}_app`);
  const sandbox = await startSandbox({ stateFile: join(opts.dir, 'sandbox-state.json'), operationDelayMs: opts.operationDelayMs });
  const { target } = await seedDemo({ mlflowUrl, appUrl, sandbox, runs: opts.runs, epochs: opts.epochs, batchSize: opts.batchSize });
  const configPath = join(opts.dir, 'mlflow-decommission.config.json');
  writeFileSync(configPath, JSON.stringify({ targets: { [opts.name]: target } }, null, 2));
  return {
    name: opts.name,
    sandbox,
    mlflowUrl,
    appUrl,
    target: cloudTargetSchema.parse(target),
    configPath,
    workerEnv: { MLFLOW_DECOMMISSION_CONFIG: configPath, GCP_API_ENDPOINT: sandbox.url, MLFLOW_DATABASE_URL: mlflowUrl, APP_DATABASE_URL: appUrl },
    close: () => sandbox.stop(),
  };
}
