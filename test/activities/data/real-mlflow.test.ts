// The backfill against a real MLflow tracking server (PyPI mlflow, Postgres backend): MLflow
// creates its own schema through its migrations and its own client logs the runs, NaN, ±inf,
// steps-less and duplicate-step metrics included, and a run of hostile names (__proto__,
// constructor, …) with steps 2^53, 2^53+1, 2^62 and 2^63−1. The cache must then equal, point for
// point and step for step (exactly, as 64-bit integers), what MLflow's REST API returns for every
// run and key, and 0.5 must pass.
// Needs `python3 -c "import mlflow, psycopg2"` (./run setup installs both); skipped otherwise.
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parse } from 'lossless-json';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createDatabases, type Databases } from '../../../src/adapters/postgres';
import { createDataActivities } from '../../../src/activities/data';
import type { BackfillBatch } from '../../../src/activities/data/backfill';
import { cloudTargetSchema, type CloudTarget } from '../../../src/config/schema';
import { placeMetric } from '../../../src/history/categorise';
import { decodeValue, encodeStoredValue, sameValue } from '../../../src/history/encoding';
import type { StepContext } from '../../../src/types';
import { createDatabase, freePort } from '../../../dev/postgres';
import { createAppTable, seedAppRows } from '../../../dev/mlflow-store';
import { MemoryObjectStore } from '../../support/memory-object-store';

const probe = spawnSync('python3', ['-c', 'import mlflow, psycopg2'], { encoding: 'utf8' });
const unavailable = probe.status === 0 ? undefined : (probe.error?.message ?? probe.stderr.trim().split('\n').at(-1) ?? `exit ${probe.status}`);
if (unavailable) console.warn(`real-mlflow.test.ts skipped: python3 cannot import mlflow and psycopg2 (${unavailable}); ./run setup installs them`);

interface RestMetric {
  key: string;
  value?: number | bigint | string;
  timestamp?: number | bigint | string;
  step?: number | bigint | string;
}

/** JSON with integers as bigint (64-bit steps stay exact), other numbers as numbers. */
function exact(text: string): any {
  return parse(text, undefined, (s) => (/^-?\d+$/.test(s) ? BigInt(s) : Number(s)));
}

/** MLflow's REST value to a number: NaN as "NaN" (or NaN), ±inf as "Infinity" or ±DBL_MAX (its Postgres store keeps DBL_MAX). */
function restValue(v: number | bigint | string | undefined): number {
  if (typeof v === 'string') return decodeValue(v) ?? Number(v);
  return decodeValue(encodeStoredValue(Number(v ?? 0), false))!;
}

/** A cached value (exactly parsed: integral ones are bigint) to a number. */
function cachedValue(v: unknown): number {
  return decodeValue(typeof v === 'bigint' ? Number(v) : v)!;
}

