// Backfill throughput against the floors Postgres sets, all measured in one run on the same
// table (see dev/bench-floors.ts): the unordered COPY of `metrics` (the physical floor), the
// fastest ordered read, and the ordered read this bench used to call its floor. Then the
// backfill through the real activities (planBackfill, then every backfillBatch on --lanes
// lanes, as the workflow runs them), its rate against each floor, and the peak RSS. Then the
// raw export (0.6) through its activity, and gzip per level. Targets at 1,000 × 140 × 50:
// backfill ≥ 50% of the unordered COPY, peak RSS ≤ 256 MB.
// The store is MLflow's own schema at its newest revision (`mlflow db upgrade`, every index
// MLflow creates); --schema legacy uses the hand-written 2.x DDL of dev/mlflow-store.ts.
// DATABASE_URL when set, else an embedded Postgres.
//   npm run bench:backfill -- [--runs 1000] [--metrics 140] [--epochs 50] [--lanes 4] [--reuse]
//                             [--schema mlflow|legacy] [--db bench] [--gzip 1,3,6] [--skip-export]
//                             [--batch-size N] [--runs-per-read 50]
// The npm script runs node with --max-semi-space-size=8 (V8's young generation capped at 8 MB per
// semi-space), as the worker should run. --reuse keeps the store seeded by an earlier run of the
// same size and schema (DATABASE_URL only). --db names the databases (<db>_mlflow, <db>_app).
import { cpus, loadavg } from 'node:os';
import { Writable } from 'node:stream';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { createDatabases } from '../src/adapters/postgres';
import { createBackfillActivities, type BackfillBatch } from '../src/activities/data/backfill';
import { createExportActivities } from '../src/activities/data/export';
import { cloudTargetSchema } from '../src/config/schema';
import type { ObjectStore } from '../src/ports';
import type { StepContext } from '../src/types';
import { FLOOR_READS, timeCopy, timeGzip, type Read } from './bench-floors';
import { timeReadPaths } from './bench-reader';
import { seedBenchStore } from './bench-store';
import { createDatabase, startPostgres } from './postgres';
import { createAppTable, seedAppRows } from './mlflow-store';

