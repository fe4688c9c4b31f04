// 0.3 scales out: Phase 0 on the dev server with two workers on one task queue, the real
// backfill activities over a real store, and more lanes than one worker has activity slots.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { NativeConnection, Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBackfillActivities, type BackfillBatch } from '../../src/activities/data/backfill';
import { createBackfillCountActivities } from '../../src/activities/data/backfill-counts';
import { readWorkerEnv } from '../../src/config/environment';
import { startMigration } from '../../src/temporal/client';
import { createWorkerOptions } from '../../src/temporal/versioning';
import type { StepContext } from '../../src/types';
import { createDataWorld, type DataWorld } from '../fixtures/mlflow-store';
import { fakeActivities } from '../support/fake-activities';
import { recordHistory, useTestServer, waitForStatus, workflowBundle } from '../support/temporal';

const server = useTestServer();
const SLOTS = 4;
const LANES = 2 * SLOTS;
const HISTORY = 'backfill-lanes-path.json';

describe('backfill lanes (0.3)', () => {
  let w: DataWorld;
  beforeAll(async () => {
    // 64 runs in batches of 4: 16 batches, two waves of 8 lanes.
    w = await createDataWorld({ name: 'backfill_lanes', runs: 64, epochs: 2, metrics: 3, data: { batchSize: 4, backfillLanes: LANES }, app: { notCompleted: 0, withoutRunId: 0 } });
  });
  afterAll(() => w.close());

  it('spreads the batches over two workers, with as many running at once as data.backfillLanes', async () => {
    const taskQueue = `lanes-${process.pid}`;
    const env = readWorkerEnv({ TEMPORAL_TASK_QUEUE: taskQueue, TEMPORAL_WORKER_VERSIONING: 'false', WORKER_MAX_CONCURRENT_ACTIVITIES: String(SLOTS) });
    const real = createBackfillActivities(w.databases, SLOTS);
    const counts = createBackfillCountActivities(w.databases);
    const took = new Map<string, number[]>([['worker-1', []], ['worker-2', []]]);
    // The first wave waits until LANES batches run at once, which needs both workers' slots:
    // with fewer lanes, or one worker taking them all, it never fills.
    let inFlight = 0;
    let peak = 0;
    let releaseWave!: () => void;
    const wave = new Promise<void>((r) => (releaseWave = r));
    const activitiesOf = (name: string) => {
      const fakes = fakeActivities(w.target, {
        loadTarget: async () => w.target,
        assessScope: real.assessScope,
        planBackfill: real.planBackfill,
        countBackfilled: counts.countBackfilled,
        backfillBatch: async (ctx: StepContext, batch: BackfillBatch) => {
          took.get(name)!.push(batch.index);
          peak = Math.max(peak, ++inFlight);
          if (inFlight >= LANES) releaseWave();
          await Promise.race([wave, new Promise((r) => setTimeout(r, 20_000))]);
          try {
            return await real.backfillBatch(ctx as StepContext<typeof w.target>, batch);
          } finally {
            inFlight--;
          }
        },
      });
      return fakes.activities;
    };
    const bundle = await workflowBundle();
    // Each worker on its own connection, as two hosts would be (the SDK refuses two on one).
    const second = await NativeConnection.connect({ address: server.env.address });
    const w1 = await Worker.create(createWorkerOptions({ env, connection: server.env.nativeConnection, workflowBundle: bundle }, activitiesOf('worker-1')));
    const w2 = await Worker.create(createWorkerOptions({ env, connection: second, workflowBundle: bundle }, activitiesOf('worker-2')));
    await w1.runUntil(
      w2.runUntil(async () => {
        const h = await startMigration(server.env.client, { target: 'lanes' }, { taskQueue });
        const status = await waitForStatus(h, (s) => s.waitingFor?.gate === 'phase-0' || !['starting', 'running'].includes(s.state), 120_000);
        expect(status.waitingFor?.gate, JSON.stringify({ state: status.state, events: status.events.slice(-4), steps: status.steps.filter((s) => s.state !== 'pending') })).toBe('phase-0');
        expect(status.steps.find((s) => s.id === '0.3')?.summary).toMatch(/^64 runs migrated, holding \d+ values/);
        // Recorded once, for the patched branch 'backfill-lanes-from-config'; never overwritten.
        if (process.env.RECORD_HISTORIES && !existsSync(join('test/histories', HISTORY))) await recordHistory(server.env, h, HISTORY);
        await h.terminate('test done');
      }),
    );
    await second.close();
    expect(peak).toBe(LANES);
    expect(took.get('worker-1')!.length).toBeGreaterThan(0);
    expect(took.get('worker-2')!.length).toBeGreaterThan(0);
    expect([...took.get('worker-1')!, ...took.get('worker-2')!].sort((a, b) => a - b)).toEqual(Array.from({ length: 16 }, (_, i) => i));
    const { rows } = await w.app.query(`SELECT count(*)::int AS n FROM ml_platform_quicktest WHERE training_history_json IS NULL`);
    expect(rows[0].n).toBe(0);
  });
});
