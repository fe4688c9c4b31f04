// Long calls never go silent, and a cancelled step stops within seconds: all of Phase 0 on the
// real worker's activities with a 2-second heartbeat timeout, every sandbox call and every byte to
// and from Postgres slowed; and a rollback signalled while 0.3 runs.
import { Worker, type WorkerOptions } from '@temporalio/worker';
import { temporal } from '@temporalio/proto';
import type { WorkflowHandle } from '@temporalio/client';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, inject, it } from 'vitest';
import { createDeployment } from '../../dev/deployment';
import { createActivities } from '../../src/activities';
import { MAX_HEARTBEAT_THROTTLE_INTERVAL } from '../../src/activities/heartbeat';
import { createGcpClients } from '../../src/adapters/gcp/clients';
import { createGcsObjectStore } from '../../src/adapters/gcp/gcs-object-store';
import { createDatabases } from '../../src/adapters/postgres';
import { configFileSchema } from '../../src/config/schema';
import { commands, migrationResult, startMigration } from '../../src/temporal/client';
import { TEST_HEARTBEAT_TIMEOUT_MS } from '../support/heartbeat-timeout';
import { startLatencyProxy } from '../support/latency-proxy';
import { useTestServer, waitForStatus, workflowBundle } from '../support/temporal';

const server = useTestServer();
const { TIMEOUT_TYPE_HEARTBEAT } = temporal.api.enums.v1.TimeoutType;
let n = 0;

/** A seeded deployment whose worker reaches Postgres through the latency proxy and the sandbox through its latency faults. */
async function slowDeployment(opts: { runs: number; epochs: number; interceptors: string[]; bytesPerSecond?: number; worker?: Pick<WorkerOptions, 'maxHeartbeatThrottleInterval'> }) {
  const name = `hb${process.pid}x${++n}`;
  const d = await createDeployment({ adminUrl: inject('pgAdminUrl'), name, dir: mkdtempSync(join(tmpdir(), 'hb-')), runs: opts.runs, epochs: opts.epochs, operationDelayMs: 500 });
  const proxy = await startLatencyProxy(d.mlflowUrl, { latencyMs: 2, bytesPerSecond: opts.bytesPerSecond ?? 2_000_000 });
  const env = { ...d.workerEnv, MLFLOW_DATABASE_URL: proxy.rewrite(d.mlflowUrl), APP_DATABASE_URL: proxy.rewrite(d.appUrl) };
  // Every Google call waits; a few wait longer than the heartbeat timeout on their own.
  for (const match of ['^POST .*/instances/[^/]+/export$', '^POST /upload/storage/v1/b/[^/]+/o']) d.sandbox.addFault({ match, latencyMs: TEST_HEARTBEAT_TIMEOUT_MS + 500, times: 2 });
  d.sandbox.addFault({ match: '.', latencyMs: 150 });
  const config = configFileSchema.parse({ targets: { [name]: d.target } });
  const gcp = createGcpClients({ apiEndpoint: d.sandbox.url, project: d.target.gcp.project });
  const databases = createDatabases(env);
  const objects = createGcsObjectStore(gcp.storage);
  const taskQueue = `hb-${name}`;
  const worker = await Worker.create({
    connection: server.env.nativeConnection,
    taskQueue,
    workflowBundle: await workflowBundle(opts.interceptors),
    activities: createActivities({ config, databases, gcp, objects }),
    ...opts.worker,
  });
  const running = worker.run();
  return {
    ...d,
    start: (input: object) => startMigration(server.env.client, { target: name, ...input }, { taskQueue }),
    async close() {
      worker.shutdown();
      await running;
      await Promise.all([gcp.close(), databases.close(), proxy.close(), d.close()]);
    },
  };
}

/** Every activity attempt the history knows of: type, how long the last attempt took, and the failure of the attempt before it. */
async function activityAttempts(h: WorkflowHandle) {
  const events = (await h.fetchHistory()).events ?? [];
  const byScheduled = new Map<string, { type: string; heartbeatTimeoutMs: number; startedAt?: number; endedAt?: number; attempt?: number; lastFailure?: temporal.api.failure.v1.IFailure | null; timedOut?: temporal.api.failure.v1.IFailure | null }>();
  const ms = (e: temporal.api.history.v1.IHistoryEvent) => Number(e.eventTime?.seconds ?? 0) * 1000 + Math.round((e.eventTime?.nanos ?? 0) / 1e6);
  for (const e of events) {
    const id = String(e.eventId);
    const scheduled = e.activityTaskScheduledEventAttributes;
    if (scheduled) byScheduled.set(id, { type: scheduled.activityType?.name ?? '?', heartbeatTimeoutMs: Number(scheduled.heartbeatTimeout?.seconds ?? 0) * 1000 + Math.round((scheduled.heartbeatTimeout?.nanos ?? 0) / 1e6) });
    const started = e.activityTaskStartedEventAttributes;
    if (started) Object.assign(byScheduled.get(String(started.scheduledEventId))!, { startedAt: ms(e), attempt: started.attempt, lastFailure: started.lastFailure });
    const ended = e.activityTaskCompletedEventAttributes ?? e.activityTaskFailedEventAttributes ?? e.activityTaskCanceledEventAttributes;
    if (ended) byScheduled.get(String(ended.scheduledEventId))!.endedAt = ms(e);
    const timedOut = e.activityTaskTimedOutEventAttributes;
    if (timedOut) Object.assign(byScheduled.get(String(timedOut.scheduledEventId))!, { endedAt: ms(e), timedOut: timedOut.failure });
  }
  return [...byScheduled.values()];
}