async function main() {
  const { values } = parseArgs({
    options: {
      runs: { type: 'string', default: '1000' },
      metrics: { type: 'string', default: '140' },
      epochs: { type: 'string', default: '50' },
      lanes: { type: 'string', default: '4' },
      reuse: { type: 'boolean', default: false },
      schema: { type: 'string', default: 'mlflow' },
      db: { type: 'string', default: 'bench' },
      gzip: { type: 'string', default: '1,3,6' },
      'skip-export': { type: 'boolean', default: false },
      'runs-per-read': { type: 'string', default: '50' },
      'batch-size': { type: 'string' },
    },
  });
  const runs = Number(values.runs);
  const metrics = Number(values.metrics);
  const epochs = Number(values.epochs);
  const lanes = Number(values.lanes);
  const schema = values.schema === 'legacy' ? 'legacy' : 'mlflow';
  const server = await startPostgres();
  const size = `${runs}x${metrics}x${epochs}/${schema}`;
  const names = { mlflow: `${values.db}_mlflow`, app: `${values.db}_app` };
  const reuse = values.reuse && (await seededSize(withDatabase(server.adminUrl, names.mlflow))) === size;
  const mlflowUrl = reuse ? withDatabase(server.adminUrl, names.mlflow) : await createDatabase(server.adminUrl, names.mlflow);
  const appUrl = reuse ? withDatabase(server.adminUrl, names.app) : await createDatabase(server.adminUrl, names.app);
  const databases = createDatabases({ MLFLOW_DATABASE_URL: mlflowUrl, APP_DATABASE_URL: appUrl });
  const target = cloudTargetSchema.parse({
    gcp: { project: 'bench-project', region: 'europe-central2' },
    buckets: { backup: 'bench-backups' },
    serviceAccount: 'mlflow@bench-project.iam.gserviceaccount.com',
    databases: { mlflow: { urlEnv: 'MLFLOW_DATABASE_URL' }, app: { urlEnv: 'APP_DATABASE_URL' } },
    ...(values['batch-size'] ? { data: { batchSize: Number(values['batch-size']) } } : {}),
  });
  const mlflow = databases.pool('MLFLOW_DATABASE_URL');
  const app = databases.pool('APP_DATABASE_URL');
  try {
    let t0 = performance.now();
    if (reuse) {
      console.log(`reusing the store seeded with ${size}`);
      await app.query(`UPDATE ${target.appTable.table} SET ${target.appTable.history} = NULL`);
      await app.query(`VACUUM ${target.appTable.table}`);
    } else {
      console.log(`seeding ${runs} runs × ${metrics} metrics × ${epochs} epochs (${(runs * metrics * epochs).toLocaleString('en-US')} points), schema ${schema} …`);
      const seeded = await seedBenchStore(mlflow, mlflowUrl, { schema, runs, metrics, epochs });
      await createAppTable(app, target.appTable);
      await seedAppRows(app, target.appTable, { runIds: seeded.runIds });
      await mlflow.query(`CREATE TABLE bench_size AS SELECT $1::text AS size`, [size]);
      console.log(`seeded in ${s(performance.now() - t0)}`);
    }
    const revision = (await mlflow.query('SELECT version_num FROM alembic_version')).rows[0].version_num;
    const { rows: idx } = await mlflow.query(`SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'metrics' ORDER BY indexname`);
    const settings = (await mlflow.query(`SELECT current_setting('work_mem') AS w, current_setting('server_version') AS v, (SELECT datcollate FROM pg_database WHERE datname = current_database()) AS c`)).rows[0];
    console.log(`store: MLflow revision ${revision}; metrics indexes: ${idx.map((r) => r.indexdef.replace(/^.* USING btree /, `${r.indexname} `)).join(', ')}`);
    console.log(`PostgreSQL ${settings.v}, work_mem ${settings.w}, collation ${settings.c}; ${cpus().length} cores; load before: ${load()}`);
    const rows = Number((await mlflow.query('SELECT count(*) FROM metrics')).rows[0].count);

    // (1) The floors, each one COPY of the whole table, bytes dropped.
    const reads: Read[] = [];
    for (const r of FLOOR_READS) {
      const read = await timeCopy(mlflowUrl, r.label, r.sql, r.settings);
      reads.push(read);
      console.log(`  ${rate(read.rows, read.ms)} rows/s  ${s(read.ms).padStart(7)}  ${read.label}  [${read.plan}]`);
    }
    const unordered = reads[0]!;
    const oldFloor = reads[1]!;
    const fastestOrdered = reads.slice(1).reduce((a, b) => (b.ms < a.ms ? b : a));
    console.log(`peak RSS after the floors: ${mb()} MB; load: ${load()}`);

    // (2) The backfill, through the activities the workflow calls.
    const acts = createBackfillActivities(databases);
    const ctx: StepContext = { migrationId: 'bench', targetName: 'bench', target, dryRun: false, gatesPassed: [], force: true, facts: {} };
    t0 = performance.now();
    const batches = (await acts.planBackfill(ctx)).facts!.batches as BackfillBatch[];
    let points = 0;
    let next = 0;
    const lane = async () => {
      while (next < batches.length) {
        const res = await acts.backfillBatch(ctx, batches[next++]!);
        points += Number(res.facts!.points);
      }
    };
    await Promise.all(Array.from({ length: lanes }, lane));
    const backfillMs = performance.now() - t0;
    const backfillRate = points / (backfillMs / 1000);
    const busyLanes = Math.min(lanes, batches.length);
    console.log(
      `backfill: ${points.toLocaleString('en-US')} points in ${s(backfillMs)} = ${rate(points, backfillMs)} points/s; ${batches.length} batch(es) of up to ${target.data.batchSize} runs on ${lanes} lane(s), ${busyLanes} with work; load: ${load()}`,
    );
    const pct = (read: Read) => `${((100 * backfillRate) / (read.rows / (read.ms / 1000))).toFixed(0)}%`;
    console.log(`  vs unordered COPY (physical floor): ${pct(unordered)}  (target ≥ 50%)`);
    console.log(`  vs fastest ordered read (${fastestOrdered.label}): ${pct(fastestOrdered)}`);
    console.log(`  vs the old bench floor (${oldFloor.label}): ${pct(oldFloor)}`);
    console.log(`peak RSS: ${mb()} MB (target ≤ 256 MB; node ${process.execArgv.filter((a) => a !== '--import' && !a.includes('tsx')).join(' ') || 'default flags'})`);

    // (3) Where the backfill's time goes: its read alone, then read + build, on the same lanes
    // (after the backfill, so the peak RSS above is the backfill's own).
    const perRead = Number(values['runs-per-read']);
    const variants: Array<[string, number, boolean, 'id' | 'start_time']> = [
      ['read alone, run-id order, 25 runs per COPY', 25, false, 'id'],
      [`read alone, run-id order, ${perRead} runs per COPY (as the backfill)`, perRead, false, 'id'],
      [`read alone, start_time order (rows logged together), ${perRead} runs per COPY`, perRead, false, 'start_time'],
      [`read + build (nothing written), run-id order, ${perRead} runs per COPY`, perRead, true, 'id'],
    ];
    for (const [label, n, build, order] of variants) {
      const r = await timeReadPaths(mlflow, lanes, n, build, order);
      console.log(`  ${rate(r.points, r.ms)} points/s  ${s(r.ms).padStart(7)}  ${label}, ${lanes} lane(s), ${((100 * r.points) / (r.ms / 1000) / (reads[0]!.rows / (reads[0]!.ms / 1000))).toFixed(0)}% of the unordered COPY; RSS ${mb()} MB; load: ${load()}`);
    }

    // (4) The raw export (0.6) of every table through its activity, uploads dropped; gzip per level.
    if (!values['skip-export']) {
      t0 = performance.now();
      const out = await createExportActivities(databases, discardStore()).exportRawTables({ ...ctx, force: false });
      const exportMs = performance.now() - t0;
      const exported = Number(out.facts!.rows);
      console.log(`raw export (0.6): ${exported.toLocaleString('en-US')} rows of ${out.facts!.tables} tables in ${s(exportMs)} = ${rate(exported, exportMs)} rows/s, ${((100 * exported) / (exportMs / 1000) / (unordered.rows / (unordered.ms / 1000))).toFixed(0)}% of the unordered COPY; load: ${load()}`);
      for (const level of values.gzip.split(',').map(Number)) {
        const g = await timeGzip(mlflowUrl, level);
        console.log(`  gzip level ${level}: metrics in ${s(g.ms)} = ${rate(g.rows, g.ms)} rows/s, ${(g.rawBytes / 1e6).toFixed(0)} MB CSV → ${(g.gzBytes / 1e6).toFixed(0)} MB (${((100 * g.gzBytes) / g.rawBytes).toFixed(0)}%)`);
      }
    }
    console.log(`peak RSS at the end: ${mb()} MB; load after: ${load()}`);
    if (rows !== unordered.rows) throw new Error(`count(*) says ${rows} rows, the COPY read ${unordered.rows}`);
  } finally {
    await databases.close();
    await server.stop();
  }
}

/** Uploads that go nowhere: the export is measured without the network. */
function discardStore(): ObjectStore {
  const info = (uri: string) => ({ uri, size: 0, updated: new Date().toISOString() }) as never;
  return {
    write: async (uri) => info(uri),
    writeStream: () => new Writable({ write: (_c, _e, cb) => cb() }),
    read: async () => undefined,
    readStream: () => {
      throw new Error('not in the bench');
    },
    stat: async () => undefined,
    list: async () => [],
  };
}

/** The size an earlier run seeded, when the database exists. */
async function seededSize(url: string): Promise<string | undefined> {
  const client = new pg.Client({ connectionString: url });
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
const rate = (n: number, ms: number) => Math.round(n / (ms / 1000)).toLocaleString('en-US').padStart(9);
const load = () => loadavg().map((x) => x.toFixed(1)).join(' ');

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
