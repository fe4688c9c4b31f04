// npm run chaos, and its smaller CI test (runChaos): one clean migration and one whose worker is
// SIGKILLed at random points (restarted each time), whose Temporal server restarts mid-phase,
// whose backfill connections are terminated and whose GCP calls meet faults; then the two are
// compared. Prints a summary table; exits non-zero when a check fails.
//   --kills 20   SIGKILLs, spread over the backfill (0.3), the export (0.6) and the Phase 3 deletes
//   --runs 200   MLflow runs to seed
//   --seed 1     the random kill points
//   --fault-rate 0.03  chance of a 503, a 429, a slow answer (and a fifth of it, a hang) per GCP request
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, openSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import type { WorkflowHandle } from '@temporalio/client';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import pg from 'pg';
import { createGcpClients } from '../src/adapters/gcp/clients';
import { createGcsObjectStore } from '../src/adapters/gcp/gcs-object-store';
import { commands, migrationResult, startMigration } from '../src/temporal/client';
import { SEARCH_ATTRIBUTES } from '../src/temporal/search-attributes';
import type { CheckResult } from '../src/types';
import type { MigrationResult, MigrationStatus } from '../src/workflows/messages';
import { createDeployment, type Deployment } from './deployment';
import { freePort, startPostgres } from './postgres';
import { devServerExecutable } from './temporal';

export interface ChaosOptions {
  adminUrl: string;
  kills: number;
  runs: number;
  seed: number;
  /** Probability of a 503, a 429, a slow answer and (a fifth of it) a hang on each GCP request of the chaos run. */
  faultRate?: number;
  log?: (line: string) => void;
}

export interface ChaosSummary {
  kills: number;
  serverRestarts: number;
  connectionsTerminated: number;
  killPoints: string[];
  faultsInjected: number;
  /** Steps that turned Blocked under faults and were retried, as an operator would. */
  blockedRetried: number;
  pointsVerified: number;
  effectsDuplicated: number;
  rowsLost: number;
  checks: CheckResult[];
  seconds: number;
}

const ROOT = resolve(__dirname, '..');
const NO_APPROVALS = { 'phase-0': false, 'phase-2': false, 'phase-4': false, closure: false };
/** Where kills land, in order: the backfill, the raw export, the Phase 3 deletes. */
const REGIONS: Array<{ name: string; activities: RegExp }> = [
  { name: 'backfill', activities: /^(planBackfill|backfillBatch)$/ },
  { name: 'export', activities: /^exportRawTables$/ },
  { name: 'phase 3', activities: /^delete(MlflowService|MlflowDatabase|BuildTrigger|ArtifactsBucket|ServiceAccount)$|^disableSecrets$/ },
];

