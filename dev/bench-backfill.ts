// Backfill throughput against the floor Postgres sets: an ordered COPY of the whole metrics
// table to /dev/null (the fastest one ordered read can go), then the backfill over the same
// store through the real activities (planBackfill, then every backfillBatch), measured in one
// process. Targets: backfill ≥ 50% of the COPY rate, peak RSS ≤ 256 MB at any table size.
// DATABASE_URL when set, else an embedded Postgres.
//   npm run bench:backfill -- [--runs 1000] [--metrics 140] [--epochs 50] [--lanes 1] [--reuse]
// The npm script runs node with --max-semi-space-size=8 (V8's young generation capped at 8 MB per
// semi-space), as the worker should run: by default V8 grows it to 3 × 32 MB under the backfill's
// allocation rate, ~120 MB of RSS that is garbage. (d) prints the flags it ran with.
// --lanes runs that many batches at once, as the workflow's lanes do (it runs 4). --reuse keeps
// the store seeded by an earlier run of the same size (DATABASE_URL only: the embedded one is
// thrown away).
import { createWriteStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { createDatabases } from '../src/adapters/postgres';
import { copyOut } from '../src/adapters/postgres-streams';
import { createBackfillActivities, type BackfillBatch } from '../src/activities/data/backfill';
import { cloudTargetSchema } from '../src/config/schema';
import type { StepContext } from '../src/types';
import { createDatabase, startPostgres } from './postgres';
import { createAppTable, createMlflowSchema, seedAppRows, seedMlflowRuns } from './mlflow-store';

/** Runs per seeding statement, so one INSERT … SELECT never holds the whole table. */
const SEED_CHUNK = 100;

async function main() {
  const { values } = parseArgs({
    options: { runs: { type: 'string', default: '1000' }, metrics: { type: 'string', default: '140' }, epochs: { type: 'string', default: '50' }, lanes: { type: 'string', default: '1' }, reuse: { type: 'boolean', default: false } },
  });
  const runs = Number(values.runs);
  const metrics = Number(values.metrics);
  const epochs = Number(values.epochs);
  const lanes = Number(values.lanes);
  const server = await startPostgres();
  const size = `${runs}x${metrics}x${epochs}`;
  const reuse = values.reuse && (await seededSize(server.adminUrl)) === size;
  const mlflowUrl = reuse ? withDatabase(server.adminUrl, 'bench_mlflow') : await createDatabase(server.adminUrl, 'bench_mlflow');
  const appUrl = reuse ? withDatabase(server.adminUrl, 'bench_app') : await createDatabase(server.adminUrl, 'bench_app');
  const databases = createDatabases({ MLFLOW_DATABASE_URL: mlflowUrl, APP_DATABASE_URL: appUrl });
  const target = cloudTargetSchema.parse({
    gcp: { project: 'bench-project', region: 'europe-central2' },
    buckets: { backup: 'bench-backups' },
    serviceAccount: 'mlflow@bench-project.iam.gserviceaccount.com',
    databases: { mlflow: { urlEnv: 'MLFLOW_DATABASE_URL' }, app: { urlEnv: 'APP_DATABASE_URL' } },
  });
  const mlflow = databases.pool('MLFLOW_DATABASE_URL');
  const app = databases.pool('APP_DATABASE_URL');
  try {
    let t0 = performance.now();
    if (reuse) {
      console.log(`reusing the store seeded with ${size}`);
    } else {
      console.log(`seeding ${runs} runs × ${metrics} metrics × ${epochs} epochs (${(runs * metrics * epochs).toLocaleString('en-US')} points) …`);
      await createMlflowSchema(mlflow);
      const runIds: string[] = [];
      for (let offset = 0; offset < runs; offset += SEED_CHUNK) {
        runIds.push(...(await seedMlflowRuns(mlflow, { runs: Math.min(SEED_CHUNK, runs - offset), epochs, metrics, seed: 42, offset })));
      }
      await mlflow.query('VACUUM ANALYZE');
      await createAppTable(app, target.appTable);
      await seedAppRows(app, target.appTable, { runIds });
      await mlflow.query(`CREATE TABLE bench_size AS SELECT $1::text AS size`, [size]);
      console.log(`seeded in ${s(performance.now() - t0)}`);
    }
    console.log(`peak RSS after seeding: ${mb()} MB`);
    const rows = Number((await mlflow.query('SELECT count(*) FROM metrics')).rows[0].count);

    // (a) The floor: one ordered read of every metric row, to /dev/null.
    t0 = performance.now();
    const copy = await copyOut(mlflow, 'COPY (SELECT run_uuid, key, step, timestamp, value, is_nan FROM metrics ORDER BY run_uuid, key, step, timestamp) TO STDOUT');
    try {
      await pipeline(copy.stream, createWriteStream('/dev/null'));
      copy.release();
    } catch (err) {
      copy.release(err as Error);
      throw err;
    }
    const copyMs = performance.now() - t0;
    console.log(`peak RSS after COPY: ${mb()} MB`);

    // (b) The backfill, through the activities the workflow calls.
    const acts = createBackfillActivities(databases);
    const ctx: StepContext = { migrationId: 'bench', targetName: 'bench', target, dryRun: false, gatesPassed: [], force: true, facts: {} };
    t0 = performance.now();
    const batches = (await acts.planBackfill(ctx)).facts!.batches as BackfillBatch[];
    let points = 0;
    let next = 0;
    const lane = async () => {
      while (next < batches.length) {
        const res = await acts.backfillBatch(ctx, batches[next++]);
        points += Number(res.facts!.points);
      }
    };
    await Promise.all(Array.from({ length: lanes }, lane));
    const backfillMs = performance.now() - t0;

    const copyRate = rows / (copyMs / 1000);
    const backfillRate = points / (backfillMs / 1000);
    console.log(`(a) ordered COPY to /dev/null: ${rows.toLocaleString('en-US')} rows in ${s(copyMs)} = ${n(copyRate)} rows/s`);
    console.log(`(b) backfill, ${batches.length} batch(es) of up to ${target.data.batchSize} runs, ${lanes === 1 ? 'sequential' : `${lanes} lanes`}: ${points.toLocaleString('en-US')} points in ${s(backfillMs)} = ${n(backfillRate)} points/s`);
    console.log(`(c) backfill / COPY: ${((100 * backfillRate) / copyRate).toFixed(0)}% (target ≥ 50%)`);
    console.log(`(d) peak RSS: ${mb()} MB (target ≤ 256 MB; node ${process.execArgv.filter((a) => a !== '--import' && !a.includes('tsx')).join(' ') || 'default flags'})`);
  } finally {
    await databases.close();
    await server.stop();
  }
}

/** The size an earlier run seeded, when bench_mlflow exists. */
async function seededSize(adminUrl: string): Promise<string | undefined> {
  const client = new pg.Client({ connectionString: withDatabase(adminUrl, 'bench_mlflow') });
  try {
    await client.connect();
    return (await client.query('SELECT size FROM bench_size')).rows[0]?.size;
  } catch {
    return undefined;
  } finally {
    await client.end().catch(() => {});
  }
}

function withDatabase(url: string, name: string): string {
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}

const mb = () => (process.resourceUsage().maxRSS / 1024).toFixed(0);
const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const n = (x: number) => Math.round(x).toLocaleString('en-US');

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
