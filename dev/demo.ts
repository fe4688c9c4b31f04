// npm run demo: a whole MLflow deployment on this machine, and the worker to decommission it.
// Temporal dev server + Web UI, Postgres (DATABASE_URL or embedded), the GCP sandbox seeded
// with the deployment, an MLflow store with realistic histories and the Django app table.
//   --start          start the migration too
//   --runs N         MLflow runs to seed (default 200)
//   --fail-step 3.1  make that step's cloud call fail (403) until you clear the fault
//   --shape shared-database | self-hosted   the other MLflow deployments (seeds 000 and 002): no GCP,
//                    MLflow in the app's database, or in its own database on a shared server
import { mkdirSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { Connection, Client } from '@temporalio/client';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { freePort, startPostgres } from './postgres';
import { createDeployment } from './deployment';
import { devServerExecutable } from './temporal';
import { demoFaults } from './demo-data';
import { startShapeDemo } from './shape-demo';
import { startMigration } from '../src/temporal/client';
import { readWorkerEnv } from '../src/config/environment';
import { SEARCH_ATTRIBUTES } from '../src/temporal/search-attributes';
import { runWorker } from '../src/worker';

const { values: args } = parseArgs({
  options: {
    start: { type: 'boolean', default: false },
    runs: { type: 'string', default: '200' },
    'fail-step': { type: 'string' },
    shape: { type: 'string', default: 'cloud' },
    port: { type: 'string', default: '7233' },
    'ui-port': { type: 'string', default: '8233' },
  },
});

const dir = resolve('.demo');
const cleanups: Array<() => Promise<unknown>> = [];
const say = (line = '') => console.log(line);
// The dev server prints 127.0.0.1 as localhost in its banner: the demo says localhost too.
const HOST = 'localhost';

async function main(): Promise<void> {
  mkdirSync(dir, { recursive: true });
  // Run last on the way out: the deployment's files (sandbox state, blobs, config) go too.
  cleanups.push(async () => rmSync(join(dir, 'deployment'), { recursive: true, force: true }));
  // The demo owns Ctrl-C: the worker stops first, then everything else, so no server is left behind.
  Runtime.install({ logger: new DefaultLogger('WARN'), shutdownSignals: [] });
  const stop = new AbortController();
  // A second Ctrl-C must not kill the cleanup half-way (the embedded Postgres folder would stay).
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => (stop.signal.aborted ? say('Stopping: removing what the demo made …') : stop.abort()));

  say('Starting Temporal dev server with its Web UI …');
  const port = await portOr(Number(args.port));
  const uiPort = await portOr(Number(args['ui-port']));
  const temporal = await TestWorkflowEnvironment.createLocal({
    // Errors only: at warn the server prints "GetHistory page size is larger than threshold" for
    // every UI history page, burying the instructions below.
    server: { executable: devServerExecutable(), ip: '127.0.0.1', port, ui: true, uiPort, searchAttributes: SEARCH_ATTRIBUTES, log: { format: 'pretty', level: 'error' } },
  });
  cleanups.push(() => temporal.teardown());

  say('Starting Postgres …');
  const pg = await startPostgres();
  cleanups.push(() => pg.stop());

  if (args.shape !== 'cloud') {
    // Seeds 000 and 002: no sandbox; the backup location is a directory under .demo.
    const shape = await startShapeDemo({ shape: args.shape!, adminUrl: pg.adminUrl, dir: join(dir, 'deployment'), runs: Number(args.runs) });
    cleanups.push(() => shape.close());
    Object.assign(process.env, { TEMPORAL_ADDRESS: `${HOST}:${port}`, ...shape.workerEnv });
    const worker = runWorker(readWorkerEnv(), { stop: stop.signal });
    if (args.start) await startMigration(new Client({ connection: await Connection.connect({ address: `127.0.0.1:${port}` }) }), { target: 'demo' });
    say();
    say(`Ready: MLflow as ${args.shape} (${shape.describe}).`);
    say(`  Temporal Web UI   http://${HOST}:${uiPort}/namespaces/default/workflows`);
    say(`  Backups           ${shape.backupDir}`);
    if (!args.start) say('  Start Workflow: ID mlflow-decommission-demo, task queue mlflow-decommission, type mlflowDecommission, input {"target": "demo"}');
    cliLines(port);
    for (const line of shape.notes) say(`  ${line}`);
    say();
    say('Ctrl-C stops everything and removes what the demo made.');
    await worker;
    return;
  }

  say(`Starting the GCP sandbox and seeding MLflow (${args.runs} runs), the Django app table and the deployment …`);
  // A fresh deployment every time (new databases, new sandbox state). Operations take a few
  // seconds, as on GCP, so the UI shows steps polling with heartbeats.
  rmSync(join(dir, 'deployment'), { recursive: true, force: true });
  const deployment = await createDeployment({ adminUrl: pg.adminUrl, name: 'demo', dir: join(dir, 'deployment'), runs: Number(args.runs), operationDelayMs: 3000 });
  cleanups.push(() => deployment.close());
  const sandbox = deployment.sandbox;
  if (args['fail-step']) demoFaults(sandbox, args['fail-step'], deployment.target);
  Object.assign(process.env, { TEMPORAL_ADDRESS: `${HOST}:${port}`, ...deployment.workerEnv });

  const worker = runWorker(readWorkerEnv(), { stop: stop.signal });
  if (args.start) {
    const client = new Client({ connection: await Connection.connect({ address: `127.0.0.1:${port}` }) });
    await startMigration(client, { target: 'demo' });
  }

  say();
  say('Ready.');
  say(`  Temporal Web UI   http://${HOST}:${uiPort}/namespaces/default/workflows`);
  say(`  GCP sandbox       ${sandbox.url.replace('127.0.0.1', HOST)}/_sandbox/state`);
  say();
  say(args.start ? 'The migration is running: open mlflow-decommission-demo in the UI.' : 'Start a migration from the UI: Start Workflow, then');
  if (!args.start) {
    say('  Workflow ID   mlflow-decommission-demo');
    say('  Task queue    mlflow-decommission');
    say('  Workflow type mlflowDecommission');
    say('  Input         {"target": "demo"}');
    say('  Summary       (optional, under "More options") e.g. Decommission MLflow for demo');
  }
  cliLines(port);
  if (args['fail-step']) {
    say();
    say(`Step ${args['fail-step']} will fail (injected 403). When it shows Blocked, clear the fault and retry:`);
    say(`  curl -X DELETE ${sandbox.url.replace('127.0.0.1', HOST)}/_sandbox/faults`);
    say(`  ./run cli retry demo ${args['fail-step']}`);
  }
  say();
  say('Ctrl-C stops everything and removes what the demo made.');
  await worker;
}

/** The CLI commands that work from here: under ./run cli (the Node ./run setup installed), knowing --start. */
function cliLines(port: number): void {
  say();
  say('Or from another terminal (same directory):');
  say(`  export TEMPORAL_ADDRESS=${HOST}:${port}`);
  if (!args.start) {
    say('  ./run cli plan demo');
    say('  ./run cli start demo');
  }
  say('  ./run cli status demo --watch');
  say('  ./run cli approve demo phase-0 --comment "spot-checked"');
}

async function portOr(preferred: number): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((done) => {
    const srv = createServer();
    srv.once('error', () => void freePort().then(done));
    srv.listen(preferred, '127.0.0.1', () => srv.close(() => done(preferred)));
  });
}

async function shutdown(code: number): Promise<never> {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
  process.exit(code);
}

// Ctrl-C stops the worker; then everything else goes, in reverse order.
main().then(
  () => shutdown(0),
  (err) => {
    console.error(err);
    return shutdown(1);
  },
);