describe.skipIf(unavailable)('backfill against a real MLflow tracking server', () => {
  let server: ChildProcess | undefined;
  let serverLog = '';
  let workDir: string;
  let trackingUri: string;
  let databases: Databases;
  let target: CloudTarget;
  let runIds: string[];
  let longKey: string;
  let hostileKeys: string[];
  let bigSteps: bigint[];
  const ctx = (): StepContext => ({ migrationId: 'm-real', targetName: 'real', target, dryRun: false, gatesPassed: [], force: false, facts: {} });

  beforeAll(async () => {
    const admin = inject('pgAdminUrl');
    const storeUrl = await createDatabase(admin, 'real_mlflow_store');
    const appUrl = await createDatabase(admin, 'real_mlflow_app');
    workDir = mkdtempSync(join(tmpdir(), 'real-mlflow-'));
    const port = await freePort();
    trackingUri = `http://127.0.0.1:${port}`;
    // postgresql+psycopg2: SQLAlchemy 2.1 maps plain postgresql:// to psycopg 3.
    const backend = storeUrl.replace(/^postgres(ql)?:/, 'postgresql+psycopg2:');
    // Detached: its own process group, so afterAll ends the server and its workers together.
    server = spawn('python3', ['-m', 'mlflow', 'server', '--backend-store-uri', backend, '--artifacts-destination', join(workDir, 'artifacts'), '--host', '127.0.0.1', '--port', String(port), '--workers', '1'], {
      cwd: workDir,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const keep = (b: Buffer) => (serverLog = (serverLog + b.toString()).slice(-4000));
    server.stdout!.on('data', keep);
    server.stderr!.on('data', keep);
    const deadline = Date.now() + 150_000;
    for (;;) {
      if (server.exitCode !== null) throw new Error(`mlflow server exited ${server.exitCode}:\n${serverLog}`);
      const ok = await fetch(`${trackingUri}/health`).then((r) => r.ok, () => false);
      if (ok) break;
      if (Date.now() > deadline) throw new Error(`mlflow server not healthy after 150 s:\n${serverLog}`);
      await new Promise((r) => setTimeout(r, 500));
    }

    // Asynchronously: a spawnSync would stop this process reading the server's log pipes, and a
    // server whose pipe is full stops answering.
    const writer = await promisify(execFile)('python3', [join(__dirname, '../../fixtures/mlflow-client-runs.py'), trackingUri], { cwd: workDir, encoding: 'utf8', timeout: 240_000 }).catch(
      (err: Error & { stderr?: string }) => {
        throw new Error(`mlflow client script failed: ${err.message}\n${err.stderr ?? ''}`);
      },
    );
    const out = JSON.parse(writer.stdout.trim().split('\n').at(-1)!);
    runIds = out.run_ids;
    longKey = out.long_key;
    hostileKeys = out.hostile;
    bigSteps = out.big_steps.map(BigInt);

    target = cloudTargetSchema.parse({
      gcp: { project: 'demo-project', region: 'europe-central2' },
      buckets: { backup: 'demo-backups' },
      serviceAccount: 'mlflow-server@demo-project.iam.gserviceaccount.com',
      databases: { mlflow: { urlEnv: 'MLFLOW_DATABASE_URL' }, app: { urlEnv: 'APP_DATABASE_URL' } },
      data: { batchSize: 2 },
    });
    databases = createDatabases({ MLFLOW_DATABASE_URL: storeUrl, APP_DATABASE_URL: appUrl });
    const app = databases.pool('APP_DATABASE_URL');
    await createAppTable(app, target.appTable);
    await seedAppRows(app, target.appTable, { runIds });
  }, 420_000);

  afterAll(async () => {
    await databases?.close();
    if (server?.pid && server.exitCode === null) {
      const exited = new Promise((r) => server!.once('exit', r));
      process.kill(-server.pid, 'SIGTERM');
      const timer = setTimeout(() => {
        try {
          process.kill(-server!.pid!, 'SIGKILL');
        } catch {}
      }, 10_000);
      await exited;
      clearTimeout(timer);
    }
    if (workDir) rmSync(workDir, { recursive: true, force: true });
  });

  it('caches every run and key exactly as MLflow serves them, hostile names and 64-bit steps included, and 0.5 passes', async () => {
    const acts = createDataActivities({ databases, objects: new MemoryObjectStore() }).activities;
    const batches = (await acts.planBackfill(ctx())).facts!.batches as BackfillBatch[];
    expect(batches.reduce((n, b) => n + b.runs, 0)).toBe(4);
    for (const b of batches) await acts.backfillBatch(ctx(), b);

    const { rows } = await databases.pool('APP_DATABASE_URL').query(`SELECT mlflow_run_id, training_history_json::text AS h FROM ml_platform_quicktest`);
    const caches = new Map(rows.map((r) => [r.mlflow_run_id, exact(r.h)]));
    const hostileRun = runIds[3];
    let compared = 0;
    for (const runId of runIds) {
      const h = caches.get(runId);
      expect(h, runId).toBeTruthy();
      const run: any = exact(await (await fetch(`${trackingUri}/api/2.0/mlflow/runs/get?run_id=${runId}`)).text());
      const keys: string[] = (run.run.data.metrics ?? []).map((m: { key: string }) => m.key);
      if (runId === hostileRun) expect([...keys].sort()).toEqual([...hostileKeys, 'big_step'].sort());
      else expect(keys).toEqual(expect.arrayContaining(['val_loss_δ', longKey]));
      const params = new Map<string, string>((run.run.data.params ?? []).map((p: { key: string; value: string }) => [p.key, p.value]));
      expect(new Map(Object.entries(h.params))).toEqual(params);
      for (const t of run.run.data.tags ?? []) expect(h.tags[t.key], t.key).toBe(t.value);
      for (const key of keys) {
        const res = await fetch(`${trackingUri}/api/2.0/mlflow/metrics/get-history?run_id=${runId}&metric_key=${encodeURIComponent(key)}`);
        expect(res.ok, key).toBe(true);
        const history: RestMetric[] = (exact(await res.text()) as { metrics?: RestMetric[] }).metrics ?? [];
        // MLflow returns every logged row; per step the latest timestamp wins, then the greater value.
        const byStep = new Map<bigint, { ts: number; value: number }>();
        for (const m of history) {
          const step = BigInt(m.step ?? 0);
          const p = { ts: Number(m.timestamp ?? 0), value: restValue(m.value) };
          const cur = byStep.get(step);
          if (!cur || p.ts > cur.ts || (p.ts === cur.ts && p.value > cur.value)) byStep.set(step, p);
        }
        const expected = [...byStep.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1));
        const placement = placeMetric(key);
        let cached: Array<[bigint, number]>;
        if (placement.kind === 'final') {
          cached = [[expected.at(-1)![0], cachedValue(h.final_metrics[placement.name])]];
          expected.splice(0, expected.length - 1);
        } else {
          const series: unknown[] =
            placement.kind === 'tower-series' ? h[placement.section][placement.tower][placement.stat] : placement.kind === 'series' ? h[placement.section][placement.name] : [];
          expect(series, key).toHaveLength(h.epochs.length);
          cached = series.flatMap((v, i) => (v === null ? [] : [[h.epochs[i], cachedValue(v)] as [bigint, number]]));
        }
        expect(cached.map((p) => p[0]), `${runId} ${key} steps`).toEqual(expected.map((p) => p[0]));
        cached.forEach(([step, v], i) => expect(sameValue(v, expected[i][1].value), `${runId} ${key}@${step}: cache ${v}, MLflow ${expected[i][1].value}`).toBe(true));
        compared += cached.length;
      }
    }
    expect(compared).toBeGreaterThan(3 * 8 * 5);
    const first = caches.get(runIds[0]);
    expect(first.loss.val_loss[2]).toBe('NaN');
    expect(first.loss.val_loss[0]).toBe(9.5);
    expect(first.loss.loss[1]).toBe(0.123456);
    expect(first.other.throughput[0]).toBe(1234.5);
    expect(caches.get(runIds[1]).gradient_stats.query.norm[1]).toBe('Infinity');
    expect(caches.get(runIds[1]).weight_stats.query.min[1]).toBe('-Infinity');
    const hostile = caches.get(hostileRun);
    expect(hostile.epochs).toEqual([0n, 1n, ...bigSteps]);
    expect(hostile.other.big_step.slice(2)).toEqual([1n, 2n, 3n, 4n]);
    expect(Object.keys(hostile.gradient)).toEqual(['__proto__']);
    expect(Object.keys(hostile.weight_stats['__proto__'])).toEqual(['mean']);
    for (const key of ['__proto__', 'constructor', 'toString', 'weights/query/hist/foo', 'weights/a/b/hist/bin_0']) expect(Object.hasOwn(hostile.other, key), key).toBe(true);

    const verified = await acts.verifyMigration(ctx());
    expect(verified.facts).toMatchObject({ runsVerified: 4, mismatches: 0, uncached: 0 });
  });
});
