// npm run e2e:gcp -- --project P --region R --client-cidr 203.0.113.7/32
//
// The opt-in acceptance run against a real Google Cloud project (never in CI: there is no project
// there), in the spirit of Terraform providers' TF_ACC tests. It creates throwaway MLflow-shaped
// resources labelled for this run (dev/gcp-acceptance.ts), seeds the MLflow database, runs Phases
// 0–3 and then the rollback through the real worker with Application Default Credentials, compares
// every resource (and every MLflow table's rows) with its state before, and deletes everything it
// made, also when something failed. Exit code 0 only when the deployment came back as it was.
//   --client-cidr   this machine's address, allowed to reach the instance's public IP (the worker
//                   reads the MLflow database directly, as it does in production)
//   --keep          leave the resources for inspection instead of deleting them
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isDeepStrictEqual, parseArgs } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import pg from 'pg';
import { acceptanceInventory, acceptanceNames, acceptanceTarget, createAcceptanceResources, deleteAcceptanceResources } from './gcp-acceptance';
import { createAppTable, createMlflowSchema, seedAppRows, seedMlflowRuns } from './mlflow-store';
import { createDatabase, freePort, startPostgres, tableRowCounts } from './postgres';
import { devServerExecutable } from './temporal';
import { createGcpClients } from '../src/adapters/gcp/clients';
import { commands, migrationResult, startMigration } from '../src/temporal/client';
import { cloudTargetSchema } from '../src/config/schema';
import { readWorkerEnv } from '../src/config/environment';
import { SEARCH_ATTRIBUTES } from '../src/temporal/search-attributes';
import type { MigrationStatus } from '../src/workflows/messages';
import { runWorker } from '../src/worker';

const { values: args } = parseArgs({
  options: {
    project: { type: 'string' },
    region: { type: 'string', default: 'europe-west1' },
    'client-cidr': { type: 'string' },
    keep: { type: 'boolean', default: false },
  },
});

const say = (line: string) => console.log(`[e2e:gcp ${new Date().toISOString().slice(11, 19)}] ${line}`);
const TARGET = 'acceptance';