const heartbeatTimedOut = (f: temporal.api.failure.v1.IFailure | null | undefined): boolean =>
  !!f && (f.timeoutFailureInfo?.timeoutType === TIMEOUT_TYPE_HEARTBEAT || heartbeatTimedOut(f.cause));

describe('heartbeats under a slow database and a slow Google', () => {
  it('all of Phase 0 runs with a 2-second heartbeat timeout and no activity ever times out on it', async () => {
    const d = await slowDeployment({ runs: 200, epochs: 30, interceptors: [join(process.cwd(), 'test/support/heartbeat-timeout.ts')] });
    try {
      const h = await d.start({ approvals: { 'phase-0': true, 'phase-2': false, 'phase-4': false, closure: false } });
      const status = await waitForStatus(h, (s) => s.waitingFor?.gate === 'phase-0' || s.state === 'blocked', 110_000);
      const attempts = await activityAttempts(h);
      await h.terminate('heartbeat test over');
      const silent = attempts.filter((a) => heartbeatTimedOut(a.lastFailure) || heartbeatTimedOut(a.timedOut)).map((a) => a.type);
      expect(new Set(attempts.map((a) => a.heartbeatTimeoutMs))).toEqual(new Set([TEST_HEARTBEAT_TIMEOUT_MS]));
      expect(silent, 'activities that went silent for the heartbeat timeout').toEqual([]);
      expect(status.waitingFor, JSON.stringify(status.waitingFor)).toMatchObject({ gate: 'phase-0' });
      expect(status.steps.filter((s) => s.phase === 0).every((s) => s.state === 'done')).toBe(true);
      expect(attempts.filter((a) => a.attempt !== 1).map((a) => `${a.type}: attempt ${a.attempt}`)).toEqual([]);
      // The slowdown is real: each of these ran for longer than the heartbeat timeout.
      const longest = (type: string) => Math.max(...attempts.filter((a) => a.type === type).map((a) => a.endedAt! - a.startedAt!));
      for (const type of ['backupDatabase', 'backfillBatch', 'verifyMigration', 'exportRawTables', 'checkPhase0']) expect(longest(type), type).toBeGreaterThan(TEST_HEARTBEAT_TIMEOUT_MS);
    } finally {
      await d.close();
    }
  });

  it('a rollback signalled while 0.3 backfills begins within 5 s: the batch stops at its next COPY chunk', async () => {
    // The production heartbeat timeout (30 s), and the worker's cap on the SDK's heartbeat interval:
    // without it, the cancellation arrives after the batch is done (planted: began after 15 s).
    const d = await slowDeployment({ runs: 200, epochs: 30, interceptors: [], bytesPerSecond: 500_000, worker: { maxHeartbeatThrottleInterval: MAX_HEARTBEAT_THROTTLE_INTERVAL } });
    try {
      const h = await d.start({ approvals: { 'phase-0': true, 'phase-2': false, 'phase-4': false, closure: false } });
      await waitForStatus(h, (s) => s.steps.find((x) => x.id === '0.3')?.state === 'running' || s.state === 'blocked', 60_000);
      // Until a batch is reading: its first heartbeat carries its progress.
      const reading = async () => (await h.describe()).raw.pendingActivities?.some((a) => a.activityType?.name === 'backfillBatch' && a.heartbeatDetails);
      for (let i = 0; i < 200 && !(await reading()); i++) await new Promise((r) => setTimeout(r, 100));
      const signalled = Date.now();
      await commands.rollback(h, { by: 'alice', reason: 'heartbeat test' });
      const status = await waitForStatus(h, (s) => s.state === 'rolling-back' || s.state === 'rolled-back', 30_000);
      const began = Date.now() - signalled;
      expect(status.steps.find((x) => x.id === '0.3')?.state).not.toBe('done');
      const cancelled = (await h.fetchHistory()).events?.filter((e) => e.activityTaskCanceledEventAttributes) ?? [];
      expect(cancelled.length, 'the backfill batch was cancelled in flight').toBeGreaterThan(0);
      expect(began).toBeLessThan(5_000);
      expect((await migrationResult(h)).outcome).toBe('rolled-back');
    } finally {
      await d.close();
    }
  });
});