export async function runChaos(opts: ChaosOptions): Promise<ChaosSummary> {
  const log = opts.log ?? (() => {});
  const began = Date.now();
  const random = mulberry32(opts.seed);
  const dir = mkdtempSync(join(tmpdir(), 'chaos-'));
  const port = await freePort();
  const startTemporal = () =>
    TestWorkflowEnvironment.createLocal({
      server: { executable: devServerExecutable(), ip: '127.0.0.1', port, dbFilename: join(dir, 'temporal.db'), searchAttributes: SEARCH_ATTRIBUTES },
    });
  let temporal = await startTemporal();
  const address = `127.0.0.1:${port}`;
  const suffix = `${process.pid}s${opts.seed}`;
  const clean = await createDeployment({ adminUrl: opts.adminUrl, name: `clean${suffix}`, dir: join(dir, 'clean'), runs: opts.runs, batchSize: 20, operationDelayMs: 500 });
  const chaos = await createDeployment({ adminUrl: opts.adminUrl, name: `chaos${suffix}`, dir: join(dir, 'chaos'), runs: opts.runs, batchSize: 20, operationDelayMs: 500 });
  const workers: ChildProcess[] = [];
  const admin = new pg.Client({ connectionString: opts.adminUrl });
  await admin.connect();
  let serverRestarts = 0;
  let connectionsTerminated = 0;
  const killPoints: string[] = [];
  try {
    log(`clean run of ${opts.runs} runs …`);
    const cleanWorker = spawnWorker(clean, address, dir);
    workers.push(cleanWorker.child);
    const cleanResult = await migrationResult(await startMigration(temporal.client, { target: clean.name, approvals: NO_APPROVALS, bakePeriod: '5s' }, { taskQueue: clean.name }));
    cleanWorker.child.kill('SIGTERM');

    log(`chaos run: ${opts.kills} kills …`);
    const rate = opts.faultRate ?? 0.03;
    const gcpRequests = '^(GET|POST|PUT|PATCH|DELETE) /(v1|v2|storage|upload|download|bigquery)/';
    chaos.sandbox.addFault({ match: gcpRequests, status: 503, probability: rate });
    chaos.sandbox.addFault({ match: gcpRequests, status: 429, probability: rate });
    chaos.sandbox.addFault({ match: gcpRequests, hang: true, probability: rate / 5 });
    chaos.sandbox.addFault({ match: gcpRequests, latencyMs: 400, probability: rate });
    let worker = spawnWorker(chaos, address, dir);
    workers.push(worker.child);
    const handle = await startMigration(temporal.client, { target: chaos.name, approvals: NO_APPROVALS, bakePeriod: '5s' }, { taskQueue: chaos.name });
    const { unblock, counter } = unblocker(log);
    for (let k = 0; k < opts.kills; k++) {
      const region = REGIONS[Math.min(REGIONS.length - 1, Math.floor((k * REGIONS.length) / opts.kills))];
      const activity = await runningActivity(() => temporal.client.workflow.getHandle(handle.workflowId), region.activities, worker.startedAt, unblock);
      if (!activity) continue; // the region is over: the next kills go to the next one
      // Batches are short: kill within one; deletes and the export poll for seconds.
      await sleep(random() * (region.name === 'backfill' ? 300 : 1500));
      // Before the first backfill kill, cut the batches' database connections mid-batch, and give the
      // live worker time to retry them from their heartbeat cursors before it is killed too.
      if (region.name === 'backfill' && connectionsTerminated === 0) {
        const { rowCount } = await admin.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'mlflow-decommission' AND datname = ANY($1)`, [[`${chaos.name}_mlflow`, `${chaos.name}_app`]]);
        connectionsTerminated += rowCount ?? 0;
        log(`  cut ${rowCount ?? 0} backfill connection(s)`);
        await sleep(4000);
      }
      worker.child.kill('SIGKILL');
      killPoints.push(`${region.name}: ${activity}`);
      log(`  kill ${killPoints.length} during ${activity}`);
      // Once, after the export kills: the Temporal server goes down too, and comes back on its database file.
      if (region.name === 'phase 3' && serverRestarts === 0) {
        await temporal.teardown();
        temporal = await startTemporal();
        serverRestarts++;
        log('  Temporal dev server restarted');
      }
      worker = spawnWorker(chaos, address, dir);
      workers.push(worker.child);
    }
    const chaosResult = await finish(() => temporal.client.workflow.getHandle(handle.workflowId), unblock);
    // The checks read through the same sandbox: they must not meet the chaos themselves.
    const faultsInjected = chaos.sandbox.faultsInjected;
    chaos.sandbox.clearFaults();
    const { checks, rowsLost } = await compare(clean, chaos, cleanResult as MigrationResult, chaosResult);
    const counts = deleteCounts(chaos.sandbox);
    return {
      kills: killPoints.length,
      serverRestarts,
      connectionsTerminated,
      killPoints,
      faultsInjected,
      blockedRetried: counter.retried,
      pointsVerified: Number((chaosResult.status.facts['0.5'] as { points?: number } | undefined)?.points ?? 0),
      effectsDuplicated: counts.reduce((sum, [, n]) => sum + Math.max(0, n - 1), 0),
      rowsLost,
      checks,
      seconds: (Date.now() - began) / 1000,
    };
  } finally {
    for (const w of workers) w.kill('SIGKILL');
    await admin.end();
    await Promise.all([clean.close(), chaos.close()]);
    await temporal.teardown();
  }
}

/** Waits for the result; a step Blocked by the faults is retried, as an operator would after reading why. */
async function finish(handle: () => WorkflowHandle, unblock: Unblocker): Promise<MigrationResult> {
  for (;;) {
    const h = handle();
    const desc = await h.describe().catch(() => undefined);
    if (desc && desc.status.name !== 'RUNNING') return migrationResult(h);
    if (desc) await unblock(h, desc.searchAttributes.MigrationState?.[0]);
    await sleep(500);
  }
}

type Unblocker = (h: WorkflowHandle, state: unknown) => Promise<void>;

/** Retries a Blocked step (a fault outlasted its retry policy), counting how often. */
function unblocker(log: (line: string) => void) {
  const counter = { retried: 0 };
  const unblock: Unblocker = async (h, state) => {
    if (state !== 'blocked') return;
    const status = await h.query<MigrationStatus>('status').catch(() => undefined);
    const step = status?.waitingFor?.kind === 'decision' ? status.waitingFor.step : undefined;
    if (!step) return;
    log(`  ${status?.waitingFor?.next ?? `${step} Blocked`} → retry`);
    await commands.retry(h, { step, by: 'chaos' }).then(() => counter.retried++, () => undefined);
  };
  return { unblock, counter };
}

const DELETES = ['DELETE /v2/.*/services/mlflow-server$', 'DELETE /v1/projects/[^/]+/instances/mlflow-db$', 'DELETE /storage/v1/b/demo-mlflow-artifacts$', 'DELETE .*/triggers/', 'DELETE /v1/projects/[^/]+/serviceAccounts/'];

/** Successful deletes per resource: exactly one each when nothing was done twice. */
function deleteCounts(sb: Deployment['sandbox']): Array<readonly [string, number]> {
  return DELETES.map((m) => [m, sb.callsTo(m).filter((c) => c.status < 300).length] as const);
}

/** A worker process; its stderr goes to <dir>/worker.log, so a worker that dies says why. */
function spawnWorker(d: Deployment, address: string, dir: string) {
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'src/worker.ts')], {
    cwd: ROOT,
    // Hung requests (a fault below) are retried once their activity stalls: 20 s here, not 5 minutes.
    env: { ...process.env, ...d.workerEnv, TEMPORAL_ADDRESS: address, TEMPORAL_TASK_QUEUE: d.name, WORKER_ACTIVITY_STALL_TIME: '20 seconds' },
    stdio: ['ignore', 'ignore', openSync(join(dir, 'worker.log'), 'a')],
  });
  return { child, startedAt: Date.now() };
}

/** Waits for an activity matching `types` that a worker started after `since`; undefined when the workflow moved past. */
async function runningActivity(handle: () => WorkflowHandle, types: RegExp, since: number, unblock: Unblocker): Promise<string | undefined> {
  let seen = false;
  for (;;) {
    try {
      const desc = await handle().describe();
      if (desc.status.name !== 'RUNNING') return undefined;
      await unblock(handle(), desc.searchAttributes.MigrationState?.[0]);
      const pending = desc.raw.pendingActivities ?? [];
      const match = pending.find((a) => types.test(a.activityType?.name ?? ''));
      if (match) {
        seen = true;
        const started = Number(match.lastStartedTime?.seconds ?? 0) * 1000;
        if (match.state === 2 /* STARTED */ && started >= since - 1000) return match.activityType!.name!;
      } else if (seen || (await pastRegion(desc.raw.pendingActivities ?? [], types))) {
        return undefined;
      }
    } catch {
      // the server may be restarting
    }
    await sleep(100);
  }
}

async function pastRegion(pending: Array<{ activityType?: { name?: string | null } | null }>, types: RegExp): Promise<boolean> {
  const order = ['planBackfill', 'backfillBatch', 'exportRawTables', 'deleteMlflowService'];
  const idx = (n: string) => order.findIndex((o) => o === n);
  const target = order.find((o) => types.test(o));
  const now = pending.map((a) => a.activityType?.name ?? '').find((n) => idx(n) >= 0);
  const laterSteps = /^(verifyResourcesGone|checkBilling|removeTrackingUri|deleteSecrets|verifyNothingLeft|writeCompletionRecord|checkResourcesGone)$/;
  return (now !== undefined && target !== undefined && idx(now) > idx(target)) || pending.some((a) => laterSteps.test(a.activityType?.name ?? ''));
}

async function compare(clean: Deployment, chaos: Deployment, cleanResult: MigrationResult, chaosResult: MigrationResult): Promise<{ checks: CheckResult[]; rowsLost: number }> {
  const checks: CheckResult[] = [];
  const check = (name: string, ok: boolean, detail: string) => checks.push({ name, ok, detail });
  check('migration completed', chaosResult.outcome === 'completed', `outcome ${chaosResult.outcome}`);

  const histories = async (url: string) => {
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      const { rows } = await c.query(`SELECT id, training_history_json::text AS h FROM ml_platform_quicktest ORDER BY id`);
      return rows as Array<{ id: number; h: string | null }>;
    } finally {
      await c.end();
    }
  };
  const [a, b] = await Promise.all([histories(clean.appUrl), histories(chaos.appUrl)]);
  // A row missing from the chaos run, or whose history differs from the clean run's, is a row lost.
  const differ = a.filter((row, i) => b[i]?.id !== row.id || b[i]?.h !== row.h).map((r) => r.id);
  check('app DB equals the clean run', a.length === b.length && differ.length === 0, differ.length ? `rows differ: ${differ.length} (ids ${differ.slice(0, 10).join(', ')})` : `${a.length} rows identical`);

  const sb = chaos.sandbox;
  const counts = deleteCounts(sb);
  check('every resource deleted exactly once', counts.every(([, n]) => n === 1), counts.map(([m, n]) => `${m.split(' ')[1]}×${n}`).join(', '));

  const comps = chaosResult.status.compensations.map((c) => c.step).join(',');
  const cleanComps = cleanResult.status.compensations.map((c) => c.step).join(',');
  check('no compensation lost', comps === cleanComps, comps);

  const gcp = createGcpClients({ apiEndpoint: sb.url, project: chaos.target.gcp.project });
  try {
    const objects = createGcsObjectStore(gcp.storage);
    const base = `gs://${chaos.target.buckets.backup}/${chaos.target.buckets.prefix}/${chaosResult.status.migrationId}`;
    const snapshots = await objects.list(`${base}/snapshots/`);
    check('snapshots present', snapshots.length >= 5, snapshots.map((s) => s.uri.split('/snapshots/')[1]).join(', '));
    const manifest = JSON.parse((await objects.read(`${base}/raw/manifest.json`))?.toString() ?? '{"tables":[]}') as { tables: Array<{ table: string; rows: number; sha256: string; uri: string }> };
    const bad: string[] = [];
    for (const t of manifest.tables) {
      const body = await objects.read(t.uri);
      if (!body || createHash('sha256').update(body).digest('hex') !== t.sha256) bad.push(t.table);
    }
    check('export manifest matches its objects', manifest.tables.length > 0 && bad.length === 0, bad.length ? `mismatch: ${bad.join(', ')}` : `${manifest.tables.length} tables, sha256 verified`);
  } finally {
    await gcp.close();
  }
  return { checks, rowsLost: differ.length };
}

function sleep(ms: number) {
  return new Promise((r) => setTimeout(r, ms));
}

/** A small seeded PRNG, so a chaos run can be repeated. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

async function main() {
  const { values: args } = parseArgs({
    options: {
      kills: { type: 'string', default: '20' },
      runs: { type: 'string', default: '200' },
      seed: { type: 'string', default: '1' },
      'fault-rate': { type: 'string', default: '0.03' },
    },
  });
  Runtime.install({ logger: new DefaultLogger('ERROR') });
  const pg = await startPostgres();
  try {
    const summary = await runChaos({ adminUrl: pg.adminUrl, kills: Number(args.kills), runs: Number(args.runs), seed: Number(args.seed), faultRate: Number(args['fault-rate']), log: console.log });
    console.table(summary.checks.map((c) => ({ check: c.name, result: c.ok ? 'ok' : 'FAILED', detail: c.detail })));
    console.table([
      {
        'kills survived': summary.kills,
        'Temporal restarts': summary.serverRestarts,
        'connections cut': summary.connectionsTerminated,
        'faults injected': summary.faultsInjected,
        'Blocked, retried': summary.blockedRetried,
        'points verified': summary.pointsVerified,
        'effects duplicated': summary.effectsDuplicated,
        'rows lost': summary.rowsLost,
        seconds: Math.round(summary.seconds),
      },
    ]);
    process.exitCode = summary.checks.every((c) => c.ok) ? 0 : 1;
  } finally {
    await pg.stop();
  }
}

if (require.main === module) void main();