async function main(): Promise<number> {
  if (!args.project || !args['client-cidr']) {
    console.error('usage: npm run e2e:gcp -- --project PROJECT --region REGION --client-cidr YOUR.IP.ADDRESS/32 [--keep]\n(credentials: gcloud auth application-default login, as an owner of a throwaway project)');
    return 2;
  }
  if (process.env.GCP_API_ENDPOINT) {
    console.error('GCP_API_ENDPOINT is set: the acceptance run talks to Google Cloud itself. Unset it.');
    return 2;
  }
  const n = acceptanceNames(args.project, args.region!);
  say(`run ${n.runId}: every resource carries the label ${Object.entries(n.labels)[0]!.join('=')}`);
  const gcp = createGcpClients({ project: n.project });
  const stops: Array<() => Promise<unknown>> = [];
  let ok = false;
  try {
    const { dbPassword } = await createAcceptanceResources(gcp, n, { clientCidr: args['client-cidr'], log: say });
    // A restored instance is a new instance, with a new address: read it each time.
    const urlNow = async () => {
      const [instance] = await gcp.sqlInstances.get({ project: n.project, instance: n.instance });
      const ip = instance.ipAddresses?.find((a) => String(a.type) === 'PRIMARY' || a.type === 1)?.ipAddress;
      if (!ip) throw new Error(`${n.instance} has no public IP address`);
      return `postgres://${n.dbUser}:${encodeURIComponent(dbPassword)}@${ip}:5432/${n.database}?sslmode=no-verify`;
    };
    const mlflowUrl = await urlNow();

    say('seeding the MLflow store in Cloud SQL, and the app database on a local Postgres');
    const mlflow = new pg.Client({ connectionString: mlflowUrl });
    await mlflow.connect();
    await createMlflowSchema(mlflow);
    const runIds = await seedMlflowRuns(mlflow, { runs: 10, epochs: 5, seed: 7 });
    await mlflow.end();
    const local = await startPostgres();
    stops.push(() => local.stop());
    const appUrl = await createDatabase(local.adminUrl, `acc_${n.runId.replace(/-/g, '_')}_app`);
    const target = cloudTargetSchema.parse(acceptanceTarget(n));
    const app = new pg.Client({ connectionString: appUrl });
    await app.connect();
    await createAppTable(app, target.appTable);
    await seedAppRows(app, target.appTable, { runIds, notCompleted: 1, withoutRunId: 1 });
    await app.end();

    const dir = mkdtempSync(join(tmpdir(), 'e2e-gcp-'));
    const configPath = join(dir, 'config.json');
    writeFileSync(configPath, JSON.stringify({ targets: { [TARGET]: acceptanceTarget(n) } }, null, 2));

    say('starting a local Temporal dev server and the real worker (Application Default Credentials)');
    Runtime.install({ logger: new DefaultLogger('WARN'), shutdownSignals: [] });
    const port = await freePort();
    const temporal = await TestWorkflowEnvironment.createLocal({ server: { executable: devServerExecutable(), ip: '127.0.0.1', port, searchAttributes: SEARCH_ATTRIBUTES } });
    stops.push(() => temporal.teardown());
    Object.assign(process.env, { TEMPORAL_ADDRESS: `127.0.0.1:${port}`, MLFLOW_DECOMMISSION_CONFIG: configPath, ACC_MLFLOW_DATABASE_URL: mlflowUrl, ACC_APP_DATABASE_URL: appUrl });
    const stopWorker = new AbortController();
    const worker = runWorker(readWorkerEnv(), { stop: stopWorker.signal });
    stops.push(async () => {
      stopWorker.abort();
      await worker;
    });

    const before = { ...(await acceptanceInventory(gcp, n)), mlflowRows: await tableRowCounts(mlflowUrl) };
    const client = new Client({ connection: await Connection.connect({ address: `127.0.0.1:${port}` }) });
    const handle = await startMigration(client, { target: TARGET, approvals: { 'phase-0': false, 'phase-2': false, 'phase-4': true } });
    say(`migration ${handle.workflowId} started; waiting for Phase 3 to finish (gate phase-4)`);
    await waitFor(handle, (s) => s.waitingFor?.gate === 'phase-4', 60 * 60_000);
    const gone = await acceptanceInventory(gcp, n);
    say(`after Phase 3: ${Object.entries(gone).map(([k, v]) => `${k} ${v === 'absent' ? 'gone' : 'present'}`).join(', ')}`);
    say('rolling back');
    await commands.rollback(handle, { by: 'e2e:gcp', reason: `acceptance run ${n.runId}` });
    const result = await migrationResult(handle);
    for (const c of result.status.compensations) say(`  undo ${c.step}: ${c.state}${c.summary ? ` — ${c.summary}` : ''}${c.error ? ` — ${c.error}` : ''}`);
    const after = { ...(await acceptanceInventory(gcp, n)), mlflowRows: await tableRowCounts(await urlNow()) };
    const differences = Object.keys(before).filter((k) => !isDeepStrictEqual((before as Record<string, unknown>)[k], (after as Record<string, unknown>)[k]));
    for (const k of differences) say(`  DIFFERS ${k}:\n    before ${JSON.stringify((before as Record<string, unknown>)[k])}\n    after  ${JSON.stringify((after as Record<string, unknown>)[k])}`);
    ok = result.outcome === 'rolled-back' && differences.length === 0;
    say(ok ? 'PASS: every resource and every MLflow row came back as it was' : `FAIL: outcome ${result.outcome}, ${differences.length} difference(s)`);
    await client.connection.close();
  } catch (err) {
    say(`FAIL: ${(err as Error).stack ?? err}`);
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
    if (args.keep) say(`--keep: left the resources of run ${n.runId}; delete them with the label ${Object.entries(n.labels)[0]!.join('=')}`);
    else {
      say('deleting everything this run made');
      const problems = await deleteAcceptanceResources(gcp, n, { targetName: TARGET, log: say });
      if (problems.length) {
        ok = false;
        say(`could not delete: ${problems.join('; ')} — delete by hand (label ${Object.entries(n.labels)[0]!.join('=')})`);
      }
    }
    await gcp.close();
  }
  return ok ? 0 : 1;
}

async function waitFor(handle: Awaited<ReturnType<typeof startMigration>>, done: (s: MigrationStatus) => boolean, timeoutMs: number): Promise<MigrationStatus> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    const s = await handle.query<MigrationStatus>('status');
    if (done(s)) return s;
    if (s.state === 'blocked') throw new Error(`the migration is Blocked: ${s.waitingFor?.next}`);
    const line = `${s.state} ${s.steps.find((x) => x.state === 'running')?.id ?? ''}`;
    if (line !== last) say(`  ${line}`);
    last = line;
    if (Date.now() > deadline) throw new Error(`gave up waiting (${s.state})`);
    await new Promise((r) => setTimeout(r, 5_000));
  }
}


main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
