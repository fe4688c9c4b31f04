// Backfill throughput: the set-based backfill (one ordered cursor pass per batch, batched
// UPDATEs) against a naive baseline that asks the store per run and per key, as the seed's REST
// backfill did, on the same seeded store. DATABASE_URL, else an embedded Postgres.
//   npm run bench:backfill -- [runs=200] [epochs=50]
import { createDatabases } from '../src/adapters/postgres';
import { backfillRange, planBatches } from '../src/activities/backfill';
import { targetSchema } from '../src/config';
import { RunHistoryBuilder } from '../src/history/builder';
import { createDatabase, startPostgres } from '../dev/postgres';
import { createAppTable, createMlflowSchema, seedAppRows, seedMlflowRuns } from '../dev/mlflow-store';

async function main() {
  const runs = Number(process.argv[2] ?? 200);
  const epochs = Number(process.argv[3] ?? 50);
  const server = await startPostgres();
  const mlflowUrl = await createDatabase(server.adminUrl, 'bench_mlflow');
  const appUrl = await createDatabase(server.adminUrl, 'bench_app');
  const databases = createDatabases({ MLFLOW_DATABASE_URL: mlflowUrl, APP_DATABASE_URL: appUrl });
  const target = targetSchema.parse({
    gcp: { project: 'bench-project', region: 'europe-central2' },
    buckets: { backup: 'bench-backups' },
    serviceAccount: 'mlflow@bench-project.iam.gserviceaccount.com',
    databases: { mlflow: { urlEnv: 'MLFLOW_DATABASE_URL' }, app: { urlEnv: 'APP_DATABASE_URL' } },
    data: { batchSize: 100 },
  });
  const mlflow = databases.pool('MLFLOW_DATABASE_URL');
  const app = databases.pool('APP_DATABASE_URL');
  try {
    console.log(`seeding ${runs} runs × ${epochs} epochs …`);
    await createMlflowSchema(mlflow);
    const runIds = await seedMlflowRuns(mlflow, { runs, epochs, seed: 42 });
    await mlflow.query('ANALYZE');
    await createAppTable(app, target.appTable);
    await seedAppRows(app, target.appTable, { runIds });

    // Set-based: what planBackfill + backfillBatch do.
    let t0 = performance.now();
    let points = 0;
    for (const b of await planBatches(databases, target, true)) {
      points += (await backfillRange(databases, target, { from: b.fromRunId, to: b.toRunId, force: true, histograms: false })).points;
    }
    const setMs = performance.now() - t0;

    // Naive: per run, list its keys, then one query per key, then one UPDATE per run.
    t0 = performance.now();
    let naivePoints = 0;
    for (const runId of runIds) {
      const b = new RunHistoryBuilder(runId, { histograms: false });
      const run = (await mlflow.query('SELECT end_time, start_time FROM runs WHERE run_uuid = $1', [runId])).rows[0];
      b.setTimes(run.end_time === null ? null : Number(run.end_time), run.start_time === null ? null : Number(run.start_time));
      for (const p of (await mlflow.query('SELECT key, value FROM params WHERE run_uuid = $1', [runId])).rows) b.param(p.key, p.value);
      for (const p of (await mlflow.query('SELECT key, value FROM tags WHERE run_uuid = $1', [runId])).rows) b.tag(p.key, p.value);
      const keys = (await mlflow.query('SELECT DISTINCT key FROM metrics WHERE run_uuid = $1', [runId])).rows;
      for (const { key } of keys) {
        const { rows } = await mlflow.query('SELECT step, value, is_nan FROM metrics WHERE run_uuid = $1 AND key = $2 ORDER BY step, timestamp, value, is_nan', [runId, key]);
        for (const r of rows) b.metric(key, Number(r.step), Number(r.value), r.is_nan);
      }
      const { history, points: n } = b.build();
      naivePoints += n;
      await app.query(`UPDATE ml_platform_quicktest SET training_history_json = $2 WHERE mlflow_run_id = $1`, [runId, JSON.stringify(history)]);
    }
    const naiveMs = performance.now() - t0;

    const rate = (n: number, ms: number) => Math.round(n / (ms / 1000)).toLocaleString('en-US');
    console.log(`set-based: ${points} points in ${setMs.toFixed(0)} ms = ${rate(points, setMs)} points/s`);
    console.log(`naive:     ${naivePoints} points in ${naiveMs.toFixed(0)} ms = ${rate(naivePoints, naiveMs)} points/s`);
    console.log(`set-based is ${(naiveMs / setMs).toFixed(1)}× faster`);
  } finally {
    await databases.close();
    await server.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
